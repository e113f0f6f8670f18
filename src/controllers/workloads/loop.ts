import { runWorkers, WorkQueue } from '../../client/informer.ts';
import type { Logger } from '../../lib/log.ts';

/** A work queue and its workers: waits for the informers, then syncs keys until stopped. */
export class ControllerLoop {
  readonly queue = new WorkQueue<string>({ baseDelayMs: 20, maxDelayMs: 30_000 });
  readonly #log: Logger;
  readonly #sync: (key: string) => Promise<void>;
  readonly #stopped = Promise.withResolvers<void>();
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

  async stop(): Promise<void> {
    this.queue.shutDown();
    this.#stopped.resolve();
    await this.#done;
  }
}
