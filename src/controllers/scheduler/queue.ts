/**
 * The scheduling queue, like Kubernetes': an active FIFO of pods to try; pods that fit nowhere wait in
 * an unschedulable set until the cluster changes (a node added or changed, a placed pod gone) or a
 * maximum wait passes; every retry respects a per-pod exponential backoff.
 */

export interface SchedulingQueueOptions {
  /** First retry delay (default 1000 ms), doubling per attempt. */
  readonly initialBackoffMs?: number;
  /** Largest retry delay (default 10,000 ms). */
  readonly maxBackoffMs?: number;
  /** Unschedulable pods are retried at least this often even when nothing changed (default 5 min). */
  readonly maxUnschedulableMs?: number;
}

interface Waiting {
  readonly since: number;
}

export class SchedulingQueue {
  readonly #active: string[] = [];
  #head = 0;
  readonly #inActive = new Set<string>();
  readonly #unschedulable = new Map<string, Waiting>();
  /** Pods waiting out their backoff, with the timer that will activate them. */
  readonly #backoff = new Map<string, NodeJS.Timeout>();
  readonly #attempts = new Map<string, { count: number; lastFailure: number }>();
  #waiter: ((key: string | undefined) => void) | undefined;
  #closed = false;
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #maxUnschedulableMs: number;
  readonly #flush: NodeJS.Timeout;
  readonly #now: () => number;

  constructor(options: SchedulingQueueOptions = {}, now: () => number = Date.now) {
    this.#initialMs = options.initialBackoffMs ?? 1000;
    this.#maxMs = options.maxBackoffMs ?? 10_000;
    this.#maxUnschedulableMs = options.maxUnschedulableMs ?? 5 * 60_000;
    this.#now = now;
    this.#flush = setInterval(() => this.#flushUnschedulable(), Math.min(30_000, this.#maxUnschedulableMs));
    this.#flush.unref();
  }

  /** Pods waiting to be tried now. */
  get activeLength(): number {
    return this.#active.length - this.#head;
  }

  get unschedulableLength(): number {
    return this.#unschedulable.size;
  }

  get backoffLength(): number {
    return this.#backoff.size;
  }

  /** A new or changed pod: try it now (its backoff still applies if it failed before). */
  add(key: string): void {
    if (this.#closed || this.#inActive.has(key) || this.#backoff.has(key)) return;
    this.#unschedulable.delete(key);
    const wait = this.#backoffLeft(key);
    if (wait > 0) this.#startBackoff(key, wait);
    else this.#activate(key);
  }

  /** The pod fit nowhere: park it until the cluster changes. */
  addUnschedulable(key: string): void {
    if (this.#closed) return;
    this.#recordFailure(key);
    if (this.#inActive.has(key) || this.#backoff.has(key)) return;
    this.#unschedulable.set(key, { since: this.#now() });
  }

  /** Something failed (an API error): retry after the backoff. */
  addBackoff(key: string): void {
    if (this.#closed) return;
    this.#recordFailure(key);
    this.#unschedulable.delete(key);
    if (this.#inActive.has(key) || this.#backoff.has(key)) return;
    this.#startBackoff(key, this.#backoffLeft(key));
  }

  /** The cluster changed in a way that may let parked pods fit: move them to active (after their backoff). */
  moveAllToActive(): void {
    if (this.#unschedulable.size === 0) return;
    const keys = [...this.#unschedulable.keys()];
    this.#unschedulable.clear();
    for (const key of keys) {
      const wait = this.#backoffLeft(key);
      if (wait > 0) this.#startBackoff(key, wait);
      else this.#activate(key);
    }
  }

  /** The pod was scheduled or is gone: forget its attempts. */
  forget(key: string): void {
    this.#attempts.delete(key);
  }

  /** The pod is gone (deleted, or bound by someone else). */
  delete(key: string): void {
    this.#attempts.delete(key);
    this.#unschedulable.delete(key);
    const t = this.#backoff.get(key);
    if (t !== undefined) {
      clearTimeout(t);
      this.#backoff.delete(key);
    }
    // An active entry is skipped when popped (the pod is checked then).
  }

  attempts(key: string): number {
    return this.#attempts.get(key)?.count ?? 0;
  }

  /** The next pod to try; undefined once closed. */
  pop(): Promise<string | undefined> {
    const key = this.#shift();
    if (key !== undefined) return Promise.resolve(key);
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /** Take the next active pod without waiting. */
  tryPop(): string | undefined {
    return this.#shift();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#flush);
    for (const t of this.#backoff.values()) clearTimeout(t);
    this.#backoff.clear();
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.(undefined);
  }

  #shift(): string | undefined {
    if (this.#head >= this.#active.length) return undefined;
    const key = this.#active[this.#head++]!;
    if (this.#head > 1024 && this.#head * 2 > this.#active.length) {
      this.#active.splice(0, this.#head);
      this.#head = 0;
    }
    this.#inActive.delete(key);
    return key;
  }

  #activate(key: string): void {
    if (this.#inActive.has(key)) return;
    const w = this.#waiter;
    if (w !== undefined) {
      this.#waiter = undefined;
      w(key);
      return;
    }
    this.#inActive.add(key);
    this.#active.push(key);
  }

  #recordFailure(key: string): void {
    const a = this.#attempts.get(key);
    this.#attempts.set(key, { count: (a?.count ?? 0) + 1, lastFailure: this.#now() });
  }

  /** Backoff delay for the pod's attempt count (initial × 2^(attempts-1), capped). */
  backoffDuration(key: string): number {
    const n = this.#attempts.get(key)?.count ?? 0;
    if (n === 0) return 0;
    return Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(n - 1, 30));
  }

  #backoffLeft(key: string): number {
    const a = this.#attempts.get(key);
    if (a === undefined) return 0;
    return Math.max(0, a.lastFailure + this.backoffDuration(key) - this.#now());
  }

  #startBackoff(key: string, ms: number): void {
    if (this.#backoff.has(key)) return;
    const t = setTimeout(() => {
      this.#backoff.delete(key);
      this.#activate(key);
    }, ms);
    this.#backoff.set(key, t);
  }

  #flushUnschedulable(): void {
    const now = this.#now();
    for (const [key, w] of this.#unschedulable) {
      if (now - w.since >= this.#maxUnschedulableMs) {
        this.#unschedulable.delete(key);
        this.#activate(key);
      }
    }
  }
}
