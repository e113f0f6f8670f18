import { runWorkers, WorkQueue } from '../../client/informer.ts';
import type { Logger } from '../../lib/log.ts';

/** How long pod events for one owner are gathered before it syncs (see `addBatched`). */
export const BATCH_MS = 100;

/** A work queue and its workers: waits for the informers, then syncs keys until stopped. */
export class ControllerLoop {
  readonly queue = new WorkQueue<string>({ baseDelayMs: 20, maxDelayMs: 30_000 });
  readonly #log: Logger;
  readonly #sync: (key: string) => Promise<void>;
  readonly #stopped = Promise.withResolvers<void>();
  readonly #batched = new Map<string, NodeJS.Timeout>();
  #done: Promise<void> | undefined;

  constructor(logger: Logger, sync: (key: string) => Promise<void>) {
    this.#log = logger;
    this.#sync = sync;
  }

  start(workers: number, synced: Promise<unknown>): void {
    this.#done ??= (async () => {
      const ready = await Promise.race([synced.then(() => true), this.#stopped.promise.then(() => false)]);
      if (!ready) return;
      await runWorkers(this.queue, workers, this.#sync, (key, err) => {
        this.#log.info({ key, err }, 'sync failed; retrying with backoff');
      });
    })();
  }

  /**
   * Queue `key` once `ms` from the first of a burst of calls: the events of that burst share one sync
   * (like the Job controller's batch period), so a sync that walks every pod of an owner runs a few
   * times a second during a rollout instead of once per pod event.
   */
  addBatched(key: string, ms = BATCH_MS): void {
    if (this.#batched.has(key)) return;
    const t = setTimeout(() => {
      this.#batched.delete(key);
      this.queue.add(key);
    }, ms);
    t.unref?.();
    this.#batched.set(key, t);
  }

  async stop(): Promise<void> {
    for (const t of this.#batched.values()) clearTimeout(t);
    this.#batched.clear();
    this.queue.shutDown();
    this.#stopped.resolve();
    await this.#done;
  }
}
