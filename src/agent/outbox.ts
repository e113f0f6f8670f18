/**
 * The durable upstream queue: every status the agent produces goes here first, then to the hub in
 * status batches, in seq order; a row leaves only when a status-ack covers its seq.
 *
 * Coalescing: one pending row per object (a newer pod, node or device status replaces the older
 * pending one and moves to the end with a new seq). Events are not coalesced but bounded: beyond
 * `maxEvents` the oldest pending events are dropped; statuses are never dropped.
 */
import type { KubeObject } from '../api/meta.ts';
import { parseSyncKey, type StatusItem, type SyncKey, type WrittenStatus } from '../protocol/messages.ts';
import type { LocalObject, LocalStore } from './local-store.ts';

export interface OutboxOptions {
  /** Pending events kept at most (default 1000). */
  readonly maxEvents?: number;
  /** Called after an event was dropped to respect maxEvents. */
  readonly onEventsDropped?: (count: number) => void;
}

/** Which pending row a new item replaces; null: never coalesced. */
export function coalesceKeyOf(item: StatusItem): string | null {
  switch (item.kind) {
    case 'NodeStatus':
      return `node/${item.name}`;
    // A pod's deletion report replaces its pending status: nobody needs the status of a pod that is gone.
    case 'PodStatus':
    case 'PodDeleted':
      return `pod/${item.namespace}/${item.name}/${item.uid}`;
    case 'DeviceStatus':
      return `device/${item.namespace}/${item.name}`;
    case 'Event':
      return null;
  }
}

/** The coalesce key of the status row this node reports for a synced pod or node. */
function ownStatusKey(key: SyncKey, object: KubeObject): string | undefined {
  const parsed = parseSyncKey(key);
  if (parsed === undefined || parsed.group !== '') return undefined;
  if (parsed.plural === 'nodes')
    return coalesceKeyOf({ kind: 'NodeStatus', name: parsed.name, status: {} }) ?? undefined;
  if (parsed.plural !== 'pods' || parsed.namespace === undefined) return undefined;
  const uid = object.metadata.uid ?? '';
  return (
    coalesceKeyOf({ kind: 'PodStatus', namespace: parsed.namespace, name: parsed.name, uid, status: {} }) ??
    undefined
  );
}

export interface PendingStatus {
  readonly seq: number;
  readonly item: StatusItem;
}

export class Outbox {
  readonly #store: LocalStore;
  readonly #maxEvents: number;
  readonly #onDropped: ((count: number) => void) | undefined;
  readonly #listeners = new Set<() => void>();

  constructor(store: LocalStore, options: OutboxOptions = {}) {
    this.#store = store;
    this.#maxEvents = options.maxEvents ?? 1000;
    this.#onDropped = options.onEventsDropped;
  }

  /** The local store the outbox lives in (it also holds what the hub synced to this node). */
  get store(): LocalStore {
    return this.#store;
  }

  /** Durably queues an item (coalesced per object); returns its seq. */
  enqueue(item: StatusItem): number {
    const { seq, dropped } = this.#store.outboxAdd(
      coalesceKeyOf(item),
      JSON.stringify(item),
      this.#maxEvents,
    );
    if (dropped > 0) this.#onDropped?.(dropped);
    for (const listener of this.#listeners) listener();
    return seq;
  }

  /** Stores a device's twin document and queues its DeviceStatus in one transaction; returns the seq. */
  enqueueWithTwin(id: string, twin: string, item: Extract<StatusItem, { kind: 'DeviceStatus' }>): number {
    const seq = this.#store.twinPut(id, twin, {
      coalesceKey: coalesceKeyOf(item) ?? '',
      item: JSON.stringify(item),
    });
    for (const listener of this.#listeners) listener();
    return seq;
  }

  /** Pending items with seq > afterSeq, oldest first. */
  pending(afterSeq = 0, limit = 100): PendingStatus[] {
    return this.#store
      .outboxAfter(afterSeq, limit)
      .map((row) => ({ seq: row.seq, item: JSON.parse(row.item) as StatusItem }));
  }

  /**
   * The hub wrote everything up to `seq`: drop those rows. `sent` is the acked batch as it went out. For
   * each `written` [key, from, to] whose local copy is still at `from`, the status that batch carried for
   * the object becomes the copy's status at revision `to`, as the API now holds it (in the same
   * transaction). The status comes from the batch, not from the outbox row: the row may since have been
   * coalesced into a newer report (a node that reports again before the first report's ack).
   */
  ack(seq: number, written: readonly WrittenStatus[] = [], sent: readonly StatusItem[] = []): number {
    const writeBacks: LocalObject[] = [];
    const sentByKey = new Map<string, StatusItem>();
    if (written.length > 0) {
      for (const item of sent) {
        const k = coalesceKeyOf(item);
        if (k !== null) sentByKey.set(k, item);
      }
    }
    for (const [key, from, to] of written) {
      const local = this.#store.get(key);
      if (local === undefined || local.revision !== from) continue;
      const own = ownStatusKey(key, local.object);
      const item = own === undefined ? undefined : sentByKey.get(own);
      if (item === undefined || (item.kind !== 'PodStatus' && item.kind !== 'NodeStatus')) continue;
      const object: KubeObject = {
        ...local.object,
        metadata: { ...local.object.metadata, resourceVersion: String(to) },
        status: item.status,
      };
      writeBacks.push({ key, revision: to, object });
    }
    return this.#store.outboxAck(seq, writeBacks);
  }

  depth(): number {
    return this.#store.outboxDepth();
  }

  lastSeq(): number {
    return this.#store.outboxLastSeq();
  }

  /** Hear every enqueue (the session sends at once when connected); returns the unsubscribe function. */
  onEnqueue(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
