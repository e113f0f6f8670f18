/**
 * A tiny, obviously correct model of the store's semantics, for property tests. It keeps every event
 * forever and answers a list at a past revision by replaying them; compaction only moves the bound below
 * which reads fail. Synchronous, unvalidated, and slow on purpose: correctness by inspection.
 */
import { KedgeError } from '../lib/errors.ts';
import { compareKeys } from './args.ts';
import type { BatchOp, ListOptions, ListResult, StoreEntry, WatchEvent } from './types.ts';

export class MemoryModel {
  #revision: number;
  #compacted = 0;
  #state = new Map<string, StoreEntry>();
  readonly #events: WatchEvent[] = [];
  readonly #initialRevision: number;

  /** `initialRevision`: the revision of the empty store being modelled (etcd starts above 0). */
  constructor(initialRevision = 0) {
    this.#initialRevision = initialRevision;
    this.#revision = initialRevision;
  }

  currentRevision(): number {
    return this.#revision;
  }

  compactedRevision(): number {
    return this.#compacted;
  }

  create(key: string, value: string): StoreEntry {
    return this.batch([{ type: 'create', key, value }])[0]!;
  }

  update(key: string, value: string, expectedRevision?: number): StoreEntry {
    const op: BatchOp =
      expectedRevision === undefined
        ? { type: 'update', key, value }
        : { type: 'update', key, value, expectedRevision };
    return this.batch([op])[0]!;
  }

  delete(key: string, expectedRevision?: number): { prev: StoreEntry; revision: number } {
    const prev = this.#state.get(key);
    const op: BatchOp =
      expectedRevision === undefined ? { type: 'delete', key } : { type: 'delete', key, expectedRevision };
    const entry = this.batch([op])[0]!;
    return { prev: prev!, revision: entry.revision };
  }

  /** All or nothing: works on a copy of the state and keeps it only if every op succeeds. */
  batch(ops: readonly BatchOp[]): StoreEntry[] {
    const state = new Map(this.#state);
    const events: WatchEvent[] = [];
    const results: StoreEntry[] = [];
    let revision = this.#revision;
    for (const op of ops) {
      const current = state.get(op.key);
      revision++;
      if (op.type === 'create') {
        if (current) throw new KedgeError('KEDGE_STORE_KEY_EXISTS', `Key ${op.key} already exists`);
        const entry = { key: op.key, value: op.value, revision, createRevision: revision };
        state.set(op.key, entry);
        events.push({ type: 'put', ...entry });
        results.push(entry);
        continue;
      }
      if (!current) throw new KedgeError('KEDGE_STORE_NOT_FOUND', `Key ${op.key} does not exist`);
      if (op.expectedRevision !== undefined && op.expectedRevision !== current.revision) {
        throw new KedgeError('KEDGE_STORE_CONFLICT', `Key ${op.key} changed`);
      }
      if (op.type === 'update') {
        const entry = { key: op.key, value: op.value, revision, createRevision: current.createRevision };
        state.set(op.key, entry);
        events.push({ type: 'put', ...entry, prevValue: current.value });
        results.push(entry);
      } else {
        const entry = { key: op.key, value: current.value, revision, createRevision: current.createRevision };
        state.delete(op.key);
        events.push({ type: 'delete', ...entry });
        results.push(entry);
      }
    }
    this.#state = state;
    this.#events.push(...events);
    this.#revision = revision;
    return results;
  }

  get(key: string): StoreEntry | undefined {
    return this.#state.get(key);
  }

  list(prefix: string, options: ListOptions = {}): ListResult {
    const revision = options.revision || this.#revision;
    this.#checkReadable(revision);
    const from = options.startKey ?? prefix;
    const all = [...this.#stateAt(revision).values()]
      .filter((e) => e.key.startsWith(prefix) && compareKeys(e.key, from) >= 0)
      .sort((a, b) => compareKeys(a.key, b.key));
    const limit = options.limit || all.length;
    const entries = all.slice(0, limit);
    return { entries, revision, more: all.length > limit, remaining: all.length - entries.length };
  }

  count(prefix: string): number {
    return [...this.#state.keys()].filter((k) => k.startsWith(prefix)).length;
  }

  compact(revision: number): void {
    if (revision > this.#revision) throw new KedgeError('KEDGE_STORE_FUTURE_REVISION', 'Future revision');
    this.#compacted = Math.max(this.#compacted, revision);
  }

  /** What a watch started now with this prefix and afterRevision receives, up to the current revision. */
  watchEvents(prefix: string, afterRevision: number): WatchEvent[] {
    this.#checkReadable(afterRevision);
    return this.#events.filter((e) => e.revision > afterRevision && e.key.startsWith(prefix));
  }

  /** Events with revision in (after, until] under prefix, regardless of compaction. */
  eventsBetween(prefix: string, after: number, until: number): WatchEvent[] {
    return this.#events.filter((e) => e.revision > after && e.revision <= until && e.key.startsWith(prefix));
  }

  #checkReadable(revision: number): void {
    if (revision < this.#compacted) throw new KedgeError('KEDGE_STORE_COMPACTED', 'Compacted');
    if (revision > this.#revision) throw new KedgeError('KEDGE_STORE_FUTURE_REVISION', 'Future revision');
  }

  #stateAt(revision: number): Map<string, StoreEntry> {
    if (revision === this.#revision) return this.#state;
    const state = new Map<string, StoreEntry>();
    for (const e of this.#events) {
      if (e.revision > revision) break;
      if (e.type === 'delete') state.delete(e.key);
      else
        state.set(e.key, {
          key: e.key,
          value: e.value,
          revision: e.revision,
          createRevision: e.createRevision,
        });
    }
    if (revision < this.#initialRevision) state.clear();
    return state;
  }
}
