/**
 * The codec of the cloud↔edge protocol (messages.ts): one JSON message per text frame. Decoding is strict:
 * every field is checked and copied into a fresh object (unknown fields are dropped, so a newer peer may add
 * fields), and anything wrong is a KedgeError KEDGE_PROTOCOL_INVALID whose context.protocolCode says which
 * protocol error to answer with ('too-large' or 'bad-frame').
 */
import { KedgeError } from '../lib/errors.ts';
import {
  type Ack,
  type AgentMessage,
  type Batch,
  type ErrorMessage,
  type Hello,
  type HubMessage,
  MAX_FRAME_BYTES,
  type Message,
  ProtocolErrorCodes,
  parseSyncKey,
  type StatusBatch,
  type StatusItem,
  type SyncItem,
  type SyncKey,
  type Welcome,
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
  if (field(m, 'agentVersion') === undefined) return hello;
  return { ...hello, agentVersion: str(m, 'agentVersion', 'hello', 256) };
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
      return { type: 'status-ack', seq: uint(m, 'seq', 'status-ack') };
    case 'error':
      return decodeError(m);
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
