/**
 * Which public key owns each node name: the first join binds a name to its key; another key for the same
 * name is refused until an operator forgets the node. Kept in a small SQLite file in the server data dir
 * (not as an annotation on the Node object) because deleting or editing a Node with kubectl must not free
 * its name for whoever else holds a join token, and the check has to run before any Node object exists.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';

/** sha256 of the certificate's public key (SPKI DER), lowercase hex. */
export function publicKeyFingerprint(certPem: string | Buffer): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}

export interface NodeRecord {
  readonly name: string;
  readonly keyFingerprint: string;
  readonly joinedAt: Date;
  readonly renewedAt: Date;
}

interface Row {
  name: string;
  key_fingerprint: string;
  joined_at: number;
  renewed_at: number;
}

export class NodeRegistry {
  readonly #db: DatabaseSync;
  readonly #get: StatementSync;
  readonly #insert: StatementSync;
  readonly #rekey: StatementSync;
  readonly #remove: StatementSync;
  readonly #now: () => number;

  /** `path` is a SQLite file such as `<data-dir>/nodes.db`, or ':memory:'. */
  /**
   * WAL with synchronous=NORMAL, like the object store: a claim survives a crash of the server process; on
   * power loss the last claims may be lost, together with the Node objects the store lost with them. FULL cost
   * an fsync (~7 ms here) per join on the event loop: 70 s of stalls for a storm of 10,000 joins.
   */
  constructor(options: { path: string; now?: () => number }) {
    this.#now = options.now ?? Date.now;
    if (options.path !== ':memory:') {
      mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
      closeSync(openSync(options.path, 'a', 0o600));
    }
    this.#db = new DatabaseSync(options.path);
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS nodes (
        name TEXT PRIMARY KEY,
        key_fingerprint TEXT NOT NULL,
        joined_at INTEGER NOT NULL,
        renewed_at INTEGER NOT NULL
      ) WITHOUT ROWID;
    `);
    this.#get = this.#db.prepare('SELECT * FROM nodes WHERE name = ?');
    this.#insert = this.#db.prepare(
      'INSERT INTO nodes (name, key_fingerprint, joined_at, renewed_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
    );
    this.#rekey = this.#db.prepare('UPDATE nodes SET key_fingerprint = ?, renewed_at = ? WHERE name = ?');
    this.#remove = this.#db.prepare('DELETE FROM nodes WHERE name = ?');
  }

  get(name: string): NodeRecord | undefined {
    const row = this.#get.get(name) as unknown as Row | undefined;
    return row === undefined
      ? undefined
      : {
          name: row.name,
          keyFingerprint: row.key_fingerprint,
          joinedAt: new Date(row.joined_at),
          renewedAt: new Date(row.renewed_at),
        };
  }

  /**
   * Binds `name` to `fingerprint` unless it is bound to another key. Returns the record that owns the name
   * afterwards: the caller compares its fingerprint.
   */
  claim(name: string, fingerprint: string): NodeRecord {
    const now = this.#now();
    this.#insert.run(name, fingerprint, now, now);
    return this.get(name)!;
  }

  /** Moves a known node to a new key (renewal with a new key, authenticated by the old one). */
  rekey(name: string, fingerprint: string): void {
    this.#rekey.run(fingerprint, this.#now(), name);
  }

  /** Forgets a node, so its name can join again with any key. */
  remove(name: string): boolean {
    return Number(this.#remove.run(name).changes) > 0;
  }

  close(): void {
    this.#db.close();
  }
}
