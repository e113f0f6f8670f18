/**
 * The revisioned object store: one interface, several backends (SQLite now, etcd later). Every backend
 * passes the contract suite in `contract.ts`.
 *
 * Semantics (like etcd's): one global revision that only grows; every successful write (create, update,
 * delete) takes exactly one new revision, in commit order. An entry's `revision` is the revision of its
 * last change (its "mod revision"); `createRevision` is the revision that created it. Values are opaque
 * strings (the API layer stores JSON). Keys are strings; prefixes select ranges (`/registry/pods/ns/`).
 */

export interface StoreEntry {
  readonly key: string;
  readonly value: string;
  /** Revision of the last change to this key. */
  readonly revision: number;
  /** Revision that created this key (it changes if the key is deleted and created again). */
  readonly createRevision: number;
}

export interface ListOptions {
  /** List the state as of this revision (0 or absent: latest). Older than the compacted revision: KEDGE_STORE_COMPACTED. */
  readonly revision?: number;
  /** At most this many entries (0 or absent: all). */
  readonly limit?: number;
  /** Start at this key (inclusive); used to continue a paged list. Must lie under the prefix. */
  readonly startKey?: string;
}

export interface ListResult {
  /** Entries in ascending key order. */
  readonly entries: StoreEntry[];
  /** The revision the list was read at (the latest revision when none was asked for). */
  readonly revision: number;
  /** More entries exist after the last one returned. */
  readonly more: boolean;
  /** How many entries follow the returned ones (only counted when `more`). */
  readonly remaining: number;
}

export type WatchEvent =
  | {
      readonly type: 'put';
      readonly key: string;
      readonly value: string;
      readonly revision: number;
      readonly createRevision: number;
      /** The value before this write, for updates (absent when the write created the key). */
      readonly prevValue?: string;
    }
  | {
      readonly type: 'delete';
      readonly key: string;
      /** The last value the key had before it was deleted. */
      readonly value: string;
      readonly revision: number;
      readonly createRevision: number;
    };

export interface WatchOptions {
  /**
   * Deliver every event with revision > afterRevision (history first, then live), in revision order.
   * Older than the compacted revision: the watch fails with KEDGE_STORE_COMPACTED.
   */
  readonly afterRevision: number;
  /**
   * Events buffered for this watcher before it is closed with KEDGE_STORE_WATCH_OVERFLOW. A slow watcher
   * never slows the store or other watchers; it is cut off and must re-list. Default 10,000.
   */
  readonly maxBuffered?: number;
}

/** A running watch: an async iterable of events that ends when closed, or throws when cut off. */
export interface Watch extends AsyncIterable<WatchEvent> {
  /** Stop the watch; iteration ends after events already delivered. Idempotent. */
  close(): void;
  /** Resolves when the watch has ended, with the error that ended it, if any. */
  readonly done: Promise<Error | undefined>;
}

export type BatchOp =
  | { readonly type: 'create'; readonly key: string; readonly value: string }
  | {
      readonly type: 'update';
      readonly key: string;
      readonly value: string;
      readonly expectedRevision?: number;
    }
  | { readonly type: 'delete'; readonly key: string; readonly expectedRevision?: number };

export interface Store {
  /** Latest committed revision (0 for an empty store). */
  currentRevision(): number;
  /**
   * History before this revision is gone (as in etcd): a list at a revision below it, or a watch with
   * afterRevision below it, fails with KEDGE_STORE_COMPACTED; the state at this revision stays readable.
   * 0: nothing compacted.
   */
  compactedRevision(): number;
  /** Create a key; KEDGE_STORE_KEY_EXISTS if it exists. Returns the new entry. */
  create(key: string, value: string): Promise<StoreEntry>;
  /**
   * Replace a key's value; KEDGE_STORE_NOT_FOUND if absent; KEDGE_STORE_CONFLICT if expectedRevision is
   * given and is not the key's current revision. Returns the new entry.
   */
  update(key: string, value: string, expectedRevision?: number): Promise<StoreEntry>;
  /** Delete a key (same preconditions as update). Returns the deleted entry's last state and the delete's revision. */
  delete(
    key: string,
    expectedRevision?: number,
  ): Promise<{ readonly prev: StoreEntry; readonly revision: number }>;
  /**
   * Several writes in one atomic transaction: all succeed (consecutive revisions, in order) or none. For a
   * delete, the returned entry is the deleted value with `revision` set to the delete's revision.
   */
  batch(ops: readonly BatchOp[]): Promise<StoreEntry[]>;
  get(key: string): Promise<StoreEntry | undefined>;
  list(prefix: string, options?: ListOptions): Promise<ListResult>;
  /** Number of keys under a prefix at the latest revision. */
  count(prefix: string): Promise<number>;
  /**
   * Watch keys under a prefix. Never throws: a watch that cannot start (invalid options, compacted or
   * future afterRevision, closed store) ends at once with that error, through `done` and iteration.
   */
  watch(prefix: string, options: WatchOptions): Watch;
  /**
   * Drop the history before `revision`, keeping the state at it (so never the latest state of a key);
   * a revision at or below the compacted one does nothing; above the current one: KEDGE_STORE_FUTURE_REVISION.
   */
  compact(revision: number): Promise<void>;
  /** Close the store; running watches end. */
  close(): Promise<void>;
}
