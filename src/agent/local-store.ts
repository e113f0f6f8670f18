/**
 * The agent's local store: what the hub synced to this node (objects with the SERVER's revisions) and
 * the durable upstream outbox, in one SQLite file in the data dir.
 *
 * Not the server's `Store` interface: that one assigns its own revisions, while the agent must keep the
 * server's so that its inventory and acks mean something to the hub.
 *
 * Durability: WAL with synchronous=NORMAL. A commit survives a crash of the agent process; on power loss
 * the newest commits may roll back, which the protocol heals: the next hello carries the inventory as it
 * really is and the hub resends the difference, and the pod manager recomputes every status at start.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { isPlainObject, type KubeObject } from '../api/meta.ts';
import { KedgeError } from '../lib/errors.ts';
import { parseSyncKey, type SyncItem, type SyncKey } from '../protocol/messages.ts';

/** An object the node holds, with the revision the server gave it. */
export interface LocalObject {
  readonly key: SyncKey;
  readonly revision: number;
  readonly object: KubeObject;
}

/** One change an applied batch made, for whoever mirrors or acts on the local state. */
export type LocalChange =
  | {
      readonly type: 'put';
      readonly key: SyncKey;
      readonly revision: number;
      readonly object: KubeObject;
      readonly prev: KubeObject | undefined;
    }
  | { readonly type: 'delete'; readonly key: SyncKey; readonly revision: number; readonly prev: KubeObject };

/** A pending upstream record. */
export interface OutboxRow {
  readonly seq: number;
  readonly coalesceKey: string | null;
  readonly item: string;
}

export type ChangeListener = (changes: readonly LocalChange[]) => void;

const SCHEMA = 'kedge-agent-store/1';
const DDL = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value ANY NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS objects (
  key TEXT PRIMARY KEY COLLATE BINARY,
  revision INTEGER NOT NULL,
  value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  coalesce_key TEXT UNIQUE,
  item TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS twins (id TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT, WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', '${SCHEMA}'), ('revision', 0), ('out_of_order', 0);
`;

function invalid(message: string, context: Record<string, unknown>): KedgeError {
  return new KedgeError('KEDGE_AGENT_SYNC_INVALID', message, { context });
}

/** Checks one item against its key before anything is written; throws KEDGE_AGENT_SYNC_INVALID. */
function checkItem(item: SyncItem): void {
  const parsed = parseSyncKey(item.key);
  if (parsed === undefined)
    throw invalid(`Sync key ${JSON.stringify(item.key)} is malformed`, { key: item.key });
  if (!Number.isSafeInteger(item.revision) || item.revision <= 0) {
    throw invalid(`Sync item ${item.key} has revision ${String(item.revision)}, not a positive integer`, {
      key: item.key,
    });
  }
  if ('deleted' in item) return;
  const obj = item.object;
  const meta = isPlainObject(obj) ? obj['metadata'] : undefined;
  if (!isPlainObject(meta)) throw invalid(`Sync item ${item.key} has no metadata`, { key: item.key });
  if (meta['name'] !== parsed.name || (meta['namespace'] ?? undefined) !== parsed.namespace) {
    throw invalid(
      `Sync item ${item.key} holds an object named ${JSON.stringify(meta['namespace'] ?? '')}/${JSON.stringify(meta['name'])}`,
      { key: item.key },
    );
  }
}

/** Opens the agent store file (created 0600 if absent). One process at a time: a second gets KEDGE_STORE_LOCKED. */
export class LocalStore {
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #revisions = new Map<SyncKey, number>();
  #revision: number;
  #outOfOrder: number;
  readonly #listeners = new Set<ChangeListener>();
  readonly #s: Record<
    | 'get'
    | 'range'
    | 'put'
    | 'del'
    | 'setRevision'
    | 'setOutOfOrder'
    | 'outboxDelKey'
    | 'outboxInsert'
    | 'outboxTrim'
    | 'outboxAfter'
    | 'outboxAck'
    | 'outboxCount'
    | 'outboxSeq'
    | 'twinGet'
    | 'twinAll'
    | 'twinPut'
    | 'twinDel',
    StatementSync
  >;

  constructor(path: string) {
    this.path = path;
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      closeSync(openSync(path, 'a', 0o600));
    }
    this.#db = new DatabaseSync(path);
    try {
      this.#db.exec('PRAGMA locking_mode = EXCLUSIVE');
      this.#db.prepare('PRAGMA journal_mode = WAL').get();
      this.#db.exec('PRAGMA synchronous = NORMAL');
      this.#db.exec(`BEGIN IMMEDIATE; ${DDL} COMMIT;`);
    } catch (err) {
      this.#db.close();
      const errcode = (err as { errcode?: unknown }).errcode;
      if (errcode === 5 || errcode === 6) {
        throw new KedgeError('KEDGE_STORE_LOCKED', `Agent store ${path} is in use by another agent`, {
          cause: err,
          context: { path },
        });
      }
      throw new KedgeError('KEDGE_STORE_CORRUPT', `Agent store ${path} cannot be opened`, {
        cause: err,
        context: { path },
      });
    }
    const schema = this.#db.prepare("SELECT value FROM meta WHERE name = 'schema'").get()?.['value'];
    if (schema !== SCHEMA) {
      this.#db.close();
      throw new KedgeError('KEDGE_STORE_CORRUPT', `File ${path} is not a kedge agent store (${SCHEMA})`, {
        context: { path, schema },
      });
    }
    const p = (sql: string): StatementSync => this.#db.prepare(sql);
    this.#s = {
      get: p('SELECT revision, value FROM objects WHERE key = ?'),
      range: p('SELECT key, revision, value FROM objects WHERE key >= ? AND key < ? ORDER BY key'),
      put: p('INSERT OR REPLACE INTO objects (key, revision, value) VALUES (?, ?, ?)'),
      del: p('DELETE FROM objects WHERE key = ?'),
      setRevision: p("UPDATE meta SET value = ? WHERE name = 'revision'"),
      setOutOfOrder: p("UPDATE meta SET value = ? WHERE name = 'out_of_order'"),
      outboxDelKey: p('DELETE FROM outbox WHERE coalesce_key = ?'),
      outboxInsert: p('INSERT INTO outbox (coalesce_key, item) VALUES (?, ?)'),
      outboxTrim: p(
        `DELETE FROM outbox WHERE coalesce_key IS NULL AND seq NOT IN
           (SELECT seq FROM outbox WHERE coalesce_key IS NULL ORDER BY seq DESC LIMIT ?)`,
      ),
      outboxAfter: p('SELECT seq, coalesce_key, item FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?'),
      outboxAck: p('DELETE FROM outbox WHERE seq <= ?'),
      outboxCount: p('SELECT COUNT(*) AS n FROM outbox'),
      outboxSeq: p("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"),
      twinGet: p('SELECT value FROM twins WHERE id = ?'),
      twinAll: p('SELECT id, value FROM twins ORDER BY id'),
      twinPut: p('INSERT OR REPLACE INTO twins (id, value) VALUES (?, ?)'),
      twinDel: p('DELETE FROM twins WHERE id = ?'),
    };
    for (const row of p('SELECT key, revision FROM objects').all()) {
      this.#revisions.set(String(row['key']), Number(row['revision']));
    }
    this.#revision = Number(
      this.#db.prepare("SELECT value FROM meta WHERE name = 'revision'").get()?.['value'],
    );
    this.#outOfOrder = Number(
      this.#db.prepare("SELECT value FROM meta WHERE name = 'out_of_order'").get()?.['value'],
    );
  }

  /**
   * Items ever applied with a revision below the one the key held (a key going backwards): a sync bug
   * if it is ever above 0. Persisted, so it survives restarts; exported as kedge_agent_out_of_order_total.
   */
  outOfOrder(): number {
    return this.#outOfOrder;
  }

  /** Highest batch revision applied (0 before the first batch): what hello reports. */
  revision(): number {
    return this.#revision;
  }

  /** Every object held, as [key, revision]; from memory, no I/O. */
  inventory(): Array<[SyncKey, number]> {
    return [...this.#revisions];
  }

  /** Number of objects held. */
  size(): number {
    return this.#revisions.size;
  }

  get(key: SyncKey): LocalObject | undefined {
    const row = this.#s.get.get(key);
    if (row === undefined) return undefined;
    return { key, revision: Number(row['revision']), object: JSON.parse(String(row['value'])) as KubeObject };
  }

  /** Objects whose key starts with `prefix` (e.g. `core/pods/`), in key order. */
  list(prefix: string): LocalObject[] {
    return this.#s.range.all(prefix, `${prefix}\u{10ffff}`).map((row) => ({
      key: String(row['key']),
      revision: Number(row['revision']),
      object: JSON.parse(String(row['value'])) as KubeObject,
    }));
  }

  /**
   * Applies a batch in ONE transaction: every item is checked first, and a bad item applies nothing
   * (KEDGE_AGENT_SYNC_INVALID). Listeners hear the changes after the commit.
   */
  applyBatch(revision: number, items: readonly SyncItem[]): LocalChange[] {
    if (!Number.isSafeInteger(revision) || revision < 0) {
      throw invalid(`Batch revision ${String(revision)} is not a non-negative integer`, { revision });
    }
    const seen = new Set<SyncKey>();
    for (const item of items) {
      checkItem(item);
      if (seen.has(item.key)) throw invalid(`Batch holds key ${item.key} twice`, { key: item.key });
      seen.add(item.key);
    }
    const changes: LocalChange[] = [];
    let outOfOrder = 0;
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      for (const item of items) {
        const prevRow = this.#s.get.get(item.key);
        const prev = prevRow === undefined ? undefined : (JSON.parse(String(prevRow['value'])) as KubeObject);
        // Applied all the same (the server is the source of truth), but counted: it must never happen.
        if (prevRow !== undefined && item.revision < Number(prevRow['revision'])) outOfOrder++;
        if ('deleted' in item) {
          if (prev === undefined) continue;
          this.#s.del.run(item.key);
          changes.push({ type: 'delete', key: item.key, revision: item.revision, prev });
        } else {
          const object = structuredClone(item.object) as KubeObject;
          object.metadata.resourceVersion = String(item.revision);
          this.#s.put.run(item.key, item.revision, JSON.stringify(object));
          changes.push({ type: 'put', key: item.key, revision: item.revision, object, prev });
        }
      }
      const next = Math.max(this.#revision, revision);
      this.#s.setRevision.run(next);
      if (outOfOrder > 0) this.#s.setOutOfOrder.run(this.#outOfOrder + outOfOrder);
      this.#db.exec('COMMIT');
      this.#revision = next;
      this.#outOfOrder += outOfOrder;
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw err;
    }
    for (const c of changes) {
      if (c.type === 'put') this.#revisions.set(c.key, c.revision);
      else this.#revisions.delete(c.key);
    }
    if (changes.length > 0) for (const l of this.#listeners) l(changes);
    return changes;
  }

  /** Hear every committed change; returns the unsubscribe function. */
  onChange(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Appends an outbox row in one transaction: a row with the same coalesceKey is replaced (the new one
   * gets a new, higher seq); rows without a key (events) are trimmed to the newest `keepUncoalesced`.
   * Returns the new seq and how many rows the trim dropped.
   */
  outboxAdd(
    coalesceKey: string | null,
    item: string,
    keepUncoalesced: number,
  ): { seq: number; dropped: number } {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      if (coalesceKey !== null) this.#s.outboxDelKey.run(coalesceKey);
      const seq = Number(this.#s.outboxInsert.run(coalesceKey, item).lastInsertRowid);
      const dropped = coalesceKey === null ? Number(this.#s.outboxTrim.run(keepUncoalesced).changes) : 0;
      this.#db.exec('COMMIT');
      return { seq, dropped };
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  /** Pending rows with seq > afterSeq, oldest first. */
  outboxAfter(afterSeq: number, limit: number): OutboxRow[] {
    return this.#s.outboxAfter.all(afterSeq, limit).map((row) => ({
      seq: Number(row['seq']),
      coalesceKey: row['coalesce_key'] === null ? null : String(row['coalesce_key']),
      item: String(row['item']),
    }));
  }

  /**
   * Removes every row with seq <= `seq` and, in the same transaction, stores `writeBacks` (objects the
   * hub wrote as this node reported them, at the server's new revisions); returns how many rows went.
   * Listeners hear the write-backs after the commit.
   */
  outboxAck(seq: number, writeBacks: readonly LocalObject[] = []): number {
    if (writeBacks.length === 0) return Number(this.#s.outboxAck.run(seq).changes);
    const changes: LocalChange[] = [];
    this.#db.exec('BEGIN IMMEDIATE');
    let removed: number;
    try {
      for (const w of writeBacks) {
        const prev = this.get(w.key);
        if (prev === undefined || prev.revision >= w.revision) continue;
        this.#s.put.run(w.key, w.revision, JSON.stringify(w.object));
        changes.push({ type: 'put', key: w.key, revision: w.revision, object: w.object, prev: prev.object });
      }
      removed = Number(this.#s.outboxAck.run(seq).changes);
      this.#db.exec('COMMIT');
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw err;
    }
    for (const c of changes) this.#revisions.set(c.key, c.revision);
    if (changes.length > 0) for (const l of this.#listeners) l(changes);
    return removed;
  }

  outboxDepth(): number {
    return Number(this.#s.outboxCount.get()?.['n'] ?? 0);
  }

  /** The highest seq ever handed out (persisted: seqs never repeat, even after the outbox empties). */
  outboxLastSeq(): number {
    return Number(this.#s.outboxSeq.get()?.['seq'] ?? 0);
  }

  /** The stored twin document of a device (JSON text), if any. */
  twinGet(id: string): string | undefined {
    const row = this.#s.twinGet.get(id);
    return row === undefined ? undefined : String(row['value']);
  }

  /** Every stored twin document, [id, JSON text]. */
  twinAll(): Array<[string, string]> {
    return this.#s.twinAll.all().map((row) => [String(row['id']), String(row['value'])]);
  }

  /**
   * Stores a twin document and, in the same transaction, queues its upstream status (coalesced per
   * device): a twin change and its report to the cloud are durable together or not at all.
   */
  twinPut(
    id: string,
    value: string,
    outbox?: { readonly coalesceKey: string; readonly item: string },
  ): number {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      this.#s.twinPut.run(id, value);
      let seq = 0;
      if (outbox !== undefined) {
        this.#s.outboxDelKey.run(outbox.coalesceKey);
        seq = Number(this.#s.outboxInsert.run(outbox.coalesceKey, outbox.item).lastInsertRowid);
      }
      this.#db.exec('COMMIT');
      return seq;
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  twinDelete(id: string): void {
    this.#s.twinDel.run(id);
  }

  close(): void {
    this.#listeners.clear();
    if (this.#db.isOpen) this.#db.close();
  }
}
