/**
 * core/v1 Events from controllers, aggregated like client-go's recorder: the same event about the same
 * object (same reason, message, type and component) bumps `count` and `lastTimestamp` on the existing
 * Event instead of creating a new one. Memory is bounded: a fixed number of recent keys is remembered
 * (least recently used forgotten first). Recording never throws: an event is not worth failing a
 * reconcile for.
 */
import type { KubeObject } from '../api/meta.ts';
import { isApiError } from '../api/status-error.ts';
import { type Cluster, Resources } from '../client/types.ts';
import type { Logger } from '../lib/log.ts';

/** core/v1 ObjectReference: what an Event is about. */
export interface ObjectReference {
  readonly apiVersion?: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly resourceVersion?: string;
  readonly fieldPath?: string;
}

export type EventType = 'Normal' | 'Warning';

export interface EventInput {
  readonly involvedObject: ObjectReference;
  readonly type: EventType;
  /** Short UpperCamelCase reason, e.g. NodeNotReady. */
  readonly reason: string;
  readonly message: string;
  /** Who reports it (source.component), e.g. node-lifecycle-controller. */
  readonly component: string;
  readonly host?: string;
}

export interface EventRecorderOptions {
  /** How many distinct events to remember for aggregation (default 4096). */
  readonly maxKeys?: number;
  readonly logger?: Logger;
  /** Clock, for tests. */
  readonly now?: () => Date;
}

interface Remembered {
  namespace: string;
  name: string;
  count: number;
  /** Writes for one key run one after another, so two repeats never both create. */
  tail: Promise<unknown>;
}

/** The reference to an object, as Events and owner checks use it. */
export function objectReference(obj: KubeObject, fieldPath?: string): ObjectReference {
  const m = obj.metadata;
  return {
    ...(obj.apiVersion === undefined ? {} : { apiVersion: obj.apiVersion }),
    kind: obj.kind ?? '',
    name: m.name ?? '',
    ...(m.namespace === undefined ? {} : { namespace: m.namespace }),
    ...(m.uid === undefined ? {} : { uid: m.uid }),
    ...(m.resourceVersion === undefined ? {} : { resourceVersion: m.resourceVersion }),
    ...(fieldPath === undefined ? {} : { fieldPath }),
  };
}

function timestamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Records Events through a Cluster, aggregating repeats. One per cluster is enough (see recordEvent). */
export class EventRecorder {
  readonly #cluster: Cluster;
  readonly #maxKeys: number;
  readonly #log: Logger | undefined;
  readonly #now: () => Date;
  /** Insertion order is recency order: a hit is deleted and re-inserted. */
  readonly #recent = new Map<string, Remembered>();
  #seq = 0;

  constructor(cluster: Cluster, options: EventRecorderOptions = {}) {
    this.#cluster = cluster;
    this.#maxKeys = Math.max(1, options.maxKeys ?? 4096);
    this.#log = options.logger;
    this.#now = options.now ?? (() => new Date());
  }

  /** How many distinct events are remembered now (at most maxKeys). */
  get size(): number {
    return this.#recent.size;
  }

  /** Create or bump the Event; resolves with it, or undefined when the API refused (logged at debug). */
  record(input: EventInput): Promise<KubeObject | undefined> {
    const ref = input.involvedObject;
    const key = JSON.stringify([
      ref.kind,
      ref.namespace ?? '',
      ref.name,
      ref.uid ?? '',
      ref.fieldPath ?? '',
      input.type,
      input.reason,
      input.message,
      input.component,
      input.host ?? '',
    ]);
    let entry = this.#recent.get(key);
    if (entry !== undefined) this.#recent.delete(key);
    else {
      entry = { namespace: ref.namespace ?? 'default', name: '', count: 0, tail: Promise.resolve() };
    }
    this.#recent.set(key, entry);
    while (this.#recent.size > this.#maxKeys) {
      const oldest = this.#recent.keys().next().value;
      if (oldest === undefined) break;
      this.#recent.delete(oldest);
    }
    const remembered = entry;
    const result = remembered.tail.then(() => this.#write(remembered, input));
    remembered.tail = result;
    return result;
  }

  async #write(entry: Remembered, input: EventInput): Promise<KubeObject | undefined> {
    const at = timestamp(this.#now());
    try {
      if (entry.count > 0) {
        try {
          const bumped = await this.#cluster.patch(Resources.events, entry.namespace, entry.name, 'merge', {
            count: entry.count + 1,
            lastTimestamp: at,
          });
          entry.count++;
          return bumped;
        } catch (err) {
          if (!isApiError(err, 404)) throw err;
          // The Event expired or was deleted: start a new one.
        }
      }
      const created = await this.#create(entry, input, at);
      entry.name = created.metadata.name ?? '';
      entry.count = 1;
      return created;
    } catch (err) {
      this.#log?.debug(
        { err, reason: input.reason, object: input.involvedObject.name },
        'event not recorded',
      );
      return undefined;
    }
  }

  async #create(entry: Remembered, input: EventInput, at: string): Promise<KubeObject> {
    const ref = input.involvedObject;
    for (let attempt = 0; ; attempt++) {
      // Like client-go: the object's name and a time-based hex suffix; a counter keeps it unique here.
      const suffix = (this.#now().getTime() * 1000 + (this.#seq++ % 1000)).toString(16);
      const event: KubeObject = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${ref.name}.${suffix}`, namespace: entry.namespace },
        involvedObject: { ...ref },
        reason: input.reason,
        message: input.message,
        type: input.type,
        source: { component: input.component, ...(input.host === undefined ? {} : { host: input.host }) },
        reportingComponent: input.component,
        reportingInstance: input.host ?? '',
        firstTimestamp: at,
        lastTimestamp: at,
        count: 1,
      };
      try {
        return await this.#cluster.create(Resources.events, entry.namespace, event);
      } catch (err) {
        if (isApiError(err, 409) && attempt < 3) continue;
        throw err;
      }
    }
  }
}

const recorders = new WeakMap<Cluster, EventRecorder>();

/**
 * Record an Event about an object through the cluster, aggregating repeats (count++, lastTimestamp) with
 * one shared recorder per cluster. Never rejects; resolves with the Event or undefined.
 */
export function recordEvent(
  cluster: Cluster,
  input: EventInput,
  options: EventRecorderOptions = {},
): Promise<KubeObject | undefined> {
  let recorder = recorders.get(cluster);
  if (recorder === undefined) {
    recorder = new EventRecorder(cluster, options);
    recorders.set(cluster, recorder);
  }
  return recorder.record(input);
}
