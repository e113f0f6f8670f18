/**
 * The node-local, read-only Kubernetes API (`--local-api`, plain HTTP on loopback) for edge applications:
 * list, get and watch of what the hub synced to this node, and the agent's /metrics.
 *
 * Why a mirror store: the server's API layer (src/apiserver) serves a revisioned `Store` with watch
 * history. The agent's local store keeps the SERVER's revisions for a subset of objects and no history,
 * which that layer cannot watch from. So every applied batch is mirrored into a second SQLite store
 * (`local-api.db`, with its own revisions and history) and the unchanged ApiServer serves it: the same
 * discovery, list, watch, table printing and selectors as the server, no second implementation. The
 * price: resourceVersions on this API are local ones, and each object is stored twice. Only get, list and
 * watch are authorized; the port should stay on loopback, since it serves the node's Secrets to anyone
 * who can reach it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { KubeObject } from '../api/meta.ts';
import type { Authorizer } from '../apiserver/auth.ts';
import { ApiServer } from '../apiserver/server.ts';
import { encodeObject } from '../apiserver/storage.ts';
import type { Logger } from '../lib/log.ts';
import { parseSyncKey, type SyncKey } from '../protocol/messages.ts';
import { openSqliteStore, type SqliteStore } from '../store/sqlite.ts';
import type { BatchOp } from '../store/types.ts';
import type { LocalChange, LocalStore } from './local-store.ts';

export interface LocalApiOptions {
  readonly store: LocalStore;
  readonly dataDir: string;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly logger: Logger;
  readonly metrics?: Registry;
}

const READ_VERBS = new Set(['get', 'list', 'watch']);
const LOCAL_USER = { name: 'system:kedge-local', groups: ['system:authenticated'] } as const;

/** Allows reads only, for resources and plain paths alike. */
export const readOnlyAuthorizer: Authorizer = (attrs) =>
  READ_VERBS.has(attrs.verb)
    ? { allowed: true }
    : { allowed: false, reason: 'the node-local API is read-only' };

/** The server's storage key for a sync key: /registry/<group|core>/<plural>/[<ns>/]<name>. */
export function storageKeyOf(key: SyncKey): string | undefined {
  const p = parseSyncKey(key);
  if (p === undefined) return undefined;
  const group = p.group === '' ? 'core' : p.group;
  return `/registry/${group}/${p.plural}/${p.namespace === undefined ? '' : `${p.namespace}/`}${p.name}`;
}

function storedValue(obj: KubeObject): string {
  return encodeObject(obj);
}

export class LocalApi {
  readonly #o: LocalApiOptions;
  readonly #log: Logger;
  #mirror: SqliteStore | undefined;
  #api: ApiServer | undefined;
  #http: Server | undefined;
  #off: (() => void) | undefined;
  /** Mirror writes run one after another, in commit order. */
  #chain: Promise<void> = Promise.resolve();
  url = '';

  constructor(options: LocalApiOptions) {
    this.#o = options;
    this.#log = options.logger;
  }

  async start(): Promise<string> {
    const mirror = openSqliteStore({ path: join(this.#o.dataDir, 'local-api.db'), logger: this.#log });
    this.#mirror = mirror;
    // The reconcile reads the local store synchronously before its first await, and later batches queue
    // behind it, so nothing falls between the two.
    this.#chain = this.#reconcile();
    this.#off = this.#o.store.onChange((changes) => {
      this.#chain = this.#chain
        .then(() => this.#apply(changes))
        .catch((err: unknown) => {
          this.#log.error({ err }, 'local API mirror write failed; reconciling');
          return this.#reconcile();
        })
        .catch((err: unknown) => this.#log.error({ err }, 'local API mirror reconcile failed'));
    });
    await this.#chain;
    this.#api = new ApiServer({
      store: mirror,
      logger: this.#log,
      authenticate: () => LOCAL_USER,
      authorizers: [readOnlyAuthorizer],
      ...(this.#o.metrics === undefined ? {} : { metricsRegistry: this.#o.metrics }),
    });
    await this.#api.start();
    const http = createServer(this.#api.handle);
    this.#http = http;
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(this.#o.port, this.#o.host, () => {
        http.off('error', reject);
        resolve();
      });
    });
    const { port } = http.address() as AddressInfo;
    const host = this.#o.host.includes(':') ? `[${this.#o.host}]` : this.#o.host;
    this.url = `http://${host}:${port}`;
    return this.url;
  }

  /** Resolves when every change heard so far is in the mirror. */
  flushed(): Promise<void> {
    return this.#chain;
  }

  async close(): Promise<void> {
    this.#off?.();
    if (this.#http !== undefined) {
      const done = new Promise<void>((resolve) => this.#http?.close(() => resolve()));
      await this.#api?.close();
      this.#http.closeAllConnections();
      await done;
    } else await this.#api?.close();
    await this.#chain;
    await this.#mirror?.close();
  }

  async #apply(changes: readonly LocalChange[]): Promise<void> {
    const mirror = this.#mirror;
    if (mirror === undefined) return;
    const ops: BatchOp[] = [];
    for (const c of changes) {
      const key = storageKeyOf(c.key);
      if (key === undefined) continue;
      const exists = (await mirror.get(key)) !== undefined;
      if (c.type === 'put')
        ops.push({ type: exists ? 'update' : 'create', key, value: storedValue(c.object) });
      else if (exists) ops.push({ type: 'delete', key });
    }
    if (ops.length > 0) await mirror.batch(ops);
  }

  /** Makes the mirror equal to the local store (after a crash between the two writes, or at first start). */
  async #reconcile(): Promise<void> {
    const mirror = this.#mirror;
    if (mirror === undefined) return;
    const want = new Map<string, string>();
    for (const o of this.#o.store.list('')) {
      const key = storageKeyOf(o.key);
      if (key !== undefined) want.set(key, storedValue(o.object));
    }
    const ops: BatchOp[] = [];
    const have = await mirror.list('/registry/');
    for (const e of have.entries) {
      const value = want.get(e.key);
      // The API server creates the system namespaces itself: leave namespaces alone.
      if (value === undefined && !e.key.startsWith('/registry/core/namespaces/')) {
        ops.push({ type: 'delete', key: e.key });
      } else if (value !== undefined && value !== e.value) ops.push({ type: 'update', key: e.key, value });
      want.delete(e.key);
    }
    for (const [key, value] of want) ops.push({ type: 'create', key, value });
    if (ops.length > 0) await mirror.batch(ops);
    this.#log.debug({ writes: ops.length }, 'local API mirror reconciled');
  }
}
