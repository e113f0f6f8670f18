/** Decodes the protobuf request bodies kubectl sends into the JSON objects a JSON client would send. */
import { readFileSync } from 'node:fs';
import type { Field, Root, Type } from 'protobufjs';
import protobuf from 'protobufjs';
import type { KubeObject, ObjectMeta } from '../../api/meta.ts';
import { isPlainObject } from '../../api/meta.ts';
import { isKedgeError, KedgeError } from '../../lib/errors.ts';

/** The media type of Kubernetes protobuf bodies. */
export const PROTOBUF_CONTENT_TYPE = 'application/vnd.kubernetes.protobuf';

/** Every protobuf body starts with these bytes ("k8s\0"), then a runtime.Unknown envelope. */
const MAGIC = Uint8Array.of(0x6b, 0x38, 0x73, 0x00);

/** Kinds kedge decodes: `apiVersion/kind` → message in k8s.proto. */
const MESSAGES: ReadonlyMap<string, string> = new Map([
  ['v1/Namespace', 'Namespace'],
  ['v1/ConfigMap', 'ConfigMap'],
  ['v1/Secret', 'Secret'],
  ['v1/Service', 'Service'],
  ['v1/ServiceAccount', 'ServiceAccount'],
  ['v1/Pod', 'Pod'],
  ['apps/v1/Deployment', 'Deployment'],
  ['batch/v1/Job', 'Job'],
  ['batch/v1/CronJob', 'CronJob'],
  ['coordination.k8s.io/v1/Lease', 'Lease'],
  ['authorization.k8s.io/v1/SelfSubjectAccessReview', 'SelfSubjectAccessReview'],
]);

/** A RawExtension may hold another protobuf object; deeper nesting than this is refused. */
const MAX_NESTING = 8;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** `apiVersion/kind` pairs decodeProtobufObject accepts. */
export function supportedProtobufKinds(): string[] {
  return [...MESSAGES.keys()];
}

/** True for `application/vnd.kubernetes.protobuf`, with or without parameters. */
export function isProtobufContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const base = contentType.split(';', 1)[0] ?? '';
  return base.trim().toLowerCase() === PROTOBUF_CONTENT_TYPE;
}

/**
 * Decodes a Kubernetes protobuf body (magic, runtime.Unknown envelope, typed message) into a JSON-shaped
 * object with `apiVersion` and `kind` from the envelope. Throws only KedgeError: KEDGE_PROTOBUF_INVALID
 * for bodies that cannot be decoded, KEDGE_PROTOBUF_UNSUPPORTED for kinds kedge has no schema for.
 */
export function decodeProtobufObject(body: Uint8Array): KubeObject {
  return decodeAt(body, 0);
}

function decodeAt(body: Uint8Array, depth: number): KubeObject {
  const schema = loadSchema();
  try {
    return decodeEnvelope(schema, body, depth);
  } catch (err) {
    if (isKedgeError(err)) throw err;
    throw new KedgeError(
      'KEDGE_PROTOBUF_INVALID',
      `Protobuf body of ${body.length} bytes cannot be decoded: ${errorText(err)}`,
      { cause: err, context: { length: body.length } },
    );
  }
}

function decodeEnvelope(schema: Schema, body: Uint8Array, depth: number): KubeObject {
  if (body.length < MAGIC.length || MAGIC.some((byte, i) => body[i] !== byte)) {
    throw new KedgeError(
      'KEDGE_PROTOBUF_INVALID',
      `Protobuf body does not start with the magic bytes k8s\\0 (first bytes: ${hex(body.subarray(0, 4))})`,
      { context: { length: body.length } },
    );
  }
  const envelope = schema.unknown.decode(body.subarray(MAGIC.length)) as unknown as Envelope;
  const apiVersion = envelope.typeMeta?.apiVersion ?? '';
  const kind = envelope.typeMeta?.kind ?? '';
  if (apiVersion === '' || kind === '') {
    throw new KedgeError(
      'KEDGE_PROTOBUF_INVALID',
      `Protobuf envelope names no apiVersion or kind (apiVersion "${apiVersion}", kind "${kind}")`,
      { context: { apiVersion, kind } },
    );
  }
  const encoding = envelope.contentEncoding ?? '';
  const innerType = envelope.contentType ?? '';
  if (encoding !== '' || (innerType !== '' && !isProtobufContentType(innerType))) {
    throw new KedgeError(
      'KEDGE_PROTOBUF_UNSUPPORTED',
      `Protobuf envelope for ${apiVersion}/${kind} uses content encoding "${encoding}" and type "${innerType}", which kedge cannot decode`,
      { context: { apiVersion, kind, contentEncoding: encoding, contentType: innerType } },
    );
  }
  const messageName = MESSAGES.get(`${apiVersion}/${kind}`);
  if (messageName === undefined) {
    throw new KedgeError(
      'KEDGE_PROTOBUF_UNSUPPORTED',
      `Protobuf body holds ${apiVersion}/${kind}, which kedge cannot decode`,
      { context: { apiVersion, kind } },
    );
  }
  const type = schema.root.lookupType(messageName);
  const message = type.decode(envelope.raw ?? new Uint8Array()) as unknown as Decoded;
  const { metadata, ...rest } = convertMessage(type, message, depth);
  return { apiVersion, kind, metadata: (isPlainObject(metadata) ? metadata : {}) as ObjectMeta, ...rest };
}

interface Envelope {
  typeMeta?: { apiVersion?: string; kind?: string };
  raw?: Uint8Array;
  contentEncoding?: string;
  contentType?: string;
}

/** A message as protobufjs decodes it: fields present on the wire are own properties. */
type Decoded = Record<string, unknown>;

function convertMessage(type: Type, message: Decoded, depth: number): JsonObject {
  const out: JsonObject = {};
  for (const field of type.fieldsArray) {
    if (!Object.hasOwn(message, field.name)) continue;
    const value = message[field.name];
    if (field.map) {
      const entries = Object.entries(value as Decoded);
      if (entries.length === 0) continue;
      const map: JsonObject = {};
      for (const [key, item] of entries) map[key] = convertValue(field, item, true, depth) ?? null;
      out[field.name] = map;
    } else if (field.repeated) {
      const items = value as unknown[];
      if (items.length === 0) continue;
      out[field.name] = items.map((item) => convertValue(field, item, true, depth) ?? null);
    } else {
      const converted = convertValue(field, value, option(field, 'nullable'), depth);
      if (converted === undefined) continue;
      if (option(field, 'embedded') && isPlainObject(converted)) Object.assign(out, converted);
      else out[field.name] = converted;
    }
  }
  return out;
}

/** One field value as JSON; undefined when it is a zero value that Go's JSON would leave out. */
function convertValue(field: Field, value: unknown, keepZero: boolean, depth: number): Json | undefined {
  const resolved = field.resolvedType;
  if (resolved !== null && 'fieldsArray' in resolved) {
    return convertSpecial(resolved, value as Decoded, keepZero, depth);
  }
  const scalar = convertScalar(field.type, value);
  if (!keepZero && (scalar === 0 || scalar === '' || scalar === false)) return undefined;
  return scalar;
}

function convertScalar(type: string, value: unknown): Json {
  switch (type) {
    case 'bytes':
      return Buffer.from(value as Uint8Array).toString('base64');
    case 'int64':
    case 'uint64':
    case 'sint64':
    case 'fixed64':
    case 'sfixed64':
      return toNumber(value);
    default:
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
      throw new TypeError(`unexpected ${type} value`);
  }
}

/** Messages with their own JSON form in the Kubernetes API; every other message becomes an object. */
function convertSpecial(type: Type, message: Decoded, keepZero: boolean, depth: number): Json | undefined {
  switch (type.name) {
    case 'Time':
      return formatTime(message, false);
    case 'MicroTime':
      return formatTime(message, true);
    case 'Quantity':
      return typeof message['string'] === 'string' && message['string'] !== ''
        ? message['string']
        : undefined;
    case 'IntOrString': {
      const value =
        toNumber(message['type'] ?? 0) === 1
          ? String(message['strVal'] ?? '')
          : toNumber(message['intVal'] ?? 0);
      return !keepZero && (value === 0 || value === '') ? undefined : value;
    }
    case 'RawExtension':
      return parseRaw(message['raw'], depth);
    case 'FieldsV1':
      return parseRaw(message['Raw'], depth);
    default:
      return convertMessage(type, message, depth);
  }
}

/** Embedded raw bytes: JSON text, or another protobuf object. */
function parseRaw(raw: unknown, depth: number): Json | undefined {
  if (!(raw instanceof Uint8Array) || raw.length === 0) return undefined;
  if (raw.length >= MAGIC.length && MAGIC.every((byte, i) => raw[i] === byte)) {
    if (depth >= MAX_NESTING) {
      throw new KedgeError(
        'KEDGE_PROTOBUF_INVALID',
        `Protobuf objects are nested deeper than ${MAX_NESTING}`,
      );
    }
    return decodeAt(raw, depth + 1) as unknown as Json;
  }
  return JSON.parse(Buffer.from(raw).toString('utf8')) as Json;
}

/** meta/v1 Time as RFC 3339 in seconds (`2024-01-02T03:04:05Z`); MicroTime with six fraction digits. */
function formatTime(message: Decoded, micro: boolean): string | undefined {
  // Go writes the zero time as an empty message, and reads one back as the zero time (JSON null).
  if (!Object.hasOwn(message, 'seconds') && !Object.hasOwn(message, 'nanos')) return undefined;
  const seconds = toNumber(message['seconds'] ?? 0);
  const nanos = toNumber(message['nanos'] ?? 0);
  const date = new Date(seconds * 1000);
  const year = date.getUTCFullYear();
  if (!Number.isFinite(year) || year < 0 || year > 9999 || nanos < 0 || nanos > 999_999_999) {
    throw new KedgeError(
      'KEDGE_PROTOBUF_INVALID',
      `Protobuf timestamp ${seconds}s ${nanos}ns is outside the years 0 to 9999`,
      { context: { seconds, nanos } },
    );
  }
  const base = date.toISOString().slice(0, 19);
  if (!micro) return `${base}Z`;
  return `${base}.${String(Math.floor(nanos / 1000)).padStart(6, '0')}Z`;
}

/** int64 fields arrive as numbers or as Long objects, depending on whether `long` is installed. */
function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (
    typeof value === 'object' &&
    value !== null &&
    'toNumber' in value &&
    typeof value.toNumber === 'function'
  ) {
    return Number(value.toNumber());
  }
  throw new TypeError(`expected an integer, got ${typeof value}`);
}

function option(field: Field, name: string): boolean {
  return field.options?.[`(${name})`] === true;
}

interface Schema {
  readonly root: Root;
  readonly unknown: Type;
}

let schema: Schema | undefined;

/** Parses k8s.proto on first use. */
function loadSchema(): Schema {
  if (schema !== undefined) return schema;
  const text = readFileSync(new URL('./k8s.proto', import.meta.url), 'utf8');
  const { root } = protobuf.parse(text, { keepCase: true });
  root.resolveAll();
  schema = { root, unknown: root.lookupType('k8s.Unknown') };
  return schema;
}

function hex(bytes: Uint8Array): string {
  return bytes.length === 0 ? 'none' : Buffer.from(bytes).toString('hex');
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
