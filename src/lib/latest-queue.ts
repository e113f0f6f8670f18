/**
 * A small async queue of events where only recent ones matter (terminal sizes): it keeps at most `limit`,
 * dropping the oldest, and ends when told. Consumed with `for await`.
 */
export class LatestQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  readonly #limit: number;
  #wake: (() => void) | undefined;
  #ended = false;

  constructor(limit = 16) {
    this.#limit = limit;
  }

  push(item: T): void {
    if (this.#ended) return;
    if (this.#items.length >= this.#limit) this.#items.shift();
    this.#items.push(item);
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.#items.length > 0) {
        yield this.#items.shift() as T;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((ok) => {
        this.#wake = ok;
      });
      this.#wake = undefined;
    }
  }
}
