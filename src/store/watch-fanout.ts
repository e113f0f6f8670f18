/** In-memory watch fan-out shared by store backends: committed events go to every matching watcher. */
import { KedgeError } from '../lib/errors.ts';
import type { Watch, WatchEvent } from './types.ts';

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/**
 * One watcher: a bounded queue between the store (push) and one consumer (async iteration). Past
 * `maxBuffered` undelivered events it ends with KEDGE_STORE_WATCH_OVERFLOW and drops what it held.
 */
export class BufferedWatch implements Watch, AsyncIterator<WatchEvent> {
  readonly prefix: string;
  readonly done: Promise<Error | undefined>;
  readonly #maxBuffered: number;
  readonly #onEnd: (watch: BufferedWatch) => void;
  #queue: (WatchEvent | undefined)[] = [];
  #head = 0;
  #waiter: { resolve(r: IteratorResult<WatchEvent>): void; reject(err: Error): void } | undefined;
  #ended = false;
  #error: Error | undefined;
  #resolveDone!: (err: Error | undefined) => void;

  constructor(prefix: string, maxBuffered: number, onEnd: (watch: BufferedWatch) => void) {
    this.prefix = prefix;
    this.#maxBuffered = maxBuffered;
    this.#onEnd = onEnd;
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
  }

  get ended(): boolean {
    return this.#ended;
  }

  push(event: WatchEvent): void {
    if (this.#ended) return;
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      waiter.resolve({ done: false, value: event });
      return;
    }
    if (this.#queue.length - this.#head >= this.#maxBuffered) {
      this.end(
        new KedgeError(
          'KEDGE_STORE_WATCH_OVERFLOW',
          `Watch on prefix ${this.prefix} fell more than ${this.#maxBuffered} events behind`,
          { context: { prefix: this.prefix, maxBuffered: this.#maxBuffered, revision: event.revision } },
        ),
      );
      return;
    }
    this.#queue.push(event);
  }

  /** Ends the watch (with an error if given); undelivered events are dropped. Idempotent. */
  end(error?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#queue = [];
    this.#head = 0;
    this.#onEnd(this);
    this.#resolveDone(error);
    const waiter = this.#waiter;
    if (waiter === undefined) return;
    this.#waiter = undefined;
    if (error === undefined) waiter.resolve(DONE);
    else {
      this.#error = undefined;
      waiter.reject(error);
    }
  }

  close(): void {
    this.end();
  }

  next(): Promise<IteratorResult<WatchEvent>> {
    if (this.#head < this.#queue.length) {
      const event = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined;
      if (this.#head === this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve({ done: false, value: event });
    }
    if (this.#ended) {
      const error = this.#error;
      this.#error = undefined;
      return error === undefined ? Promise.resolve(DONE) : Promise.reject(error);
    }
    if (this.#waiter !== undefined) {
      return Promise.reject(
        new KedgeError('KEDGE_STORE_INVALID', `Watch on prefix ${this.prefix} already has a pending next()`),
      );
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<WatchEvent>> {
    this.end();
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    return this;
  }
}

/** Watchers grouped by prefix, so dispatch costs one check per distinct prefix, not per watcher. */
export class WatchFanout {
  readonly #byPrefix = new Map<string, Set<BufferedWatch>>();

  add(watch: BufferedWatch): void {
    if (watch.ended) return;
    let set = this.#byPrefix.get(watch.prefix);
    if (set === undefined) {
      set = new Set();
      this.#byPrefix.set(watch.prefix, set);
    }
    set.add(watch);
  }

  remove(watch: BufferedWatch): void {
    const set = this.#byPrefix.get(watch.prefix);
    if (set === undefined || !set.delete(watch)) return;
    if (set.size === 0) this.#byPrefix.delete(watch.prefix);
  }

  get size(): number {
    return this.#byPrefix.size;
  }

  /** Delivers the event for `key` to every matching watcher; `make` runs at most once, only if one matches. */
  dispatch(key: string, make: () => WatchEvent): void {
    let event: WatchEvent | undefined;
    for (const [prefix, set] of this.#byPrefix) {
      if (!key.startsWith(prefix)) continue;
      event ??= make();
      // push() may end a watcher, which removes it from the set: Set and Map iteration tolerate that.
      for (const watch of set) watch.push(event);
    }
  }

  /** Ends every watcher with `error`. */
  endAll(error: Error): void {
    for (const set of [...this.#byPrefix.values()]) for (const watch of [...set]) watch.end(error);
    this.#byPrefix.clear();
  }
}
