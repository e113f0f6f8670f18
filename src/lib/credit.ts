/**
 * Credit-based flow control for byte streams (the hub's stream tunnel). The sender holds a SendCredit: it
 * takes credit before each chunk and waits when none is left. The receiver holds a ReceiveWindow: it checks
 * that the peer stays within what it was granted, and grants more only once bytes were handed on.
 */

export class SendCredit {
  #available: number;
  #waiters: Array<() => void> = [];
  #closed = false;

  constructor(initial: number) {
    this.#available = initial;
  }

  get available(): number {
    return this.#available;
  }

  grant(bytes: number): void {
    this.#available += bytes;
    this.#wake();
  }

  /** Waits for credit and takes up to `want` bytes of it; 0 once closed. */
  async take(want: number): Promise<number> {
    while (!this.#closed && this.#available <= 0) {
      await new Promise<void>((ok) => this.#waiters.push(ok));
    }
    if (this.#closed) return 0;
    const n = Math.min(want, this.#available);
    this.#available -= n;
    return n;
  }

  /** Ends every wait (take answers 0 from now on). */
  close(): void {
    this.#closed = true;
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}

export class ReceiveWindow {
  readonly #size: number;
  /** Bytes the peer may still send. */
  #outstanding: number;
  /** Bytes handed on but not yet granted back. */
  #consumed = 0;

  constructor(size: number) {
    this.#size = size;
    this.#outstanding = size;
  }

  /** Accounts for received bytes; false when the peer sent more than it was granted. */
  receive(bytes: number): boolean {
    if (bytes > this.#outstanding) return false;
    this.#outstanding -= bytes;
    return true;
  }

  /** Bytes were handed on; returns how many to grant now (0: wait for more, to keep grants few). */
  consumed(bytes: number): number {
    this.#consumed += bytes;
    if (this.#consumed < this.#size / 4 && this.#outstanding > 0) return 0;
    const grant = this.#consumed;
    this.#consumed = 0;
    this.#outstanding += grant;
    return grant;
  }
}
