/**
 * The edge twin store: one twin document per device bound to this node, in the agent's SQLite store, fed
 * by three sources that all go through the same checks: the cloud (desired values in the synced Device),
 * MQTT clients (twin/update, state/update) and mappers. Every accepted change bumps the device's
 * edgeVersion and, in the same transaction, queues the device's status for the cloud (coalesced per
 * device in the outbox): nothing is lost offline, and the newest report wins.
 */
import {
  DeviceResources,
  type DeviceStateName,
  type DeviceView,
  type ModelProperty,
  parseDevice,
  parseModelProperties,
  valueError,
} from '../../api/devices.ts';
import { isPlainObject, type KubeObject } from '../../api/meta.ts';
import { isKedgeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { type StatusItem, syncKey } from '../../protocol/messages.ts';
import {
  type DeviceOutAction,
  deviceTopic,
  errorResult,
  eventIdOf,
  legacyDeviceTopic,
  type MsgTwin,
  membershipTopic,
  parseBaseRequest,
  parseStateUpdate,
  parseTwinUpdate,
  type TwinVersion,
} from '../../protocol/mqtt.ts';
import type { LocalChange, LocalStore } from '../local-store.ts';
import type { Outbox } from '../outbox.ts';

interface StoredValue {
  value: string;
  metadata: { timestamp: number };
}

interface StoredTwin {
  expected?: StoredValue;
  actual?: StoredValue;
  optional: boolean;
  metadata: { type: string };
  expected_version: TwinVersion;
  actual_version: TwinVersion;
}

/** A device's twin document as stored. */
export interface TwinDoc {
  namespace: string;
  name: string;
  state: DeviceStateName;
  lastOnline?: string;
  /** Bumped on every accepted change; the cloud keeps the status with the highest. */
  version: number;
  twin: Record<string, StoredTwin>;
}

/** Sends one MQTT message (QoS 1); the bus decides how. */
export type Publish = (topic: string, payload: string) => void;

export interface TwinManagerOptions {
  readonly nodeName: string;
  readonly store: LocalStore;
  readonly outbox: Outbox;
  readonly logger: Logger;
  /** Hears each handled device message: its action and result code (200 accepted). */
  readonly onHandled?: (action: string, code: number) => void;
  readonly now?: () => number;
}

/** Why an update was refused: HTTP-like code and a reason (sent as the result payload). */
export class TwinRefusal extends Error {
  readonly code: number;
  constructor(code: number, reason: string) {
    super(reason);
    this.code = code;
  }
}

export type TwinEvent =
  | {
      readonly type: 'desired';
      readonly namespace: string;
      readonly name: string;
      readonly property: string;
      readonly value: string;
    }
  | { readonly type: 'devices'; readonly added: readonly string[]; readonly removed: readonly string[] }
  /** The synced Device or its model changed (any field): whoever runs it may need to reopen. */
  | { readonly type: 'updated'; readonly namespace: string; readonly name: string };

const DEVICES_PREFIX = `${DeviceResources.devices.group}/${DeviceResources.devices.resource}/`;
const MODELS_PREFIX = `${DeviceResources.devicemodels.group}/${DeviceResources.devicemodels.resource}/`;

const newTwin = (type: string, optional: boolean): StoredTwin => ({
  optional,
  metadata: { type },
  expected_version: { cloud: 0, edge: 0 },
  actual_version: { cloud: 0, edge: 0 },
});

const idOf = (namespace: string, name: string): string => `${namespace}/${name}`;
const deviceKey = (namespace: string, name: string): string =>
  syncKey(DeviceResources.devices.group, DeviceResources.devices.resource, namespace, name);
const modelKey = (namespace: string, name: string): string =>
  syncKey(DeviceResources.devicemodels.group, DeviceResources.devicemodels.resource, namespace, name);

export class TwinManager {
  readonly #o: TwinManagerOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #publishers = new Set<Publish>();
  readonly #listeners = new Set<(e: TwinEvent) => void>();
  readonly #docs = new Map<string, TwinDoc>();
  /** Parsed Device + model per device id, dropped when either changes in the local store. */
  readonly #specs = new Map<
    string,
    { view: DeviceView; model: ModelProperty[]; byName: Map<string, ModelProperty> }
  >();
  #off: (() => void) | undefined;
  #eventSeq = 0;

  constructor(options: TwinManagerOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#now = options.now ?? Date.now;
  }

  /** Loads the stored twins, applies what the local store holds, and follows its changes. */
  start(): void {
    for (const [id, text] of this.#o.store.twinAll()) {
      try {
        this.#docs.set(id, JSON.parse(text) as TwinDoc);
      } catch (err) {
        this.#log.error({ err, device: id }, 'stored twin cannot be read; starting it afresh');
      }
    }
    const present = new Set<string>();
    for (const { object } of this.#o.store.list(DEVICES_PREFIX)) {
      const view = parseDevice(object);
      present.add(idOf(view.namespace, view.name));
      this.#reconcile(object);
    }
    for (const id of [...this.#docs.keys()]) if (!present.has(id)) this.#remove(id);
    this.#off = this.#o.store.onChange((changes) => this.#onChanges(changes));
  }

  stop(): void {
    this.#off?.();
    this.#off = undefined;
  }

  /** Adds a bus that publishes results, deltas and documents; returns the remover. */
  addPublisher(p: Publish): () => void {
    this.#publishers.add(p);
    return () => this.#publishers.delete(p);
  }

  /** Hear desired values to write and membership changes; returns the unsubscribe function. */
  onEvent(listener: (e: TwinEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Ids (`namespace/name`) of the devices bound to this node. */
  deviceIds(): string[] {
    return [...this.#docs.keys()];
  }

  twin(namespace: string, name: string): Readonly<TwinDoc> | undefined {
    return this.#docs.get(idOf(namespace, name));
  }

  /** The Device and the properties of its model, as synced to this node. */
  device(namespace: string, name: string): { view: DeviceView; model: ModelProperty[] } | undefined {
    return this.#spec(namespace, name);
  }

  #spec(
    namespace: string,
    name: string,
  ): { view: DeviceView; model: ModelProperty[]; byName: Map<string, ModelProperty> } | undefined {
    const id = idOf(namespace, name);
    const cached = this.#specs.get(id);
    if (cached !== undefined) return cached;
    const dev = this.#o.store.get(deviceKey(namespace, name))?.object;
    if (dev === undefined) return undefined;
    const view = parseDevice(dev);
    const model = parseModelProperties(this.#o.store.get(modelKey(namespace, view.model))?.object);
    const spec = { view, model, byName: new Map(model.map((p) => [p.name, p])) };
    this.#specs.set(id, spec);
    return spec;
  }

  // ---- inbound MQTT ----

  /** Handles one message on a device topic the agent serves; every outcome publishes a result. */
  handleDevice(namespace: string, name: string, action: string, payload: Uint8Array, legacy = false): void {
    // The result goes to the topic form the request used.
    const result = (a: DeviceOutAction, text: string, code = 200): void => {
      this.#o.onHandled?.(action, code);
      this.#publish(legacy ? legacyDeviceTopic(name, a) : deviceTopic(namespace, name, a), text);
    };
    const failed = (a: DeviceOutAction, err: unknown): void => {
      const code =
        err instanceof TwinRefusal ? err.code : isKedgeError(err, 'KEDGE_MQTT_PAYLOAD_INVALID') ? 400 : 500;
      if (code === 500) this.#log.error({ err, device: idOf(namespace, name) }, 'twin update failed');
      result(
        a,
        errorResult(eventIdOf(payload), code, err instanceof Error ? err.message : String(err), this.#now()),
        code,
      );
    };
    switch (action) {
      case 'twin/update':
        try {
          const update = parseTwinUpdate(payload);
          const applied = this.#applyEdgeUpdate(namespace, name, update.twin);
          result(
            'twin/update/result',
            JSON.stringify({ event_id: update.event_id, timestamp: this.#now(), twin: applied }),
          );
        } catch (err) {
          failed('twin/update/result', err);
        }
        return;
      case 'state/update':
        try {
          const update = parseStateUpdate(payload);
          const doc = this.#setState(namespace, name, update.state);
          result(
            'state/update/result',
            JSON.stringify({
              event_id: update.event_id,
              timestamp: this.#now(),
              device: {
                name,
                state: doc.state,
                ...(doc.lastOnline === undefined ? {} : { last_online: doc.lastOnline }),
              },
            }),
          );
        } catch (err) {
          failed('state/update/result', err);
        }
        return;
      case 'twin/get':
        try {
          const req = parseBaseRequest(payload);
          const doc = this.#doc(namespace, name);
          result(
            'twin/get/result',
            JSON.stringify({ event_id: req.event_id, timestamp: this.#now(), twin: doc.twin }),
          );
        } catch (err) {
          failed('twin/get/result', err);
        }
        return;
    }
  }

  /** Answers membership/get for this node with every device bound to it. */
  handleMembershipGet(node: string, payload: Uint8Array): void {
    const topic = membershipTopic(node, 'get/result');
    if (node !== this.#o.nodeName) {
      this.#publish(
        topic,
        errorResult(
          eventIdOf(payload),
          404,
          `This agent serves node ${this.#o.nodeName}, not ${node}`,
          this.#now(),
        ),
      );
      return;
    }
    try {
      const req = parseBaseRequest(payload);
      const devices = [...this.#docs.values()].map((d) => this.#membershipEntry(d));
      this.#publish(topic, JSON.stringify({ event_id: req.event_id, timestamp: this.#now(), devices }));
    } catch (err) {
      this.#publish(topic, errorResult(eventIdOf(payload), 400, (err as Error).message, this.#now()));
    }
  }

  // ---- mappers: the same path as MQTT clients ----

  /** A value a mapper read from the device (as if published on twin/update as `actual`). */
  reportActual(namespace: string, name: string, property: string, value: string, at: Date): void {
    const update: Record<string, MsgTwin> = {
      [property]: { actual: { value, metadata: { timestamp: at.getTime() } } },
    };
    this.handleDevice(
      namespace,
      name,
      'twin/update',
      Buffer.from(JSON.stringify({ event_id: this.#eventId(), timestamp: at.getTime(), twin: update })),
    );
  }

  /** Device connectivity from a mapper (as if published on state/update). */
  reportState(namespace: string, name: string, state: DeviceStateName, at: Date): void {
    this.handleDevice(
      namespace,
      name,
      'state/update',
      Buffer.from(JSON.stringify({ event_id: this.#eventId(), timestamp: at.getTime(), state })),
    );
  }

  // ---- internals ----

  #eventId(): string {
    return `kedge-${this.#o.nodeName}-${++this.#eventSeq}`;
  }

  #publish(topic: string, payload: string): void {
    for (const p of this.#publishers) {
      try {
        p(topic, payload);
      } catch (err) {
        this.#log.warn({ err, topic }, 'MQTT publish failed');
      }
    }
  }

  #emit(e: TwinEvent): void {
    for (const l of this.#listeners) {
      try {
        l(e);
      } catch (err) {
        this.#log.error({ err }, 'twin listener failed');
      }
    }
  }

  #doc(namespace: string, name: string): TwinDoc {
    const doc = this.#docs.get(idOf(namespace, name));
    if (doc === undefined)
      throw new TwinRefusal(404, `Device ${namespace}/${name} is not bound to node ${this.#o.nodeName}`);
    return doc;
  }

  #modelOf(namespace: string, name: string): Map<string, ModelProperty> {
    return this.#spec(namespace, name)?.byName ?? new Map();
  }

  #onChanges(changes: readonly LocalChange[]): void {
    for (const c of changes) {
      if (c.key.startsWith(DEVICES_PREFIX)) {
        const o = c.type === 'put' ? c.object : c.prev;
        this.#specs.delete(idOf(o.metadata.namespace ?? 'default', o.metadata.name ?? ''));
        if (c.type === 'put') this.#reconcile(c.object);
        else this.#remove(idOf(c.prev.metadata.namespace ?? 'default', c.prev.metadata.name ?? ''));
      } else if (c.key.startsWith(MODELS_PREFIX) && c.type === 'put') {
        // A model change may change property types: reconcile the devices that use it.
        const ns = c.object.metadata.namespace ?? 'default';
        for (const id of [...this.#specs.keys()]) if (id.startsWith(`${ns}/`)) this.#specs.delete(id);
        for (const { object } of this.#o.store.list(`${DEVICES_PREFIX}${ns}/`)) {
          if (parseDevice(object).model === c.object.metadata.name) this.#reconcile(object);
        }
      }
    }
  }

  /** Brings a device's twin in line with its synced object: properties, types and desired values. */
  #reconcile(device: KubeObject): void {
    const view = parseDevice(device);
    const id = idOf(view.namespace, view.name);
    const revision = Number(device.metadata.resourceVersion ?? 0) || 0;
    const model = this.#modelOf(view.namespace, view.name);
    const isNew = !this.#docs.has(id);
    const doc: TwinDoc = this.#docs.get(id) ?? {
      namespace: view.namespace,
      name: view.name,
      state: 'unknown',
      version: 0,
      twin: {},
    };
    let changed = isNew;
    // The cloud may hold a newer status than this store (a reinstalled agent): continue above it.
    const status = device['status'];
    const cloudVersion = isPlainObject(status) ? Number(status['edgeVersion'] ?? 0) : 0;
    if (Number.isSafeInteger(cloudVersion) && cloudVersion > doc.version) {
      doc.version = cloudVersion;
      changed = true;
    }
    const desiredChanged: Array<[string, string]> = [];
    const previous = new Map<string, StoredTwin | undefined>();
    let typeChanged = false;
    for (const p of view.properties) {
      const type = (model.get(p.name)?.type ?? p.desired?.metadata['type'] ?? 'string').toLowerCase();
      const prior = doc.twin[p.name] === undefined ? undefined : structuredClone(doc.twin[p.name]);
      const t = doc.twin[p.name] ?? newTwin(type, false);
      doc.twin[p.name] = t;
      if (t.metadata.type !== type) {
        t.metadata.type = type;
        changed = true;
        typeChanged = true;
      }
      if (p.desired !== undefined && t.expected?.value !== p.desired.value) {
        previous.set(p.name, prior);
        t.expected = { value: p.desired.value, metadata: { timestamp: this.#now() } };
        t.expected_version = {
          cloud: Math.max(revision, t.expected_version.cloud + 1),
          edge: t.expected_version.edge,
        };
        desiredChanged.push([p.name, p.desired.value]);
        changed = true;
      }
    }
    if (!changed) {
      this.#emit({ type: 'updated', namespace: doc.namespace, name: doc.name });
      return;
    }
    // Any change the cloud should see goes out with a new version (seeding alone needs none).
    if (isNew || desiredChanged.length > 0 || typeChanged) doc.version++;
    this.#docs.set(id, doc);
    this.#save(doc);
    if (isNew) this.#membershipChanged([doc], []);
    if (desiredChanged.length > 0) {
      this.#publishDelta(doc);
      this.#publishDocument(doc, Object.fromEntries(desiredChanged.map(([k]) => [k, previous.get(k)])));
    }
    this.#emit({ type: 'updated', namespace: doc.namespace, name: doc.name });
    for (const [property, value] of desiredChanged)
      this.#emit({ type: 'desired', namespace: doc.namespace, name: doc.name, property, value });
  }

  #remove(id: string): void {
    const doc = this.#docs.get(id);
    if (doc === undefined) return;
    this.#docs.delete(id);
    this.#o.store.twinDelete(id);
    this.#membershipChanged([], [doc]);
  }

  /** Applies an edge update all or nothing; returns the twin as stored for the updated properties. */
  #applyEdgeUpdate(
    namespace: string,
    name: string,
    update: Readonly<Record<string, MsgTwin | null>>,
  ): Record<string, StoredTwin | null> {
    const doc = this.#doc(namespace, name);
    if (Object.keys(update).length === 0) return {};
    const model = this.#modelOf(namespace, name);
    const now = this.#now();
    // Check everything first: a refused property refuses the whole update.
    for (const [key, u] of Object.entries(update)) {
      if (u === null) continue;
      const held = doc.twin[key];
      const type = model.get(key)?.type ?? u.metadata?.type ?? held?.metadata.type ?? 'string';
      for (const side of ['actual', 'expected'] as const) {
        const v = u[side];
        if (v === undefined) continue;
        const claimed = u[`${side}_version`]?.edge;
        const heldVersion = held?.[`${side}_version`].edge ?? 0;
        if (claimed !== undefined && claimed !== 0 && claimed <= heldVersion)
          throw new TwinRefusal(
            409,
            `Stale version for ${key}: ${side}_version.edge ${claimed} is not above the twin's ${heldVersion}`,
          );
        const ts = v.metadata?.timestamp;
        const heldTs = held?.[side]?.metadata.timestamp;
        if (ts !== undefined && heldTs !== undefined && ts < heldTs)
          throw new TwinRefusal(
            409,
            `Stale ${side} value for ${key}: timestamp ${ts} is older than the twin's ${heldTs}`,
          );
        if (v.value !== undefined) {
          const m = model.get(key);
          const why = valueError(v.value, type, side === 'expected' && m !== undefined ? m : {});
          if (why !== undefined) throw new TwinRefusal(400, `Bad ${side} value for ${key}: ${why}`);
        }
      }
      if (u.expected !== undefined && model.get(key)?.accessMode === 'ReadOnly')
        throw new TwinRefusal(
          400,
          `Property ${key} is ReadOnly in the device model; it takes no expected value`,
        );
    }
    // Only the updated properties can change: the document compares just those.
    const before: Record<string, StoredTwin | undefined> = {};
    for (const key of Object.keys(update))
      before[key] = doc.twin[key] === undefined ? undefined : structuredClone(doc.twin[key]);
    const out: Record<string, StoredTwin | null> = {};
    for (const [key, u] of Object.entries(update)) {
      if (u === null) {
        delete doc.twin[key];
        out[key] = null;
        continue;
      }
      const t =
        doc.twin[key] ??
        newTwin((model.get(key)?.type ?? u.metadata?.type ?? 'string').toLowerCase(), u.optional ?? true);
      doc.twin[key] = t;
      if (u.optional !== undefined) t.optional = u.optional;
      for (const side of ['actual', 'expected'] as const) {
        const v = u[side];
        if (v?.value === undefined) continue;
        t[side] = { value: v.value, metadata: { timestamp: v.metadata?.timestamp ?? now } };
        const claimed = u[`${side}_version`]?.edge;
        const vKey = `${side}_version` as const;
        t[vKey] = {
          cloud: t[vKey].cloud,
          edge: claimed !== undefined && claimed > 0 ? claimed : t[vKey].edge + 1,
        };
      }
      out[key] = t;
    }
    doc.version++;
    this.#save(doc);
    this.#publishDocument(doc, before);
    if (Object.values(update).some((u) => u?.expected !== undefined)) this.#publishDelta(doc);
    // Edge-set expected values go to the device like cloud desired values.
    for (const [key, u] of Object.entries(update)) {
      const v = u?.expected?.value;
      if (v !== undefined) this.#emit({ type: 'desired', namespace, name, property: key, value: v });
    }
    return out;
  }

  #setState(namespace: string, name: string, state: DeviceStateName): TwinDoc {
    const doc = this.#doc(namespace, name);
    if (doc.state === state) {
      // Unchanged: an online device refreshes lastOnline at most once a minute, not on every reading.
      const last = doc.lastOnline === undefined ? 0 : Date.parse(doc.lastOnline);
      if (state !== 'online' || this.#now() - last < 60_000) return doc;
    }
    doc.state = state;
    if (state === 'online') doc.lastOnline = new Date(this.#now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    doc.version++;
    this.#save(doc);
    return doc;
  }

  #save(doc: TwinDoc): void {
    const id = idOf(doc.namespace, doc.name);
    this.#o.outbox.enqueueWithTwin(id, JSON.stringify(doc), this.#statusItem(doc));
  }

  /** The Device status the cloud gets: state, twins (reportToCloud ones) and the edgeVersion. */
  #statusItem(doc: TwinDoc): Extract<StatusItem, { kind: 'DeviceStatus' }> {
    const spec = this.device(doc.namespace, doc.name)?.view;
    const hidden = new Set(spec?.properties.filter((p) => !p.reportToCloud).map((p) => p.name) ?? []);
    const twins = Object.keys(doc.twin)
      .sort()
      .map((propertyName) => {
        const t = doc.twin[propertyName]!;
        const meta = (v: StoredValue, version: number): Record<string, string> => ({
          timestamp: String(v.metadata.timestamp),
          version: String(version),
          type: t.metadata.type,
        });
        return {
          propertyName,
          ...(t.actual === undefined || hidden.has(propertyName)
            ? {}
            : { reported: { value: t.actual.value, metadata: meta(t.actual, t.actual_version.edge) } }),
          ...(t.expected === undefined
            ? {}
            : {
                observedDesired: {
                  value: t.expected.value,
                  metadata: meta(t.expected, t.expected_version.cloud),
                },
              }),
        };
      });
    return {
      kind: 'DeviceStatus',
      namespace: doc.namespace,
      name: doc.name,
      status: {
        state: doc.state,
        ...(doc.lastOnline === undefined ? {} : { lastOnlineTime: doc.lastOnline }),
        edgeVersion: doc.version,
        twins,
      },
    };
  }

  /** Notifications go to the namespaced topic, and to KubeEdge's one-segment form for namespace default. */
  #notify(doc: TwinDoc, action: DeviceOutAction, payload: string): void {
    this.#publish(deviceTopic(doc.namespace, doc.name, action), payload);
    if (doc.namespace === 'default') this.#publish(legacyDeviceTopic(doc.name, action), payload);
  }

  #publishDelta(doc: TwinDoc): void {
    const delta: Record<string, string> = {};
    for (const [k, t] of Object.entries(doc.twin)) {
      if (t.expected !== undefined && t.expected.value !== '' && t.expected.value !== t.actual?.value)
        delta[k] = t.expected.value;
    }
    if (Object.keys(delta).length === 0) return;
    this.#notify(
      doc,
      'twin/update/delta',
      JSON.stringify({ event_id: this.#eventId(), timestamp: this.#now(), twin: doc.twin, delta }),
    );
  }

  #publishDocument(doc: TwinDoc, before: Record<string, StoredTwin | undefined>): void {
    const twin: Record<string, { last: StoredTwin | null; current: StoredTwin | null }> = {};
    for (const k of Object.keys(before)) {
      const last = before[k] ?? null;
      const current = doc.twin[k] ?? null;
      if (JSON.stringify(last) !== JSON.stringify(current)) twin[k] = { last, current };
    }
    this.#notify(
      doc,
      'twin/update/document',
      JSON.stringify({ event_id: this.#eventId(), timestamp: this.#now(), twin }),
    );
  }

  #membershipEntry(d: TwinDoc): Record<string, unknown> {
    return {
      id: idOf(d.namespace, d.name),
      name: d.name,
      namespace: d.namespace,
      state: d.state,
      ...(d.lastOnline === undefined ? {} : { last_online: d.lastOnline }),
      twin: d.twin,
    };
  }

  #membershipChanged(added: TwinDoc[], removed: TwinDoc[]): void {
    this.#publish(
      membershipTopic(this.#o.nodeName, 'updated'),
      JSON.stringify({
        event_id: this.#eventId(),
        timestamp: this.#now(),
        added_devices: added.map((d) => this.#membershipEntry(d)),
        removed_devices: removed.map((d) => this.#membershipEntry(d)),
      }),
    );
    this.#emit({
      type: 'devices',
      added: added.map((d) => idOf(d.namespace, d.name)),
      removed: removed.map((d) => idOf(d.namespace, d.name)),
    });
  }
}
