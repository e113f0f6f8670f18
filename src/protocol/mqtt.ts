/**
 * The device twin MQTT protocol on every edge node: KubeEdge's topic scheme and JSON payloads (event_id,
 * timestamp, twin{prop:{expected, actual, optional, metadata{type}, expected_version, actual_version}}).
 *
 * Topics (ID is `namespace/name`; the one-segment KubeEdge form `$hw/events/device/NAME/...` is accepted
 * and means namespace `default`):
 *   in:  $hw/events/device/ID/twin/update       twin/get       state/update
 *   out: $hw/events/device/ID/twin/update/result   twin/update/delta   twin/update/document
 *        twin/get/result   state/update/result
 *   in:  $hw/events/node/NODE/membership/get
 *   out: $hw/events/node/NODE/membership/get/result   $hw/events/node/NODE/membership/updated
 *
 * What kedge adds where KubeEdge's format has a hole: `actual_version.edge` / `expected_version.edge` sent
 * by a client is a claim "this is version N"; N at or below the twin's version is refused as stale. A
 * `metadata.timestamp` (ms) older than the stored value's is refused too. Both are optional: KubeEdge
 * payloads without them are accepted and versioned by the agent. Results carry `code` and `reason` on error.
 */
import { KedgeError } from '../lib/errors.ts';

export const DEVICE_PREFIX = '$hw/events/device/';
export const NODE_PREFIX = '$hw/events/node/';

export const DeviceInTopics = ['twin/update', 'twin/get', 'state/update'] as const;
export const DeviceOutTopics = [
  'twin/update/result',
  'twin/update/delta',
  'twin/update/document',
  'twin/get/result',
  'state/update/result',
] as const;
export type DeviceInAction = (typeof DeviceInTopics)[number];
export type DeviceOutAction = (typeof DeviceOutTopics)[number];

/** `$hw/events/device/NS/NAME/ACTION`. */
export function deviceTopic(
  namespace: string,
  name: string,
  action: DeviceInAction | DeviceOutAction,
): string {
  return `${DEVICE_PREFIX}${namespace}/${name}/${action}`;
}

/** `$hw/events/device/NAME/ACTION`: KubeEdge's one-segment form, for devices in namespace `default`. */
export function legacyDeviceTopic(name: string, action: DeviceInAction | DeviceOutAction): string {
  return `${DEVICE_PREFIX}${name}/${action}`;
}

/** `$hw/events/node/NODE/membership/ACTION`. */
export function membershipTopic(node: string, action: 'get' | 'get/result' | 'updated'): string {
  return `${NODE_PREFIX}${node}/membership/${action}`;
}

/**
 * What the agent subscribes to: exactly the inbound topics (both ID forms), so the results, deltas and
 * documents it publishes are not delivered back to it.
 */
export const SUBSCRIPTIONS: readonly string[] = [
  ...DeviceInTopics.flatMap((a) => [`${DEVICE_PREFIX}+/+/${a}`, `${DEVICE_PREFIX}+/${a}`]),
  `${NODE_PREFIX}+/membership/get`,
];

export type ParsedTopic =
  | {
      readonly kind: 'device';
      readonly namespace: string;
      readonly name: string;
      readonly action: DeviceInAction | DeviceOutAction;
      /** True for the one-segment KubeEdge form (namespace 'default'). */
      readonly legacy: boolean;
    }
  | { readonly kind: 'membership-get'; readonly node: string };

const ACTIONS: readonly string[] = [...DeviceOutTopics, ...DeviceInTopics];

/** Parses a twin topic; undefined for topics outside the scheme. */
export function parseTopic(topic: string): ParsedTopic | undefined {
  if (topic.startsWith(NODE_PREFIX)) {
    const rest = topic.slice(NODE_PREFIX.length).split('/');
    if (rest.length === 3 && rest[0] !== '' && rest[1] === 'membership' && rest[2] === 'get')
      return { kind: 'membership-get', node: rest[0]! };
    return undefined;
  }
  if (!topic.startsWith(DEVICE_PREFIX)) return undefined;
  const rest = topic.slice(DEVICE_PREFIX.length);
  for (const action of ACTIONS) {
    if (!rest.endsWith(`/${action}`)) continue;
    const id = rest.slice(0, -action.length - 1).split('/');
    if (id.some((s) => s === '' || s === '+' || s === '#')) return undefined;
    if (id.length === 2)
      return {
        kind: 'device',
        namespace: id[0]!,
        name: id[1]!,
        action: action as DeviceInAction,
        legacy: false,
      };
    if (id.length === 1)
      return {
        kind: 'device',
        namespace: 'default',
        name: id[0]!,
        action: action as DeviceInAction,
        legacy: true,
      };
    return undefined;
  }
  return undefined;
}

// ---- payloads ----

export interface TwinVersion {
  readonly cloud: number;
  readonly edge: number;
}

export interface TwinValue {
  readonly value?: string;
  readonly metadata?: { readonly timestamp?: number };
}

export interface MsgTwin {
  readonly expected?: TwinValue;
  readonly actual?: TwinValue;
  readonly optional?: boolean;
  readonly metadata?: { readonly type?: string };
  readonly expected_version?: TwinVersion;
  readonly actual_version?: TwinVersion;
}

export interface TwinUpdate {
  readonly event_id: string;
  readonly timestamp: number;
  /** A null entry deletes the property's twin (KubeEdge semantics); kept as null. */
  readonly twin: Readonly<Record<string, MsgTwin | null>>;
}

export interface StateUpdate {
  readonly event_id: string;
  readonly timestamp: number;
  readonly state: 'online' | 'offline' | 'unknown';
}

export interface BaseRequest {
  readonly event_id: string;
  readonly timestamp: number;
}

/** The largest payload the agent reads (bytes). */
export const MAX_PAYLOAD_BYTES = 256 * 1024;
const KEY = /^[A-Za-z0-9][-A-Za-z0-9_.,:/@#]{0,127}$/;
const MAX_VALUE = 512;

function bad(message: string, eventId = ''): KedgeError {
  return new KedgeError('KEDGE_MQTT_PAYLOAD_INVALID', message, { context: { eventId } });
}

function parseJson(payload: Uint8Array | string): Record<string, unknown> {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
  if (size > MAX_PAYLOAD_BYTES) throw bad(`Payload of ${size} bytes is larger than ${MAX_PAYLOAD_BYTES}`);
  const text = typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8');
  if (text.trim() === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw bad(`Payload is not JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('Payload must be a JSON object');
  return v as Record<string, unknown>;
}

function base(o: Record<string, unknown>): BaseRequest {
  const id = o['event_id'];
  if (id !== undefined && typeof id !== 'string') throw bad('event_id must be a string');
  const ts = o['timestamp'];
  if (ts !== undefined && (typeof ts !== 'number' || !Number.isFinite(ts) || ts < 0))
    throw bad('timestamp must be a non-negative number of milliseconds', id ?? '');
  return { event_id: id ?? '', timestamp: ts ?? 0 };
}

/** The event_id of a payload if it has one (for error results of payloads that do not parse). */
export function eventIdOf(payload: Uint8Array | string): string {
  try {
    const id = parseJson(payload)['event_id'];
    return typeof id === 'string' ? id : '';
  } catch {
    return '';
  }
}

function version(v: unknown, field: string, id: string): TwinVersion | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(`${field} must be {cloud, edge}`, id);
  const o = v as Record<string, unknown>;
  const n = (x: unknown, f: string): number => {
    if (x === undefined) return 0;
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0)
      throw bad(`${field}.${f} must be a non-negative integer`, id);
    return x;
  };
  return { cloud: n(o['cloud'], 'cloud'), edge: n(o['edge'], 'edge') };
}

function twinValue(v: unknown, field: string, id: string): TwinValue | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(`${field} must be an object with a value`, id);
  const o = v as Record<string, unknown>;
  const value = o['value'];
  if (value !== undefined && typeof value !== 'string')
    throw bad(`${field}.value must be a string (twin values travel as strings)`, id);
  if (typeof value === 'string' && value.length > MAX_VALUE)
    throw bad(`${field}.value is longer than ${MAX_VALUE} characters`, id);
  const meta = o['metadata'];
  let timestamp: number | undefined;
  if (meta !== undefined && meta !== null) {
    if (typeof meta !== 'object' || Array.isArray(meta)) throw bad(`${field}.metadata must be an object`, id);
    const ts = (meta as Record<string, unknown>)['timestamp'];
    if (ts !== undefined) {
      if (typeof ts !== 'number' || !Number.isFinite(ts) || ts < 0)
        throw bad(`${field}.metadata.timestamp must be milliseconds`, id);
      timestamp = ts;
    }
  }
  return {
    ...(value === undefined ? {} : { value }),
    ...(timestamp === undefined ? {} : { metadata: { timestamp } }),
  };
}

/** Parses a twin/update payload; throws KEDGE_MQTT_PAYLOAD_INVALID saying what is wrong. */
export function parseTwinUpdate(payload: Uint8Array | string): TwinUpdate {
  const o = parseJson(payload);
  const b = base(o);
  const id = b.event_id;
  const twin = o['twin'];
  if (typeof twin !== 'object' || twin === null || Array.isArray(twin))
    throw bad('twin must be an object of properties', id);
  const out: Record<string, MsgTwin | null> = {};
  for (const [key, raw] of Object.entries(twin as Record<string, unknown>)) {
    if (!KEY.test(key)) throw bad(`Twin key ${JSON.stringify(key)} is not a valid property name`, id);
    if (raw === null) {
      out[key] = null;
      continue;
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) throw bad(`twin.${key} must be an object`, id);
    const t = raw as Record<string, unknown>;
    const meta = t['metadata'];
    let type: string | undefined;
    if (meta !== undefined && meta !== null) {
      if (typeof meta !== 'object' || Array.isArray(meta))
        throw bad(`twin.${key}.metadata must be an object`, id);
      const ty = (meta as Record<string, unknown>)['type'];
      if (ty !== undefined && typeof ty !== 'string')
        throw bad(`twin.${key}.metadata.type must be a string`, id);
      type = ty;
    }
    const optional = t['optional'];
    if (optional !== undefined && typeof optional !== 'boolean')
      throw bad(`twin.${key}.optional must be a boolean`, id);
    const expected = twinValue(t['expected'], `twin.${key}.expected`, id);
    const actual = twinValue(t['actual'], `twin.${key}.actual`, id);
    const ev = version(t['expected_version'], `twin.${key}.expected_version`, id);
    const av = version(t['actual_version'], `twin.${key}.actual_version`, id);
    out[key] = {
      ...(expected === undefined ? {} : { expected }),
      ...(actual === undefined ? {} : { actual }),
      ...(optional === undefined ? {} : { optional }),
      ...(type === undefined ? {} : { metadata: { type } }),
      ...(ev === undefined ? {} : { expected_version: ev }),
      ...(av === undefined ? {} : { actual_version: av }),
    };
  }
  return { ...b, twin: out };
}

/** Parses a state/update payload ({state: online|offline|unknown}). */
export function parseStateUpdate(payload: Uint8Array | string): StateUpdate {
  const o = parseJson(payload);
  const b = base(o);
  const state = o['state'];
  if (state !== 'online' && state !== 'offline' && state !== 'unknown')
    throw bad(`state must be "online", "offline" or "unknown", got ${JSON.stringify(state)}`, b.event_id);
  return { ...b, state };
}

/** Parses a twin/get or membership/get payload (an empty payload is allowed). */
export function parseBaseRequest(payload: Uint8Array | string): BaseRequest {
  return base(parseJson(payload));
}

/** An error result: `{event_id, timestamp, code, reason}` (KubeEdge's Result). */
export function errorResult(eventId: string, code: number, reason: string, now = Date.now()): string {
  return JSON.stringify({ event_id: eventId, timestamp: now, code, reason });
}
