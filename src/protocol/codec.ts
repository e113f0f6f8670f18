/**
 * The codec of the cloud↔edge protocol (messages.ts): one JSON message per text frame. Decoding is strict:
 * every field is checked and copied into a fresh object (unknown fields are dropped, so a newer peer may add
 * fields), and anything wrong is a KedgeError KEDGE_PROTOCOL_INVALID whose context.protocolCode says which
 * protocol error to answer with ('too-large' or 'bad-frame').
 */
import { KedgeError } from '../lib/errors.ts';
import {
  type Ack,
  type AgentFeature,
  AgentFeatures,
  type AgentMessage,
  type Batch,
  type ErrorMessage,
  type Hello,
  type HubMessage,
  MAX_FRAME_BYTES,
  type Message,
  ProtocolErrorCodes,
  parseSyncKey,
  STREAM_CHUNK_BYTES,
  STREAM_FRAME_HEADER_BYTES,
  type StatusAck,
  type StatusBatch,
  type StatusItem,
  type StreamChannel,
  type StreamClose,
  StreamErrorReasons,
  type StreamFrame,
  type StreamOpen,
  type StreamRequest,
  type SyncItem,
  type SyncKey,
  type Welcome,
  type WrittenStatus,
} from './messages.ts';

/** Most [key, revision] pairs a hello may carry. */
export const MAX_INVENTORY_ITEMS = 500_000;
/** Most items in one batch or status batch. */
export const MAX_BATCH_ITEMS = 10_000;
/** Longest name, key, version string or error message accepted. */
export const MAX_STRING_LENGTH = 1024;
const MAX_MESSAGE_LENGTH = 4096;

const decoder = new TextDecoder('utf-8', { fatal: true });

function invalid(message: string, protocolCode: 'bad-frame' | 'too-large' = 'bad-frame'): KedgeError {
  return new KedgeError('KEDGE_PROTOCOL_INVALID', message, { context: { protocolCode } });
}

/** Which protocol error code answers a decode failure. */
export function protocolCodeOf(err: unknown): 'bad-frame' | 'too-large' {
  return err instanceof KedgeError && err.context['protocolCode'] === 'too-large' ? 'too-large' : 'bad-frame';
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  }
  if (typeof value === 'object') return 'an object';
  return String(value);
}

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field(obj: Obj, name: string): unknown {
  return Object.hasOwn(obj, name) ? obj[name] : undefined;
}

function uint(obj: Obj, name: string, where: string, min = 0): number {
  const v = field(obj, name);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw invalid(`${where}.${name} must be a whole number >= ${min}, got ${describe(v)}`);
  }
  return v;
}

function str(obj: Obj, name: string, where: string, maxLength = MAX_STRING_LENGTH): string {
  const v = field(obj, name);
  if (typeof v !== 'string' || v === '' || v.length > maxLength) {
    throw invalid(`${where}.${name} must be a string of 1 to ${maxLength} characters, got ${describe(v)}`);
  }
  return v;
}

function objectField(obj: Obj, name: string, where: string): Record<string, unknown> {
  const v = field(obj, name);
  if (!isObject(v)) throw invalid(`${where}.${name} must be an object, got ${describe(v)}`);
  return v;
}

function array(obj: Obj, name: string, where: string, max: number): unknown[] {
  const v = field(obj, name);
  if (!Array.isArray(v)) throw invalid(`${where}.${name} must be an array, got ${describe(v)}`);
  if (v.length > max) throw invalid(`${where}.${name} has ${v.length} entries, more than the limit ${max}`);
  return v;
}

function key(value: unknown, where: string): SyncKey {
  if (typeof value !== 'string' || value.length > MAX_STRING_LENGTH || parseSyncKey(value) === undefined) {
    throw invalid(`${where} must be a sync key <group>/<plural>/<namespace>/<name>, got ${describe(value)}`);
  }
  return value;
}

function decodeHello(m: Obj): Hello {
  const entries = array(m, 'inventory', 'hello', MAX_INVENTORY_ITEMS);
  const inventory: Array<readonly [SyncKey, number]> = new Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const where = `hello.inventory[${i}]`;
    if (!Array.isArray(e) || e.length !== 2)
      throw invalid(`${where} must be [key, revision], got ${describe(e)}`);
    const rev = e[1];
    if (typeof rev !== 'number' || !Number.isSafeInteger(rev) || rev < 0) {
      throw invalid(`${where} revision must be a whole number >= 0, got ${describe(rev)}`);
    }
    inventory[i] = [key(e[0], `${where} key`), rev];
  }
  const hello: Hello = {
    type: 'hello',
    v: uint(m, 'v', 'hello'),
    node: str(m, 'node', 'hello', 253),
    revision: uint(m, 'revision', 'hello'),
    inventory,
  };
  const agentVersion =
    field(m, 'agentVersion') === undefined ? {} : { agentVersion: str(m, 'agentVersion', 'hello', 256) };
  return { ...hello, ...agentVersion, ...decodeFeatures(m) };
}

const KNOWN_FEATURES: ReadonlySet<string> = new Set(Object.values(AgentFeatures));

/** hello.features: names this hub does not know are dropped (a newer agent may announce more). */
function decodeFeatures(m: Obj): { features?: AgentFeature[] } {
  if (field(m, 'features') === undefined) return {};
  const raw = array(m, 'features', 'hello', 64);
  const features: AgentFeature[] = [];
  raw.forEach((f, i) => {
    if (typeof f !== 'string' || f === '' || f.length > 64)
      throw invalid(`hello.features[${i}] must be a string of 1 to 64 characters, got ${describe(f)}`);
    if (KNOWN_FEATURES.has(f)) features.push(f as AgentFeature);
  });
  return { features };
}

function decodeStatusAck(m: Obj): StatusAck {
  const seq = uint(m, 'seq', 'status-ack');
  if (field(m, 'written') === undefined) return { type: 'status-ack', seq };
  const written = array(m, 'written', 'status-ack', MAX_BATCH_ITEMS).map((e, i): WrittenStatus => {
    const where = `status-ack.written[${i}]`;
    if (!Array.isArray(e) || e.length !== 3)
      throw invalid(`${where} must be [key, from, to], got ${describe(e)}`);
    const [k, from, to] = e as unknown[];
    if (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 1)
      throw invalid(`${where} from must be a whole number >= 1, got ${describe(from)}`);
    if (typeof to !== 'number' || !Number.isSafeInteger(to) || to <= from)
      throw invalid(`${where} to must be a whole number above from (${from}), got ${describe(to)}`);
    return [key(k, `${where} key`), from, to];
  });
  return { type: 'status-ack', seq, written };
}

function decodeWelcome(m: Obj): Welcome {
  return {
    type: 'welcome',
    v: uint(m, 'v', 'welcome'),
    serverRevision: uint(m, 'serverRevision', 'welcome'),
    heartbeatSeconds: uint(m, 'heartbeatSeconds', 'welcome', 1),
  };
}

function decodeBatch(m: Obj): Batch {
  const raw = array(m, 'items', 'batch', MAX_BATCH_ITEMS);
  const seen = new Set<string>();
  const items: SyncItem[] = raw.map((it, i) => {
    const where = `batch.items[${i}]`;
    if (!isObject(it)) throw invalid(`${where} must be an object, got ${describe(it)}`);
    const k = key(field(it, 'key'), `${where}.key`);
    if (seen.has(k)) throw invalid(`${where}.key ${describe(k)} appears twice in one batch`);
    seen.add(k);
    const revision = uint(it, 'revision', where);
    const deleted = field(it, 'deleted');
    const object = field(it, 'object');
    if (deleted !== undefined) {
      if (deleted !== true)
        throw invalid(`${where}.deleted must be true when present, got ${describe(deleted)}`);
      if (object !== undefined) throw invalid(`${where} must not carry both object and deleted`);
      return { key: k, revision, deleted: true };
    }
    return { key: k, revision, object: objectField(it, 'object', where) };
  });
  return { type: 'batch', seq: uint(m, 'seq', 'batch', 1), revision: uint(m, 'revision', 'batch'), items };
}

function decodeAck(m: Obj): Ack {
  return { type: 'ack', seq: uint(m, 'seq', 'ack'), revision: uint(m, 'revision', 'ack') };
}

function decodeStatusItem(it: unknown, i: number): StatusItem {
  const where = `status.items[${i}]`;
  if (!isObject(it)) throw invalid(`${where} must be an object, got ${describe(it)}`);
  const kind = field(it, 'kind');
  switch (kind) {
    case 'NodeStatus':
      return { kind, name: str(it, 'name', where, 253), status: objectField(it, 'status', where) };
    case 'PodStatus':
      return {
        kind,
        namespace: str(it, 'namespace', where, 253),
        name: str(it, 'name', where, 253),
        uid: str(it, 'uid', where, 128),
        status: objectField(it, 'status', where),
      };
    case 'Event':
      return { kind, namespace: str(it, 'namespace', where, 253), event: objectField(it, 'event', where) };
    case 'DeviceStatus':
      return {
        kind,
        namespace: str(it, 'namespace', where, 253),
        name: str(it, 'name', where, 253),
        status: objectField(it, 'status', where),
      };
    case 'PodDeleted':
      return {
        kind,
        namespace: str(it, 'namespace', where, 253),
        name: str(it, 'name', where, 253),
        uid: str(it, 'uid', where, 128),
      };
    default:
      throw invalid(`${where}.kind ${describe(kind)} is not a known status kind`);
  }
}

function decodeStatus(m: Obj): StatusBatch {
  const items = array(m, 'items', 'status', MAX_BATCH_ITEMS).map(decodeStatusItem);
  return { type: 'status', seq: uint(m, 'seq', 'status'), items };
}

function decodeError(m: Obj): ErrorMessage {
  const code = field(m, 'code');
  if (typeof code !== 'string' || !(ProtocolErrorCodes as readonly string[]).includes(code)) {
    throw invalid(`error.code must be one of ${ProtocolErrorCodes.join(', ')}, got ${describe(code)}`);
  }
  const message = field(m, 'message');
  if (typeof message !== 'string' || message.length > MAX_MESSAGE_LENGTH) {
    throw invalid(`error.message must be a string of at most ${MAX_MESSAGE_LENGTH} characters`);
  }
  return { type: 'error', code: code as ErrorMessage['code'], message };
}

/** Size check, UTF-8 check and JSON parse; returns the message object and its type. */
function parseFrame(frame: string | Buffer): { m: Obj; type: string } {
  let text: string;
  if (typeof frame === 'string') {
    // A character is at least one byte: long strings are too large without counting.
    if (frame.length > MAX_FRAME_BYTES || Buffer.byteLength(frame, 'utf8') > MAX_FRAME_BYTES) {
      throw invalid(`The frame is larger than the limit of ${MAX_FRAME_BYTES} bytes`, 'too-large');
    }
    text = frame;
  } else {
    if (!Buffer.isBuffer(frame)) throw invalid('The frame must be text');
    if (frame.byteLength > MAX_FRAME_BYTES) {
      throw invalid(
        `The frame of ${frame.byteLength} bytes is larger than the limit of ${MAX_FRAME_BYTES} bytes`,
        'too-large',
      );
    }
    try {
      text = decoder.decode(frame);
    } catch {
      throw invalid('The frame is not valid UTF-8');
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw invalid(`The frame is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isObject(parsed)) throw invalid(`The frame must be a JSON object, got ${describe(parsed)}`);
  const type = field(parsed, 'type');
  if (typeof type !== 'string') throw invalid(`The message type must be a string, got ${describe(type)}`);
  return { m: parsed, type };
}

// ---- streams ----

/** Most arguments of an exec command, and the longest one (characters). */
export const MAX_EXEC_ARGS = 1024;
export const MAX_EXEC_ARG_LENGTH = 128 * 1024;
const MAX_STREAM_ID = 0xffff_ffff;

function bool(obj: Obj, name: string, where: string): boolean {
  const v = field(obj, name);
  if (typeof v !== 'boolean') throw invalid(`${where}.${name} must be true or false, got ${describe(v)}`);
  return v;
}

function streamId(obj: Obj, where: string): number {
  const id = uint(obj, 'id', where, 1);
  if (id > MAX_STREAM_ID) throw invalid(`${where}.id must be at most ${MAX_STREAM_ID}, got ${id}`);
  return id;
}

function optionalUint(obj: Obj, name: string, where: string, min = 0): { [k: string]: number } {
  return field(obj, name) === undefined ? {} : { [name]: uint(obj, name, where, min) };
}

function decodeStreamRequest(r: unknown): StreamRequest {
  const where = 'stream-open.request';
  if (!isObject(r)) throw invalid(`${where} must be an object, got ${describe(r)}`);
  const kind = field(r, 'kind');
  const container = str(r, 'container', where, 253);
  if (kind === 'logs') {
    const sinceTime = field(r, 'sinceTime');
    if (sinceTime !== undefined) {
      const t = str(r, 'sinceTime', where, 64);
      if (!/^\d{4}-\d\d-\d\dT/.test(t) || Number.isNaN(Date.parse(t)))
        throw invalid(`${where}.sinceTime must be an RFC 3339 time, got ${describe(t)}`);
    }
    return {
      kind,
      container,
      follow: bool(r, 'follow', where),
      previous: bool(r, 'previous', where),
      timestamps: bool(r, 'timestamps', where),
      ...optionalUint(r, 'tailLines', where),
      ...(sinceTime === undefined ? {} : { sinceTime: sinceTime as string }),
      ...optionalUint(r, 'limitBytes', where, 1),
    };
  }
  if (kind === 'exec') {
    const args = array(r, 'command', where, MAX_EXEC_ARGS);
    if (args.length === 0) throw invalid(`${where}.command must name a command`);
    const command = args.map((a, i) => {
      if (typeof a !== 'string' || a.length > MAX_EXEC_ARG_LENGTH)
        throw invalid(`${where}.command[${i}] must be a string of at most ${MAX_EXEC_ARG_LENGTH} characters`);
      return a;
    });
    if (command[0] === '') throw invalid(`${where}.command[0] must not be empty`);
    return {
      kind,
      container,
      command,
      stdin: bool(r, 'stdin', where),
      stdout: bool(r, 'stdout', where),
      stderr: bool(r, 'stderr', where),
      tty: bool(r, 'tty', where),
    };
  }
  throw invalid(`${where}.kind must be logs or exec, got ${describe(kind)}`);
}

function decodeStreamOpen(m: Obj): StreamOpen {
  const pod = objectField(m, 'pod', 'stream-open');
  return {
    type: 'stream-open',
    id: streamId(m, 'stream-open'),
    pod: {
      namespace: str(pod, 'namespace', 'stream-open.pod', 253),
      name: str(pod, 'name', 'stream-open.pod', 253),
      uid: str(pod, 'uid', 'stream-open.pod', 128),
    },
    request: decodeStreamRequest(field(m, 'request')),
  };
}

function decodeStreamClose(m: Obj): StreamClose {
  const id = streamId(m, 'stream-close');
  const exit = field(m, 'exitCode');
  const error = field(m, 'error');
  let out: StreamClose = { type: 'stream-close', id };
  if (exit !== undefined) {
    if (typeof exit !== 'number' || !Number.isInteger(exit) || exit < -(2 ** 31) || exit >= 2 ** 31)
      throw invalid(`stream-close.exitCode must be a 32-bit integer, got ${describe(exit)}`);
    out = { ...out, exitCode: exit };
  }
  if (error !== undefined) {
    if (!isObject(error)) throw invalid(`stream-close.error must be an object, got ${describe(error)}`);
    const reason = field(error, 'reason');
    if (typeof reason !== 'string' || !(StreamErrorReasons as readonly string[]).includes(reason)) {
      throw invalid(
        `stream-close.error.reason must be one of ${StreamErrorReasons.join(', ')}, got ${describe(reason)}`,
      );
    }
    const message = field(error, 'message');
    if (typeof message !== 'string' || message.length > MAX_MESSAGE_LENGTH)
      throw invalid(
        `stream-close.error.message must be a string of at most ${MAX_MESSAGE_LENGTH} characters`,
      );
    out = { ...out, error: { reason: reason as (typeof StreamErrorReasons)[number], message } };
  }
  return out;
}

function decodeStreamWindow(m: Obj): { type: 'stream-window'; id: number; bytes: number } {
  const bytes = uint(m, 'bytes', 'stream-window', 1);
  if (bytes > 2 ** 31) throw invalid(`stream-window.bytes must be at most ${2 ** 31}, got ${bytes}`);
  return { type: 'stream-window', id: streamId(m, 'stream-window'), bytes };
}

/** A binary stream frame (layout in messages.ts). `from` says who sent it: it decides the allowed channels. */
export function decodeStreamFrame(frame: Buffer, from: 'hub' | 'agent'): StreamFrame {
  if (frame.byteLength < STREAM_FRAME_HEADER_BYTES) {
    throw invalid(`A stream frame needs ${STREAM_FRAME_HEADER_BYTES} header bytes, got ${frame.byteLength}`);
  }
  const kindByte = frame[0]!;
  const id = frame.readUInt32BE(1);
  const channel = frame[5]!;
  const payload = frame.subarray(STREAM_FRAME_HEADER_BYTES);
  if (kindByte !== 1 && kindByte !== 2)
    throw invalid(`Stream frame kind ${kindByte} is not 1 (data) or 2 (eof)`);
  if (id === 0) throw invalid('Stream frame id 0 is not a stream');
  const allowed = from === 'hub' ? [0] : [1, 2];
  if (!allowed.includes(channel)) {
    throw invalid(`Stream channel ${channel} is not one the ${from} sends on (${allowed.join(', ')})`);
  }
  if (kindByte === 2) {
    if (from !== 'hub') throw invalid('Only the hub sends eof frames (end of stdin)');
    if (payload.byteLength !== 0) throw invalid('A stream eof frame carries no payload');
    return { kind: 'eof', id, channel: channel as StreamChannel, payload };
  }
  if (payload.byteLength === 0) throw invalid(`Stream ${id} data frame is empty`);
  if (payload.byteLength > STREAM_CHUNK_BYTES) {
    throw invalid(
      `Stream ${id} data frame of ${payload.byteLength} bytes is larger than the limit of ${STREAM_CHUNK_BYTES}`,
      'too-large',
    );
  }
  return { kind: 'data', id, channel: channel as StreamChannel, payload };
}

/** The binary frame for data (1 to STREAM_CHUNK_BYTES bytes) or an eof of one stream channel. */
export function encodeStreamFrame(frame: StreamFrame): Buffer {
  const n = frame.kind === 'eof' ? 0 : frame.payload.byteLength;
  if (frame.kind === 'data' && (n === 0 || n > STREAM_CHUNK_BYTES)) {
    throw invalid(`A stream data frame carries 1 to ${STREAM_CHUNK_BYTES} bytes, not ${n}`, 'too-large');
  }
  const out = Buffer.allocUnsafe(STREAM_FRAME_HEADER_BYTES + n);
  out[0] = frame.kind === 'data' ? 1 : 2;
  out.writeUInt32BE(frame.id, 1);
  out[5] = frame.channel;
  if (n > 0) frame.payload.copy(out, STREAM_FRAME_HEADER_BYTES);
  return out;
}

/** Parses a frame the agent sent (hello, ack, status, heartbeat, error). Throws KEDGE_PROTOCOL_INVALID. */
export function decodeAgentMessage(frame: string | Buffer): AgentMessage {
  const { m, type } = parseFrame(frame);
  switch (type) {
    case 'hello':
      return decodeHello(m);
    case 'ack':
      return decodeAck(m);
    case 'status':
      return decodeStatus(m);
    case 'heartbeat':
      return { type: 'heartbeat' };
    case 'error':
      return decodeError(m);
    case 'stream-window':
      return decodeStreamWindow(m);
    case 'stream-close':
      return decodeStreamClose(m);
    default:
      throw invalid(`The message type ${describe(type)} is not one an agent sends`);
  }
}

/** Parses a frame the hub sent (welcome, batch, status-ack, error). Throws KEDGE_PROTOCOL_INVALID. */
export function decodeHubMessage(frame: string | Buffer): HubMessage {
  const { m, type } = parseFrame(frame);
  switch (type) {
    case 'welcome':
      return decodeWelcome(m);
    case 'batch':
      return decodeBatch(m);
    case 'status-ack':
      return decodeStatusAck(m);
    case 'error':
      return decodeError(m);
    case 'stream-open':
      return decodeStreamOpen(m);
    case 'stream-window':
      return decodeStreamWindow(m);
    case 'stream-resize': {
      const size = (name: string): number => {
        const v = uint(m, name, 'stream-resize');
        if (v > 65535) throw invalid(`stream-resize.${name} must be at most 65535, got ${v}`);
        return v;
      };
      return {
        type: 'stream-resize',
        id: streamId(m, 'stream-resize'),
        width: size('width'),
        height: size('height'),
      };
    }
    case 'stream-cancel':
      return { type: 'stream-cancel', id: streamId(m, 'stream-cancel') };
    default:
      throw invalid(`The message type ${describe(type)} is not one the hub sends`);
  }
}

/** JSON text of a message; throws KEDGE_PROTOCOL_INVALID when it would exceed MAX_FRAME_BYTES. */
export function encodeMessage(m: Message): string {
  const text = JSON.stringify(m);
  if (text.length > MAX_FRAME_BYTES || Buffer.byteLength(text, 'utf8') > MAX_FRAME_BYTES) {
    throw invalid(`The ${m.type} message is larger than the limit of ${MAX_FRAME_BYTES} bytes`, 'too-large');
  }
  return text;
}

/** UTF-8 size of an encoded frame (for batching and metrics). */
export function frameBytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}
