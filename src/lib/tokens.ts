/**
 * Join tokens (`K10<caHash>::<id>.<secret>`, like k3s) and API bearer tokens, kept in a small SQLite
 * file in the server data dir. Only a sha256 of each secret is stored.
 *
 * Why SQLite and not JSON: `kedge token create` runs as its own process while the server verifies
 * joins, so the file has two writers and a reader at once; SQLite (WAL, busy timeout) gives that
 * safely, and node:sqlite is already how kedge stores everything.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { KedgeError } from './errors.ts';

/** The parts of a join token. `caHash` pins the server's CA (sha256 of its DER, hex). */
export interface JoinToken {
  caHash: string;
  id: string;
  secret: string;
}

export const JOIN_TOKEN_PREFIX = 'K10';
export const API_TOKEN_PREFIX = 'kedge_';
const ID_PATTERN = /^[a-z0-9]{6}$/;
const SECRET_PATTERN = /^[a-z0-9]{16,64}$/;
const CA_HASH_PATTERN = /^[0-9a-f]{64}$/;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const SECRET_LENGTH = 32; // ~165 bits

function tokenError(message: string, context: Record<string, unknown> = {}): KedgeError {
  return new KedgeError('KEDGE_CONFIG_INVALID', message, { context });
}

/** Uniformly random characters from [a-z0-9]. */
function randomChars(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 252 = 7 * 36: dropping bytes above it keeps every character equally likely.
      if (byte < 252 && out.length < length) out += ALPHABET[byte % 36];
    }
  }
  return out;
}

/** Checks `<id>.<secret>`; messages say what is wrong without echoing the secret. */
function parseIdSecret(credential: string, what: string): { id: string; secret: string } {
  const dot = credential.indexOf('.');
  if (dot < 0) throw tokenError(`${what} must end in <id>.<secret>`);
  const id = credential.slice(0, dot);
  const secret = credential.slice(dot + 1);
  if (!ID_PATTERN.test(id)) throw tokenError(`${what} id must be 6 characters from [a-z0-9]`);
  if (!SECRET_PATTERN.test(secret)) {
    throw tokenError(`${what} secret must be 16 to 64 characters from [a-z0-9]`, { id });
  }
  return { id, secret };
}

/** Parses `K10<caHash>::<id>.<secret>`; a KEDGE_CONFIG_INVALID names the bad part, never the secret. */
export function parseJoinToken(token: string): JoinToken {
  if (typeof token !== 'string') throw tokenError('Join token must be a string');
  const s = token.trim();
  if (!s.startsWith(JOIN_TOKEN_PREFIX)) throw tokenError(`Join token must start with ${JOIN_TOKEN_PREFIX}`);
  const sep = s.indexOf('::');
  if (sep < 0) throw tokenError(`Join token must have the form ${JOIN_TOKEN_PREFIX}<ca-hash>::<id>.<secret>`);
  const caHash = s.slice(JOIN_TOKEN_PREFIX.length, sep).toLowerCase();
  if (!CA_HASH_PATTERN.test(caHash)) {
    throw tokenError('Join token CA hash must be 64 hex characters (sha256 of the CA certificate)');
  }
  return { caHash, ...parseIdSecret(s.slice(sep + 2), 'Join token') };
}

/** Formats a join token from its parts (validated). */
export function formatJoinToken(parts: JoinToken): string {
  const token = `${JOIN_TOKEN_PREFIX}${parts.caHash}::${parts.id}.${parts.secret}`;
  parseJoinToken(token);
  return token;
}

/** A new random join token for the CA with this hash (not stored anywhere; see TokenStore.create). */
export function generateJoinToken(
  caHash: string,
  options: { id?: string } = {},
): JoinToken & { token: string } {
  const parts = {
    caHash: caHash.toLowerCase(),
    id: options.id ?? randomChars(6),
    secret: randomChars(SECRET_LENGTH),
  };
  return { ...parts, token: formatJoinToken(parts) };
}

/** Parses an API bearer token `kedge_<id>.<secret>`. */
export function parseApiToken(token: string): { id: string; secret: string } {
  if (typeof token !== 'string' || !token.startsWith(API_TOKEN_PREFIX)) {
    throw tokenError(`API token must start with ${API_TOKEN_PREFIX}`);
  }
  return parseIdSecret(token.slice(API_TOKEN_PREFIX.length), 'API token');
}

/** A stored token as listed: never its secret. */
export interface TokenInfo {
  id: string;
  description: string;
  createdAt: Date;
  expiresAt?: Date;
  revoked: boolean;
}

export interface ApiTokenInfo extends TokenInfo {
  user: string;
  groups: string[];
}

export interface CreatedToken {
  id: string;
  /** The full token; shown once, stored only as a hash. */
  token: string;
  expiresAt?: Date;
}

export interface TokenStoreOptions {
  /** SQLite file, e.g. `<data-dir>/tokens.db`. */
  path: string;
  /** Hash of the cluster CA; join tokens carry it and must match it. */
  caHash: string;
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
}

type Kind = 'join' | 'api';

interface Row {
  id: string;
  secret_hash: Uint8Array;
  description: string;
  user: string | null;
  groups: string | null;
  created_at: number;
  expires_at: number | null;
  revoked: number;
}

const hashSecret = (secret: string): Buffer => createHash('sha256').update(secret, 'utf8').digest();

function checkTtl(ttlSeconds: number | undefined): void {
  if (ttlSeconds !== undefined && (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0)) {
    throw tokenError(`Token ttlSeconds must be a positive whole number, got ${ttlSeconds}`, { ttlSeconds });
  }
}

function checkDescription(description: string | undefined): string {
  const d = description ?? '';
  if (typeof d !== 'string' || d.length > 256)
    throw tokenError('Token description must be at most 256 characters');
  return d;
}

/** Join tokens and API tokens in one SQLite file. Synchronous: every call is one small indexed query. */
export class TokenStore {
  readonly #db: DatabaseSync;
  readonly #caHash: string;
  readonly #now: () => number;
  readonly #insert: StatementSync;
  readonly #get: StatementSync;
  readonly #revoke: StatementSync;
  readonly #list: StatementSync;

  constructor(options: TokenStoreOptions) {
    if (!CA_HASH_PATTERN.test(options.caHash)) {
      throw tokenError('TokenStore caHash must be 64 lowercase hex characters', { caHash: options.caHash });
    }
    this.#caHash = options.caHash;
    this.#now = options.now ?? Date.now;
    if (options.path !== ':memory:') {
      mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
      // Create the file 0600 before SQLite does (it would use the umask); WAL files copy its mode.
      closeSync(openSync(options.path, 'a', 0o600));
    }
    this.#db = new DatabaseSync(options.path);
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS tokens (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        secret_hash BLOB NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        user TEXT,
        groups TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (kind, id)
      ) WITHOUT ROWID;
    `);
    this.#insert = this.#db.prepare(
      `INSERT OR IGNORE INTO tokens (kind, id, secret_hash, description, user, groups, created_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#get = this.#db.prepare('SELECT * FROM tokens WHERE kind = ? AND id = ?');
    this.#revoke = this.#db.prepare('UPDATE tokens SET revoked = 1 WHERE kind = ? AND id = ?');
    this.#list = this.#db.prepare('SELECT * FROM tokens WHERE kind = ? ORDER BY created_at, id');
  }

  /** Creates a join token. Without ttlSeconds it never expires (like the server's node-token). */
  create(options: { ttlSeconds?: number; description?: string } = {}): CreatedToken {
    const { id, secret, expiresAt } = this.#insertToken(
      'join',
      options.ttlSeconds,
      options.description,
      null,
      null,
    );
    const token = formatJoinToken({ caHash: this.#caHash, id, secret });
    return expiresAt === undefined ? { id, token } : { id, token, expiresAt };
  }

  /**
   * Checks a join token (full `K10...` form, or `<id>.<secret>`): the CA hash must be ours, the secret
   * must match (constant-time), and the token must be neither expired nor revoked.
   */
  verify(token: string): { id: string } | undefined {
    let credential: { id: string; secret: string };
    try {
      if (token.startsWith(JOIN_TOKEN_PREFIX)) {
        const parsed = parseJoinToken(token);
        if (parsed.caHash !== this.#caHash) return undefined;
        credential = parsed;
      } else {
        credential = parseIdSecret(token.trim(), 'Join token');
      }
    } catch {
      return undefined;
    }
    const row = this.#check('join', credential.id, credential.secret);
    return row === undefined ? undefined : { id: row.id };
  }

  /** Revokes a join token; false when there is no such id. */
  revoke(id: string): boolean {
    return Number(this.#revoke.run('join', id).changes) > 0;
  }

  /** Join tokens, oldest first, without secrets. */
  list(): TokenInfo[] {
    return (this.#list.all('join') as unknown as Row[]).map((row) => this.#info(row));
  }

  /** Creates an API bearer token `kedge_<id>.<secret>` that authenticates as `user` in `groups`. */
  createApiToken(options: {
    user: string;
    groups?: readonly string[];
    ttlSeconds?: number;
    description?: string;
  }): CreatedToken {
    if (typeof options.user !== 'string' || options.user === '' || options.user.length > 256) {
      throw tokenError(`API token user must be 1 to 256 characters, got ${JSON.stringify(options.user)}`);
    }
    const groups = options.groups ?? [];
    for (const g of groups) {
      if (typeof g !== 'string' || g === '')
        throw tokenError(`API token group ${JSON.stringify(g)} is invalid`);
    }
    const { id, secret, expiresAt } = this.#insertToken(
      'api',
      options.ttlSeconds,
      options.description,
      options.user,
      JSON.stringify(groups),
    );
    const token = `${API_TOKEN_PREFIX}${id}.${secret}`;
    return expiresAt === undefined ? { id, token } : { id, token, expiresAt };
  }

  /** The user behind an API bearer token, or undefined when it is unknown, wrong, expired or revoked. */
  authenticateToken(token: string): { id: string; user: string; groups: string[] } | undefined {
    let credential: { id: string; secret: string };
    try {
      credential = parseApiToken(token);
    } catch {
      return undefined;
    }
    const row = this.#check('api', credential.id, credential.secret);
    if (row === undefined) return undefined;
    return { id: row.id, user: row.user ?? '', groups: JSON.parse(row.groups ?? '[]') as string[] };
  }

  /** Revokes an API token; false when there is no such id. */
  revokeApiToken(id: string): boolean {
    return Number(this.#revoke.run('api', id).changes) > 0;
  }

  /** API tokens, oldest first, without secrets. */
  listApiTokens(): ApiTokenInfo[] {
    return (this.#list.all('api') as unknown as Row[]).map((row) => ({
      ...this.#info(row),
      user: row.user ?? '',
      groups: JSON.parse(row.groups ?? '[]') as string[],
    }));
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #insertToken(
    kind: Kind,
    ttlSeconds: number | undefined,
    description: string | undefined,
    user: string | null,
    groups: string | null,
  ): { id: string; secret: string; expiresAt?: Date } {
    checkTtl(ttlSeconds);
    const desc = checkDescription(description);
    const now = this.#now();
    const expires = ttlSeconds === undefined ? null : now + ttlSeconds * 1000;
    const secret = randomChars(SECRET_LENGTH);
    // 36^6 ids: a clash is rare, and INSERT OR IGNORE tells us to draw again.
    for (let attempt = 0; attempt < 20; attempt++) {
      const id = randomChars(6);
      const result = this.#insert.run(kind, id, hashSecret(secret), desc, user, groups, now, expires);
      if (Number(result.changes) === 1) {
        return expires === null ? { id, secret } : { id, secret, expiresAt: new Date(expires) };
      }
    }
    throw tokenError('Could not find a free token id; the token table is nearly full');
  }

  #check(kind: Kind, id: string, secret: string): Row | undefined {
    const row = this.#get.get(kind, id) as unknown as Row | undefined;
    // Hash even when the id is unknown so both paths do the same work.
    const presented = hashSecret(secret);
    if (row === undefined) return undefined;
    const stored = Buffer.from(row.secret_hash);
    if (stored.length !== presented.length || !timingSafeEqual(stored, presented)) return undefined;
    if (row.revoked !== 0) return undefined;
    if (row.expires_at !== null && this.#now() >= row.expires_at) return undefined;
    return row;
  }

  #info(row: Row): TokenInfo {
    const info: TokenInfo = {
      id: row.id,
      description: row.description,
      createdAt: new Date(row.created_at),
      revoked: row.revoked !== 0,
    };
    if (row.expires_at !== null) info.expiresAt = new Date(row.expires_at);
    return info;
  }
}
