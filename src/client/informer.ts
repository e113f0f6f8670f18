import type { KubeObject } from '../api/meta.ts';
import { isApiError } from '../api/status-error.ts';
import type { Logger } from '../lib/log.ts';
import type { Cluster, ResourceRef } from './types.ts';

export type AddHandler<T> = (obj: T) => void;
export type UpdateHandler<T> = (oldObj: T, newObj: T) => void;
export type DeleteHandler<T> = (obj: T) => void;
export type IndexFunc<T> = (obj: T) => readonly string[];

/** `namespace/name`, or `name` for cluster-scoped objects: the key informers and work queues use. */
export function objectKeyOf(obj: KubeObject): string {
  const ns = obj.metadata.namespace;
  return ns === undefined || ns === '' ? (obj.metadata.name ?? '') : `${ns}/${obj.metadata.name ?? ''}`;
}

export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

export interface InformerOptions {
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
}

/**
 * A cache of one collection kept current by list+watch, with indexes and change handlers. Re-lists when
 * the watch's revision expired (410) and tells handlers exactly what changed meanwhile.
 */
export class Informer<T extends KubeObject = KubeObject> {
  readonly ref: ResourceRef;
  readonly #cluster: Cluster;
  readonly #log: Logger;
  readonly #options: InformerOptions;
  readonly #items = new Map<string, T>();
  readonly #indexers = new Map<string, IndexFunc<T>>();
  readonly #indexes = new Map<string, Map<string, Set<string>>>();
  readonly #adds: AddHandler<T>[] = [];
  readonly #updates: UpdateHandler<T>[] = [];
  readonly #deletes: DeleteHandler<T>[] = [];
  readonly #synced = Promise.withResolvers<void>();
  #isSynced = false;
  #controller: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #resourceVersion = '';

  constructor(cluster: Cluster, ref: ResourceRef, logger: Logger, options: InformerOptions = {}) {
    this.#cluster = cluster;
    this.ref = ref;
    this.#log = logger;
    this.#options = options;
  }

  /** The revision the cache reflects. */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  get synced(): boolean {
    return this.#isSynced;
  }

  onAdd(h: AddHandler<T>): void {
    this.#adds.push(h);
    if (this.#isSynced) for (const obj of this.#items.values()) this.#call(() => h(obj));
  }

  onUpdate(h: UpdateHandler<T>): void {
    this.#updates.push(h);
  }

  onDelete(h: DeleteHandler<T>): void {
    this.#deletes.push(h);
  }

  /** Index objects by the values `fn` returns (e.g. pods by spec.nodeName). Add before start. */
  addIndex(name: string, fn: IndexFunc<T>): void {
    this.#indexers.set(name, fn);
    const index = new Map<string, Set<string>>();
    this.#indexes.set(name, index);
    for (const [key, obj] of this.#items) this.#indexOne(name, fn, index, key, obj);
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.#items.get(namespace === undefined || namespace === '' ? name : `${namespace}/${name}`);
  }

  getByKey(key: string): T | undefined {
    return this.#items.get(key);
  }

  list(): T[] {
    return [...this.#items.values()];
  }

  get size(): number {
    return this.#items.size;
  }

  byIndex(name: string, value: string): T[] {
    const keys = this.#indexes.get(name)?.get(value);
    if (keys === undefined) return [];
    const out: T[] = [];
    for (const k of keys) {
      const obj = this.#items.get(k);
      if (obj !== undefined) out.push(obj);
    }
    return out;
  }

  hasSynced(): Promise<void> {
    return this.#synced.promise;
  }

  start(): void {
    if (this.#loop !== undefined) return;
    this.#controller = new AbortController();
    this.#loop = this.#run(this.#controller.signal);
  }

  async stop(): Promise<void> {
    this.#controller?.abort();
    await this.#loop;
    this.#loop = undefined;
  }

  async #run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.#relist();
          needList = false;
        }
        const events = this.#cluster.watch<T>(this.ref, {
          resourceVersion: this.#resourceVersion,
          allowWatchBookmarks: true,
          signal,
          ...this.#selectors(),
        });
        for await (const ev of events) {
          failures = 0;
          const rv = ev.object.metadata.resourceVersion;
          if (rv !== undefined && rv !== '') this.#resourceVersion = rv;
          if (ev.type === 'BOOKMARK') continue;
          if (ev.type === 'DELETED') this.#remove(objectKeyOf(ev.object), ev.object);
          else this.#upsert(ev.object);
        }
      } catch (err) {
        if (signal.aborted) return;
        if (isApiError(err, 410)) {
          needList = true;
          continue;
        }
        failures++;
        const delay = Math.min(30_000, 100 * 2 ** Math.min(failures, 9));
        this.#log.warn({ err, resource: this.ref.resource, retryInMs: delay }, 'informer watch failed');
        await sleep(delay, signal);
      }
    }
  }

  #selectors(): InformerOptions {
    return {
      ...(this.#options.namespace === undefined ? {} : { namespace: this.#options.namespace }),
      ...(this.#options.labelSelector === undefined ? {} : { labelSelector: this.#options.labelSelector }),
      ...(this.#options.fieldSelector === undefined ? {} : { fieldSelector: this.#options.fieldSelector }),
    };
  }

  async #relist(): Promise<void> {
    const seen = new Set<string>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.#cluster.list<T>(this.ref, {
        ...this.#selectors(),
        limit: 5000,
        ...(cont === undefined ? {} : { continue: cont }),
      });
      rv = page.metadata.resourceVersion ?? rv;
      for (const obj of page.items) {
        seen.add(objectKeyOf(obj));
        this.#upsert(obj);
      }
      cont = page.metadata.continue;
    } while (cont !== undefined && cont !== '');
    for (const [key, obj] of [...this.#items]) if (!seen.has(key)) this.#remove(key, obj);
    this.#resourceVersion = rv;
    if (!this.#isSynced) {
      this.#isSynced = true;
      this.#synced.resolve();
    }
  }

  #upsert(obj: T): void {
    const key = objectKeyOf(obj);
    const old = this.#items.get(key);
    if (old !== undefined && old.metadata.resourceVersion === obj.metadata.resourceVersion) return;
    this.#items.set(key, obj);
    for (const [name, fn] of this.#indexers) {
      const index = this.#indexes.get(name)!;
      if (old !== undefined) this.#unindexOne(fn, index, key, old);
      this.#indexOne(name, fn, index, key, obj);
    }
    if (old === undefined) for (const h of this.#adds) this.#call(() => h(obj));
    else for (const h of this.#updates) this.#call(() => h(old, obj));
  }

  #remove(key: string, last: T): void {
    const old = this.#items.get(key);
    if (old === undefined) return;
    this.#items.delete(key);
    for (const [name, fn] of this.#indexers) this.#unindexOne(fn, this.#indexes.get(name)!, key, old);
    for (const h of this.#deletes) this.#call(() => h(last));
  }

  #indexOne(_name: string, fn: IndexFunc<T>, index: Map<string, Set<string>>, key: string, obj: T): void {
    for (const value of fn(obj)) {
      let set = index.get(value);
      if (set === undefined) {
        set = new Set();
        index.set(value, set);
      }
      set.add(key);
    }
  }

  #unindexOne(fn: IndexFunc<T>, index: Map<string, Set<string>>, key: string, obj: T): void {
    for (const value of fn(obj)) {
      const set = index.get(value);
      set?.delete(key);
      if (set?.size === 0) index.delete(value);
    }
  }

  #call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log.error({ err, resource: this.ref.resource }, 'informer handler threw');
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** One informer per collection, shared by every controller that asks for it. */
export class InformerFactory {
  readonly #cluster: Cluster;
  readonly #log: Logger;
  readonly #informers = new Map<string, Informer>();
  #started = false;

  constructor(cluster: Cluster, logger: Logger) {
    this.#cluster = cluster;
    this.#log = logger;
  }

  informer<T extends KubeObject = KubeObject>(ref: ResourceRef, options: InformerOptions = {}): Informer<T> {
    const id = `${ref.group}/${ref.version}/${ref.resource}?${options.namespace ?? ''}&${options.labelSelector ?? ''}&${options.fieldSelector ?? ''}`;
    let inf = this.#informers.get(id);
    if (inf === undefined) {
      inf = new Informer(this.#cluster, ref, this.#log, options);
      this.#informers.set(id, inf);
      if (this.#started) inf.start();
    }
    return inf as unknown as Informer<T>;
  }

  start(): void {
    this.#started = true;
    for (const inf of this.#informers.values()) inf.start();
  }

  async waitForSync(): Promise<void> {
    await Promise.all([...this.#informers.values()].map((i) => i.hasSynced()));
  }

  async stop(): Promise<void> {
    this.#started = false;
    await Promise.all([...this.#informers.values()].map((i) => i.stop()));
  }
}

/**
 * A work queue of keys as client-go has it: a key is queued at most once, never handed to two workers
 * at once, and re-queued after `done` if it was added while being processed; failed keys back off.
 */
export class WorkQueue<K = string> {
  readonly #queue: K[] = [];
  readonly #dirty = new Set<K>();
  readonly #processing = new Set<K>();
  readonly #failures = new Map<K, number>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #waiters: Array<(k: K | undefined) => void> = [];
  readonly #baseMs: number;
  readonly #maxMs: number;
  #shutdown = false;

  constructor(options: { baseDelayMs?: number; maxDelayMs?: number } = {}) {
    this.#baseMs = options.baseDelayMs ?? 5;
    this.#maxMs = options.maxDelayMs ?? 60_000;
  }

  get length(): number {
    return this.#queue.length;
  }

  add(key: K): void {
    if (this.#shutdown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      this.#dirty.delete(key);
      this.#processing.add(key);
      waiter(key);
    } else this.#queue.push(key);
  }

  addAfter(key: K, ms: number): void {
    if (this.#shutdown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const t = setTimeout(() => {
      this.#timers.delete(t);
      this.add(key);
    }, ms);
    t.unref?.();
    this.#timers.add(t);
  }

  /** Re-queue after an exponentially growing delay (per key), until `forget`. */
  addRateLimited(key: K): void {
    const n = this.#failures.get(key) ?? 0;
    this.#failures.set(key, n + 1);
    this.addAfter(key, Math.min(this.#maxMs, this.#baseMs * 2 ** n));
  }

  forget(key: K): void {
    this.#failures.delete(key);
  }

  retries(key: K): number {
    return this.#failures.get(key) ?? 0;
  }

  /** The next key to process, or undefined once shut down and drained. */
  get(): Promise<K | undefined> {
    const key = this.#queue.shift();
    if (key !== undefined) {
      this.#dirty.delete(key);
      this.#processing.add(key);
      return Promise.resolve(key);
    }
    if (this.#shutdown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  done(key: K): void {
    this.#processing.delete(key);
    if (this.#dirty.has(key)) {
      this.#dirty.delete(key);
      this.add(key);
    }
  }

  shutDown(): void {
    this.#shutdown = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const w of this.#waiters.splice(0)) w(undefined);
  }

  get shuttingDown(): boolean {
    return this.#shutdown;
  }
}

/** Run `workers` loops taking keys from the queue; errors re-queue the key with backoff. */
export async function runWorkers<K>(
  queue: WorkQueue<K>,
  workers: number,
  handle: (key: K) => Promise<void>,
  onError: (key: K, err: unknown) => void,
): Promise<void> {
  const loop = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        await handle(key);
        queue.forget(key);
      } catch (err) {
        onError(key, err);
        queue.addRateLimited(key);
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, loop));
}
