/**
 * The embedded store backend on `node:sqlite`.
 *
 * Storage model: `log` holds one row per revision (the revision is its primary key): puts carry the
 * value, deletes point at the put they removed (`prev_revision`). `kv` maps each live key to the revision
 * of its latest put (maintained by triggers on `log`), so a list at the latest revision is a range scan of
 * `kv` plus one rowid lookup per row. Compaction at C keeps every row above C and, per key, the newest row
 * at or below C if it is a put: that is exactly the state at C, and it keeps every `prev_revision` above C
 * resolvable, so replays still carry prevValue and the value of deletes.
 *
 * The connection is opened in WAL mode with synchronous=NORMAL (a committed transaction survives a crash
 * of the process) and in exclusive locking mode (a second process opening the file fails with
 * KEDGE_STORE_LOCKED instead of breaking the revision sequence). Watch fan-out happens in memory, right
 * after each commit; only a watch start reads history from SQLite.
 */
import { DatabaseSync, type SQLOutputValue, type StatementSync } from 'node:sqlite';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { isKedgeError, KedgeError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import {
  checkBatch,
  checkKey,
  checkListOptions,
  checkMaxBuffered,
  checkOptionalRevision,
  checkPrefix,
  checkRevision,
  checkValue,
  prefixEnd,
} from './args.ts';
import type {
  BatchOp,
  ListOptions,
  ListResult,
  Store,
  StoreEntry,
  Watch,
  WatchEvent,
  WatchOptions,
} from './types.ts';
import { BufferedWatch, WatchFanout } from './watch-fanout.ts';

export interface SqliteCompactionOptions {
  /** Keep at least this many of the newest revisions. Default 10,000. */
  readonly keepRevisions?: number;
  /** Keep at least the revisions written in this many milliseconds. Default 300,000 (5 minutes). */
  readonly keepMs?: number;
  /** How often automatic compaction runs, in milliseconds. Default 30,000. */
  readonly intervalMs?: number;
}

export interface SqliteStoreOptions {
  /** The database file; created (with its directory's existing permissions) if absent. */
  readonly path: string;
  readonly logger?: Logger;
  /** Automatic compaction policy; `false` turns the timer off (`compact()` still works). */
  readonly compaction?: SqliteCompactionOptions | false;
  /**
   * Group commit (default on; `kedge server` turns it off with KEDGE_STORE_GROUP_COMMIT=0): single writes of
   * one event-loop turn share a transaction. See docs/architecture.md.
   */
  readonly groupCommit?: boolean;
}

export interface ResolvedSqliteStoreOptions {
  readonly path: string;
  readonly logger: Logger | undefined;
  readonly compaction: Readonly<Required<SqliteCompactionOptions>> | false;
  readonly groupCommit: boolean;
}

export interface SqliteStore extends Store {
  readonly path: string;
  /** Applies the compaction policy once (what the timer does); resolves with the compacted revision. */
  compactNow(): Promise<number>;
}

const SCHEMA = 'kedge-store/1';
const PUT = 0;
const DELETE = 1;
/** Revisions removed per compaction transaction, so a large compaction never blocks the loop for long. */
const COMPACT_STEP = 10_000;
const SQLITE_CORRUPT = 11;
const SQLITE_NOTADB = 26;
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;

const DDL = `
CREATE TABLE meta (name TEXT PRIMARY KEY, value ANY NOT NULL) STRICT;
CREATE TABLE log (
  revision INTEGER PRIMARY KEY,
  key TEXT NOT NULL COLLATE BINARY,
  type INTEGER NOT NULL,
  value TEXT,
  create_revision INTEGER NOT NULL,
  prev_revision INTEGER
) STRICT;
CREATE INDEX log_key ON log (key, revision);
CREATE TABLE kv (
  key TEXT PRIMARY KEY COLLATE BINARY,
  revision INTEGER NOT NULL,
  create_revision INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TRIGGER log_put AFTER INSERT ON log WHEN NEW.type = ${PUT} BEGIN
  INSERT OR REPLACE INTO kv (key, revision, create_revision) VALUES (NEW.key, NEW.revision, NEW.create_revision);
END;
CREATE TRIGGER log_delete AFTER INSERT ON log WHEN NEW.type = ${DELETE} BEGIN
  DELETE FROM kv WHERE key = NEW.key;
END;
INSERT INTO meta (name, value) VALUES ('schema', '${SCHEMA}'), ('revision', 0), ('compacted', 0);
`;

export function resolveSqliteStoreOptions(options: SqliteStoreOptions): ResolvedSqliteStoreOptions {
  const errors: string[] = [];
  if (typeof options.path !== 'string' || options.path === '') {
    errors.push(`path ${JSON.stringify(options.path)} is not a non-empty string`);
  }
  const nonNegative = (name: string, value: unknown, fallback: number, min = 0): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      errors.push(`compaction.${name} ${String(value)} is not an integer >= ${min}`);
    }
    return value as number;
  };
  let compaction: ResolvedSqliteStoreOptions['compaction'] = false;
  if (options.compaction !== false) {
    const c = options.compaction ?? {};
    compaction = Object.freeze({
      keepRevisions: nonNegative('keepRevisions', c.keepRevisions, 10_000),
      keepMs: nonNegative('keepMs', c.keepMs, 300_000),
      intervalMs: nonNegative('intervalMs', c.intervalMs, 30_000, 1),
    });
  }
  if (errors.length > 0) {
    throw new KedgeError('KEDGE_CONFIG_INVALID', `Invalid SQLite store options: ${errors.join('; ')}`, {
      context: { errors },
    });
  }
  return Object.freeze({
    path: options.path,
    logger: options.logger,
    compaction,
    groupCommit: options.groupCommit !== false,
  });
}

/** Opens (creating if needed) the store at `options.path`. */
export function openSqliteStore(options: SqliteStoreOptions): SqliteStore {
  const resolved = resolveSqliteStoreOptions(options);
  const { path } = resolved;
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path);
  } catch (err) {
    throw translateOpenError(err, path);
  }
  try {
    db.exec('PRAGMA locking_mode = EXCLUSIVE');
    db.prepare('PRAGMA journal_mode = WAL').get();
    db.exec('PRAGMA synchronous = NORMAL');
    db.exec('PRAGMA wal_autocheckpoint = 10000');
    db.exec('BEGIN IMMEDIATE');
    try {
      const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").all();
      if (tables.length === 0) db.exec(DDL);
      const meta = new Map<string, SQLOutputValue>();
      if (tables.length === 0 || tables.some((t) => t['name'] === 'meta')) {
        for (const row of db.prepare('SELECT name, value FROM meta').all()) {
          meta.set(String(row['name']), row['value'] ?? null);
        }
      }
      if (meta.get('schema') !== SCHEMA) {
        throw new KedgeError('KEDGE_STORE_CORRUPT', `File ${path} is not a kedge store (${SCHEMA})`, {
          context: { path, schema: meta.get('schema') },
        });
      }
      const lastRow = db.prepare('SELECT MAX(revision) AS revision FROM log').get();
      const revision = Math.max(
        int(meta.get('revision'), 'meta revision'),
        lastRow?.['revision'] === null ? 0 : int(lastRow?.['revision'], 'log revision'),
      );
      const compacted = int(meta.get('compacted'), 'meta compacted');
      db.exec('COMMIT');
      return new SqliteStoreImpl(db, resolved, revision, compacted);
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw err;
    }
  } catch (err) {
    db.close();
    throw translateOpenError(err, path);
  }
}

function translateOpenError(err: unknown, path: string): unknown {
  if (isKedgeError(err)) return err;
  const errcode = (err as { errcode?: unknown } | null)?.errcode;
  if (errcode === SQLITE_NOTADB || errcode === SQLITE_CORRUPT) {
    return new KedgeError('KEDGE_STORE_CORRUPT', `File ${path} is not a readable kedge store`, {
      cause: err,
      context: { path },
    });
  }
  if (errcode === SQLITE_BUSY || errcode === SQLITE_LOCKED) {
    return new KedgeError('KEDGE_STORE_LOCKED', `Store file ${path} is in use by another store`, {
      cause: err,
      context: { path },
    });
  }
  return err;
}

function corrupt(what: string, value: unknown): KedgeError {
  return new KedgeError('KEDGE_STORE_CORRUPT', `Store holds an unreadable ${what}: ${String(value)}`, {
    context: { what, value },
  });
}

function int(value: SQLOutputValue | undefined, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw corrupt(what, value);
  return value;
}

function text(value: SQLOutputValue | undefined, what: string): string {
  if (typeof value !== 'string') throw corrupt(what, value);
  return value;
}

/** A write applied inside the current transaction, with what its watch event needs. */
interface Applied {
  readonly entry: StoreEntry;
  readonly type: 'create' | 'update' | 'delete';
  /** For deletes: the deleted entry. */
  readonly prev: StoreEntry | undefined;
  /** For updates: the revision whose value is prevValue. */
  readonly prevRevision: number | undefined;
}

/** Writes sharing one transaction (group commit), waiting for its COMMIT. */
interface WriteGroup {
  readonly revisionBefore: number;
  readonly writes: Array<{
    readonly applied: Applied;
    readonly resolve: (applied: Applied) => void;
    readonly reject: (err: unknown) => void;
  }>;
}

/**
 * Statements for a key range ?1 <= key < ?2, in two shapes: with an upper bound, and without one (when the
 * prefix has no end, e.g. ''), where ?2 is NULL. Separate statements keep both shapes index range scans.
 */
interface Ranged {
  readonly bounded: StatementSync;
  readonly open: StatementSync;
}

class SqliteStoreImpl implements SqliteStore {
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #logger: Logger | undefined;
  readonly #policy: ResolvedSqliteStoreOptions['compaction'];
  readonly #fanout = new WatchFanout();
  readonly #timer: NodeJS.Timeout | undefined;
  /** (time, revision) samples for the time-based retention. */
  readonly #samples: { time: number; revision: number }[] = [];
  #revision: number;
  #compacted: number;
  #closed = false;
  readonly #groupCommit: boolean;
  /** The writes of this turn of the event loop, in one open transaction until its COMMIT. */
  #group: WriteGroup | undefined;

  readonly #getCurrent: StatementSync;
  readonly #getEntry: StatementSync;
  readonly #valueAt: StatementSync;
  readonly #insert: StatementSync;
  readonly #setMeta: StatementSync;
  readonly #compactOld: StatementSync;
  readonly #compactRange: StatementSync;
  readonly #listLatest: Ranged;
  readonly #countLatest: Ranged;
  readonly #listAt: Ranged;
  readonly #countAt: Ranged;
  readonly #replay: Ranged;

  constructor(db: DatabaseSync, options: ResolvedSqliteStoreOptions, revision: number, compacted: number) {
    this.#db = db;
    this.path = options.path;
    this.#logger = options.logger;
    this.#policy = options.compaction;
    this.#groupCommit = options.groupCommit;
    this.#revision = revision;
    this.#compacted = compacted;

    this.#getCurrent = db.prepare('SELECT revision, create_revision FROM kv WHERE key = ?');
    this.#getEntry = db.prepare(
      'SELECT k.revision, k.create_revision, l.value FROM kv k JOIN log l ON l.revision = k.revision WHERE k.key = ?',
    );
    this.#valueAt = db.prepare('SELECT value FROM log WHERE revision = ?');
    this.#insert = db.prepare(
      'INSERT INTO log (revision, key, type, value, create_revision, prev_revision) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.#setMeta = db.prepare('UPDATE meta SET value = ? WHERE name = ?');
    // Rows kept by earlier compactions (at or below ?1) that a row in (?1, ?2] supersedes.
    this.#compactOld = db.prepare(
      'DELETE FROM log WHERE revision <= ?1 AND key IN (SELECT key FROM log WHERE revision > ?1 AND revision <= ?2)',
    );
    // Rows in (?1, ?2] except, per key, the newest one at or below ?2 if it is a put.
    this.#compactRange = db.prepare(
      `DELETE FROM log WHERE revision > ?1 AND revision <= ?2 AND (type = ${DELETE} OR EXISTS (
         SELECT 1 FROM log n WHERE n.key = log.key AND n.revision > log.revision AND n.revision <= ?2))`,
    );
    const ranged = (make: (keyRange: string) => string): Ranged => ({
      bounded: db.prepare(make('>= ?1 AND %k < ?2')),
      open: db.prepare(make('>= ?1 AND ?2 IS NULL')),
    });
    const range = (column: string, sql: string) => sql.replaceAll('%k', column);
    this.#listLatest = ranged((r) =>
      range(
        'k.key',
        `SELECT k.key, k.revision, k.create_revision, l.value FROM kv k JOIN log l ON l.revision = k.revision
         WHERE k.key ${r} ORDER BY k.key LIMIT ?3`,
      ),
    );
    this.#countLatest = ranged((r) => range('key', `SELECT COUNT(*) AS n FROM kv WHERE key ${r}`));
    // The state at ?3. Keys unchanged since ?3 come from kv; keys changed after ?3 (few: they lie in the
    // history window) from their newest log row at or below ?3, if it is a put (SQLite takes the bare
    // columns from the MAX row). The two sets are disjoint, and SQLite merges them in key order.
    const unchanged = (r: string) =>
      range('key', `SELECT key, revision, create_revision FROM kv WHERE key ${r} AND revision <= ?3`);
    const changed = (r: string) =>
      range(
        'key',
        `SELECT key, MAX(revision) AS revision, create_revision FROM log
         WHERE key IN (SELECT key FROM log WHERE revision > ?3) AND key ${r} AND revision <= ?3
         GROUP BY key HAVING type = ${PUT}`,
      );
    this.#listAt = ranged((r) => `${unchanged(r)} UNION ALL ${changed(r)} ORDER BY key LIMIT ?4`);
    this.#countAt = ranged(
      (r) => `SELECT (SELECT COUNT(*) FROM (${unchanged(r)})) + (SELECT COUNT(*) FROM (${changed(r)})) AS n`,
    );
    // `+l.key` keeps the planner on the revision order (a key-index scan would read all history).
    this.#replay = ranged((r) =>
      range(
        '+l.key',
        `SELECT l.revision, l.key, l.type, l.value, l.create_revision, p.value AS prev_value
         FROM log l LEFT JOIN log p ON p.revision = l.prev_revision
         WHERE +l.key ${r} AND l.revision > ?3 ORDER BY l.revision LIMIT ?4`,
      ),
    );

    this.#samples.push({ time: performance.now(), revision });
    if (this.#policy !== false) {
      this.#timer = setInterval(() => {
        this.compactNow().catch((err: unknown) => {
          if (!isKedgeError(err, 'KEDGE_STORE_CLOSED'))
            this.#logger?.error({ err }, 'Store compaction failed');
        });
      }, this.#policy.intervalMs);
      this.#timer.unref();
    }
    this.#logger?.info({ path: this.path, revision, compacted }, 'Store opened');
  }

  currentRevision(): number {
    this.#checkOpen();
    return this.#revision;
  }

  compactedRevision(): number {
    this.#checkOpen();
    return this.#compacted;
  }

  async create(key: string, value: string): Promise<StoreEntry> {
    this.#checkOpen();
    checkValue(value, checkKey(key));
    return (await this.#writeOne({ type: 'create', key, value })).entry;
  }

  async update(key: string, value: string, expectedRevision?: number): Promise<StoreEntry> {
    this.#checkOpen();
    checkValue(value, checkKey(key));
    checkOptionalRevision(expectedRevision, 'expectedRevision');
    const op: BatchOp =
      expectedRevision === undefined
        ? { type: 'update', key, value }
        : { type: 'update', key, value, expectedRevision };
    return (await this.#writeOne(op)).entry;
  }

  async delete(
    key: string,
    expectedRevision?: number,
  ): Promise<{ readonly prev: StoreEntry; readonly revision: number }> {
    this.#checkOpen();
    checkKey(key);
    checkOptionalRevision(expectedRevision, 'expectedRevision');
    const op: BatchOp =
      expectedRevision === undefined ? { type: 'delete', key } : { type: 'delete', key, expectedRevision };
    const applied = await this.#writeOne(op);
    return { prev: applied.prev!, revision: applied.entry.revision };
  }

  async batch(ops: readonly BatchOp[]): Promise<StoreEntry[]> {
    this.#checkOpen();
    checkBatch(ops);
    if (ops.length === 0) return [];
    this.#commitGroup();
    const applied: Applied[] = [];
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      ops.forEach((op, index) => {
        try {
          applied.push(this.#apply(op, this.#revision + index + 1));
        } catch (err) {
          if (isKedgeError(err)) {
            throw new KedgeError(err.code, `Batch op ${index}: ${err.message}`, {
              cause: err,
              context: { ...err.context, index },
            });
          }
          throw err;
        }
      });
      this.#db.exec('COMMIT');
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw err;
    }
    this.#revision += ops.length;
    for (const a of applied) this.#dispatch(a);
    return applied.map((a) => a.entry);
  }

  async get(key: string): Promise<StoreEntry | undefined> {
    this.#checkOpen();
    checkKey(key);
    const row = this.#getEntry.get(key);
    if (row === undefined) return undefined;
    return {
      key,
      value: text(row['value'], 'value'),
      revision: int(row['revision'], 'revision'),
      createRevision: int(row['create_revision'], 'create revision'),
    };
  }

  async list(prefix: string, options?: ListOptions): Promise<ListResult> {
    this.#checkOpen();
    checkPrefix(prefix);
    const { revision: asked, limit, from } = checkListOptions(prefix, options);
    this.#commitGroup();
    const revision = this.#readableRevision(asked, 'list');
    const end = prefixEnd(prefix);
    const sqlLimit = limit === 0 ? -1 : limit + 1;
    let entries: StoreEntry[];
    const latest = revision === this.#revision;
    if (latest) {
      const rows = (end === undefined ? this.#listLatest.open : this.#listLatest.bounded).all(
        ...bounds(from, end),
        sqlLimit,
      );
      entries = rows.map((row) => ({
        key: text(row['key'], 'key'),
        value: text(row['value'], 'value'),
        revision: int(row['revision'], 'revision'),
        createRevision: int(row['create_revision'], 'create revision'),
      }));
    } else {
      const rows = (end === undefined ? this.#listAt.open : this.#listAt.bounded).all(
        ...bounds(from, end),
        revision,
        sqlLimit,
      );
      entries = rows.map((row) => {
        const rev = int(row['revision'], 'revision');
        return {
          key: text(row['key'], 'key'),
          value: text(this.#valueAt.get(rev)?.['value'], 'value'),
          revision: rev,
          createRevision: int(row['create_revision'], 'create revision'),
        };
      });
    }
    if (limit === 0 || entries.length <= limit) return { entries, revision, more: false, remaining: 0 };
    entries.length = limit;
    // Keys after the last one returned: `last + '\0'` is its immediate successor.
    const after = `${entries[limit - 1]!.key}\0`;
    const counter = latest ? this.#countLatest : this.#countAt;
    const params = latest ? bounds(after, end) : [...bounds(after, end), revision];
    const remaining = int(
      (end === undefined ? counter.open : counter.bounded).get(...params)?.['n'],
      'count',
    );
    return { entries, revision, more: true, remaining };
  }

  async count(prefix: string): Promise<number> {
    this.#checkOpen();
    checkPrefix(prefix);
    const end = prefixEnd(prefix);
    const row = (end === undefined ? this.#countLatest.open : this.#countLatest.bounded).get(
      ...bounds(prefix, end),
    );
    return int(row?.['n'], 'count');
  }

  watch(prefix: string, options: WatchOptions): Watch {
    const watch = new BufferedWatch(String(prefix), 1, (w) => this.#fanout.remove(w));
    try {
      this.#checkOpen();
      checkPrefix(prefix);
      const maxBuffered = checkMaxBuffered(options?.maxBuffered);
      const after = checkRevision(options?.afterRevision, 'afterRevision');
      // Replay reads the log: the open group must be in it, or its writes would be replayed and then
      // dispatched again when it commits.
      this.#commitGroup();
      this.#readableRevision(after, 'watch');
      const live = new BufferedWatch(prefix, maxBuffered, (w) => this.#fanout.remove(w));
      const end = prefixEnd(prefix);
      const rows = (end === undefined ? this.#replay.open : this.#replay.bounded).all(
        ...bounds(prefix, end),
        after,
        maxBuffered + 1,
      );
      if (rows.length > maxBuffered) {
        live.end(
          new KedgeError(
            'KEDGE_STORE_WATCH_OVERFLOW',
            `Watch on prefix ${prefix} after revision ${after} would replay more than ${maxBuffered} events`,
            { context: { prefix, afterRevision: after, maxBuffered } },
          ),
        );
        return live;
      }
      for (const row of rows) live.push(replayEvent(row));
      this.#fanout.add(live);
      return live;
    } catch (err) {
      watch.end(err instanceof Error ? err : new Error(String(err)));
      return watch;
    }
  }

  async compact(revision: number): Promise<void> {
    this.#checkOpen();
    const target = checkRevision(revision, 'revision');
    if (target > this.#revision) {
      throw new KedgeError(
        'KEDGE_STORE_FUTURE_REVISION',
        `Cannot compact at revision ${target}: the store is at revision ${this.#revision}`,
        { context: { revision: target, currentRevision: this.#revision } },
      );
    }
    this.#commitGroup();
    while (this.#compacted < target) {
      const from = this.#compacted;
      const to = Math.min(target, from + COMPACT_STEP);
      this.#db.exec('BEGIN IMMEDIATE');
      try {
        this.#compactOld.run(from, to);
        this.#compactRange.run(from, to);
        this.#setMeta.run(to, 'compacted');
        this.#setMeta.run(this.#revision, 'revision');
        this.#db.exec('COMMIT');
      } catch (err) {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
        throw err;
      }
      this.#compacted = to;
      if (to < target) {
        await yieldToLoop();
        this.#checkOpen();
      }
    }
  }

  async compactNow(): Promise<number> {
    this.#checkOpen();
    const policy = this.#policy;
    if (policy === false) return this.#compacted;
    const now = performance.now();
    const samples = this.#samples;
    samples.push({ time: now, revision: this.#revision });
    // The newest sample old enough to leave the time window: everything up to its revision may go.
    let i = -1;
    while (i + 1 < samples.length && samples[i + 1]!.time <= now - policy.keepMs) i++;
    if (i < 0) return this.#compacted;
    const byTime = samples[i]!.revision;
    samples.splice(0, i);
    const target = Math.min(byTime, this.#revision - policy.keepRevisions);
    if (target <= this.#compacted) return this.#compacted;
    const before = this.#compacted;
    await this.compact(target);
    this.#logger?.debug({ from: before, to: this.#compacted }, 'Store compacted');
    return this.#compacted;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#commitGroup();
    this.#fanout.endAll(closedError());
    this.#db.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError();
  }

  /** The revision to read at (0 means latest), or the reason it cannot be read. */
  #readableRevision(revision: number, what: 'list' | 'watch'): number {
    if (what === 'list' && revision === 0) return this.#revision;
    if (revision < this.#compacted) {
      throw new KedgeError(
        'KEDGE_STORE_COMPACTED',
        `Cannot ${what} at revision ${revision}: history before revision ${this.#compacted} was compacted`,
        { context: { revision, compactedRevision: this.#compacted } },
      );
    }
    if (revision > this.#revision) {
      throw new KedgeError(
        'KEDGE_STORE_FUTURE_REVISION',
        `Cannot ${what} at revision ${revision}: the store is at revision ${this.#revision}`,
        { context: { revision, currentRevision: this.#revision } },
      );
    }
    return revision;
  }

  /**
   * One write, committed with the others of this turn of the event loop (group commit): the first write
   * opens a transaction and schedules its COMMIT with setImmediate; every write applied until then joins it.
   * A write resolves (and its watch event is dispatched) only after the COMMIT, so what a caller was told is
   * written is on disk; one commit per turn instead of per write halves a write's cost under load. Reads
   * (get) in between see the open group's writes; if its COMMIT fails (disk full), every write in it is
   * rejected, the revision goes back, and such a read saw writes that did not happen: the price of group
   * commit, paid only when the disk fails.
   */
  #writeOne(op: BatchOp): Promise<Applied> {
    if (!this.#groupCommit) {
      // One write in its own (implicit) transaction: the insert and its trigger commit together.
      const applied = this.#apply(op, this.#revision + 1);
      this.#revision++;
      this.#dispatch(applied);
      return Promise.resolve(applied);
    }
    if (this.#group === undefined) {
      this.#db.exec('BEGIN IMMEDIATE');
      this.#group = { revisionBefore: this.#revision, writes: [] };
      setImmediate(() => this.#commitGroup());
    }
    const group = this.#group;
    let applied: Applied;
    try {
      applied = this.#apply(op, this.#revision + 1);
    } catch (err) {
      // A refused write (conflict, missing key) leaves the group as it was; a failed statement that made
      // SQLite roll back the transaction fails the whole group.
      if (!this.#db.isTransaction) this.#failGroup(group, err);
      throw err;
    }
    this.#revision++;
    return new Promise((resolve, reject) => group.writes.push({ applied, resolve, reject }));
  }

  /** Commits the open group, if any, then dispatches and resolves its writes in revision order. */
  #commitGroup(): void {
    const group = this.#group;
    if (group === undefined) return;
    try {
      this.#db.exec('COMMIT');
    } catch (err) {
      this.#failGroup(group, err);
      return;
    }
    this.#group = undefined;
    for (const w of group.writes) this.#dispatch(w.applied);
    for (const w of group.writes) w.resolve(w.applied);
  }

  #failGroup(group: WriteGroup, err: unknown): void {
    if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
    if (this.#group === group) this.#group = undefined;
    this.#revision = group.revisionBefore;
    for (const w of group.writes) w.reject(err);
    group.writes.length = 0;
  }

  #apply(op: BatchOp, revision: number): Applied {
    const { key } = op;
    const current = this.#getCurrent.get(key);
    if (op.type === 'create') {
      if (current !== undefined) {
        throw new KedgeError('KEDGE_STORE_KEY_EXISTS', `Key ${key} already exists`, {
          context: { key, revision: current['revision'] },
        });
      }
      this.#insert.run(revision, key, PUT, op.value, revision, null);
      return {
        entry: { key, value: op.value, revision, createRevision: revision },
        type: 'create',
        prev: undefined,
        prevRevision: undefined,
      };
    }
    if (current === undefined) {
      throw new KedgeError('KEDGE_STORE_NOT_FOUND', `Key ${key} does not exist`, { context: { key } });
    }
    const currentRevision = int(current['revision'], 'revision');
    const createRevision = int(current['create_revision'], 'create revision');
    if (op.expectedRevision !== undefined && op.expectedRevision !== currentRevision) {
      throw new KedgeError(
        'KEDGE_STORE_CONFLICT',
        `Key ${key} is at revision ${currentRevision}, not the expected ${op.expectedRevision}`,
        { context: { key, revision: currentRevision, expectedRevision: op.expectedRevision } },
      );
    }
    if (op.type === 'update') {
      this.#insert.run(revision, key, PUT, op.value, createRevision, currentRevision);
      return {
        entry: { key, value: op.value, revision, createRevision },
        type: 'update',
        prev: undefined,
        prevRevision: currentRevision,
      };
    }
    const value = text(this.#valueAt.get(currentRevision)?.['value'], 'value');
    this.#insert.run(revision, key, DELETE, null, createRevision, currentRevision);
    return {
      entry: { key, value, revision, createRevision },
      type: 'delete',
      prev: { key, value, revision: currentRevision, createRevision },
      prevRevision: currentRevision,
    };
  }

  #dispatch(applied: Applied): void {
    if (this.#fanout.size === 0) return;
    const { entry } = applied;
    this.#fanout.dispatch(entry.key, (): WatchEvent => {
      if (applied.type === 'delete') return { type: 'delete', ...entry };
      if (applied.prevRevision === undefined) return { type: 'put', ...entry };
      const prevValue = text(this.#valueAt.get(applied.prevRevision)?.['value'], 'value');
      return { type: 'put', ...entry, prevValue };
    });
  }
}

function bounds(from: string, end: string | undefined): [string, string | null] {
  return [from, end ?? null];
}

function closedError(): KedgeError {
  return new KedgeError('KEDGE_STORE_CLOSED', 'Store is closed');
}

function replayEvent(row: Record<string, SQLOutputValue>): WatchEvent {
  const key = text(row['key'], 'key');
  const revision = int(row['revision'], 'revision');
  const createRevision = int(row['create_revision'], 'create revision');
  if (row['type'] === DELETE) {
    return { type: 'delete', key, value: text(row['prev_value'], 'value'), revision, createRevision };
  }
  if (row['type'] !== PUT) throw corrupt('row type', row['type']);
  const value = text(row['value'], 'value');
  const prev = row['prev_value'];
  return prev === null
    ? { type: 'put', key, value, revision, createRevision }
    : { type: 'put', key, value, revision, createRevision, prevValue: text(prev, 'value') };
}
