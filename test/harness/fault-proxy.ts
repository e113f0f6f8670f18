/**
 * A TCP proxy for fault tests (this kernel has no `tc netem`): listens on 127.0.0.1:0 and forwards every
 * connection to a target, bytes untouched (TLS passes through). Controls act on every connection, live
 * and future:
 *   cut()           destroy every connection now (RST both sides)
 *   blackhole()     accept, forward nothing either way, until lift(); data waits (as TCP would retransmit)
 *   stall(ms)       forward nothing for ms, then carry on
 *   setDelay(ms)    latency added to every chunk, each way
 *   setThrottle(b)  at most b bytes/s each way (shared by all connections, like one link); undefined: off
 * Counters: bytes forwarded each way, connections accepted and open.
 */
import { EventEmitter } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface FaultProxyOptions {
  readonly targetHost?: string;
  readonly targetPort: number;
  /** Bytes waiting in the proxy per direction of a connection before the source is paused (default 256 KiB). */
  readonly highWaterBytes?: number;
}

export interface FaultProxyCounters {
  /** Bytes forwarded client → target. */
  readonly up: number;
  /** Bytes forwarded target → client. */
  readonly down: number;
  readonly accepted: number;
  readonly open: number;
}

type Direction = 'up' | 'down';

/** A token bucket per direction, refilled continuously; `take` says how long to wait for `n` bytes. */
class Bucket {
  rate: number | undefined;
  #tokens = 0;
  #at = 0;
  set(rate: number | undefined): void {
    this.rate = rate;
    this.#tokens = 0;
    this.#at = performance.now();
  }
  /** Takes up to `want` bytes now; returns how many it may send (0: wait `retryMs`). */
  take(want: number): { bytes: number; retryMs: number } {
    if (this.rate === undefined) return { bytes: want, retryMs: 0 };
    const now = performance.now();
    // At most a quarter second of burst.
    this.#tokens = Math.min(this.rate / 4, this.#tokens + ((now - this.#at) / 1000) * this.rate);
    this.#at = now;
    // Send in slices of at least 1/100 s of the rate, so a slow link is not a stream of 1-byte writes.
    const need = Math.min(want, Math.max(1, Math.floor(this.rate / 100)));
    if (this.#tokens >= need) {
      const bytes = Math.min(want, Math.floor(this.#tokens));
      this.#tokens -= bytes;
      return { bytes, retryMs: 0 };
    }
    return { bytes: 0, retryMs: Math.max(1, ((need - this.#tokens) / this.rate) * 1000) };
  }
}

interface Chunk {
  data: Buffer;
  readyAt: number;
}

export class FaultProxy {
  readonly #server: Server;
  readonly #o: Required<FaultProxyOptions>;
  readonly #changed = new EventEmitter();
  readonly #conns = new Set<Connection>();
  readonly #buckets: Record<Direction, Bucket> = { up: new Bucket(), down: new Bucket() };
  #blackholed = false;
  #stallUntil = 0;
  #stallTimer: NodeJS.Timeout | undefined;
  #delayMs = 0;
  #bytes = { up: 0, down: 0 };
  #accepted = 0;
  port = 0;

  private constructor(options: FaultProxyOptions) {
    this.#o = { targetHost: '127.0.0.1', highWaterBytes: 256 * 1024, ...options };
    this.#changed.setMaxListeners(0);
    this.#server = createServer((socket) => this.#accept(socket));
  }

  /** Starts a proxy on 127.0.0.1 (a free port) in front of targetHost:targetPort. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    if (!Number.isInteger(options.targetPort) || options.targetPort <= 0 || options.targetPort > 65535)
      throw new TypeError(`Fault proxy targetPort ${options.targetPort} is not a TCP port`);
    const proxy = new FaultProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy.port = (proxy.#server.address() as { port: number }).port;
    return proxy;
  }

  /** `https://127.0.0.1:PORT`: the URL agents use to reach the target through the proxy. */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get counters(): FaultProxyCounters {
    return { ...this.#bytes, accepted: this.#accepted, open: this.#conns.size };
  }

  get blackholed(): boolean {
    return this.#blackholed;
  }

  /** Destroys every open connection (RST to both sides). New connections are accepted as usual. */
  cut(): void {
    for (const c of [...this.#conns]) c.destroy(true);
  }

  blackhole(): void {
    this.#blackholed = true;
    this.#wake();
  }

  /** Lifts a blackhole, a stall, the delay and the throttle. */
  lift(): void {
    this.#blackholed = false;
    this.#stallUntil = 0;
    clearTimeout(this.#stallTimer);
    this.#delayMs = 0;
    this.#buckets.up.set(undefined);
    this.#buckets.down.set(undefined);
    this.#wake();
  }

  stall(ms: number): void {
    this.#stallUntil = Math.max(this.#stallUntil, performance.now() + ms);
    clearTimeout(this.#stallTimer);
    this.#stallTimer = setTimeout(() => this.#wake(), Math.max(0, this.#stallUntil - performance.now()));
    this.#wake();
  }

  setDelay(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new TypeError(`Fault proxy delay ${ms} must be >= 0`);
    this.#delayMs = ms;
    this.#wake();
  }

  setThrottle(bytesPerSecond: number | undefined): void {
    if (bytesPerSecond !== undefined && (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0))
      throw new TypeError(`Fault proxy throttle ${bytesPerSecond} must be > 0 bytes/s`);
    this.#buckets.up.set(bytesPerSecond);
    this.#buckets.down.set(bytesPerSecond);
    this.#wake();
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const c of [...this.#conns]) c.destroy(false);
    clearTimeout(this.#stallTimer);
    await closed;
  }

  // ---- used by connections ----

  /** Milliseconds before anything may be forwarded (undefined: until a control changes). */
  holdMs(): number | undefined {
    if (this.#blackholed) return undefined;
    return Math.max(0, this.#stallUntil - performance.now());
  }

  get delayMs(): number {
    return this.#delayMs;
  }

  bucket(dir: Direction): Bucket {
    return this.#buckets[dir];
  }

  count(dir: Direction, bytes: number): void {
    this.#bytes[dir] += bytes;
  }

  forget(c: Connection): void {
    this.#conns.delete(c);
    this.#wake(); // ends the waits of its pumps
  }

  /** Resolves when a control changes or after `ms` (undefined: only on change). */
  waitChange(ms: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#changed.off('change', done);
        resolve();
      };
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      this.#changed.on('change', done);
    });
  }

  #wake(): void {
    this.#changed.emit('change');
  }

  #accept(client: Socket): void {
    this.#accepted++;
    const c = new Connection(this, client, this.#o);
    this.#conns.add(c);
  }
}

class Connection {
  readonly #proxy: FaultProxy;
  readonly #client: Socket;
  #target: Socket | undefined;
  #closed = false;
  readonly #queues: Record<Direction, Chunk[]> = { up: [], down: [] };
  readonly #queued: Record<Direction, number> = { up: 0, down: 0 };
  readonly #pumping: Record<Direction, boolean> = { up: false, down: false };
  /** The source of the direction closed: end the sink once its queue is forwarded. */
  readonly #ended: Record<Direction, boolean> = { up: false, down: false };
  readonly #o: Required<FaultProxyOptions>;

  constructor(proxy: FaultProxy, client: Socket, o: Required<FaultProxyOptions>) {
    this.#proxy = proxy;
    this.#client = client;
    this.#o = o;
    client.setNoDelay(true);
    client.on('data', (d: Buffer) => this.#push('up', d));
    client.on('error', () => this.destroy(true));
    client.on('close', () => this.#sourceClosed('up'));
    void this.#connect();
  }

  /** Connects to the target once forwarding is allowed (a blackholed SYN does not get through). */
  async #connect(): Promise<void> {
    while (!this.#closed && this.#proxy.holdMs() !== 0) await this.#proxy.waitChange(this.#proxy.holdMs());
    if (this.#closed) return;
    const target = createConnection({ host: this.#o.targetHost, port: this.#o.targetPort });
    this.#target = target;
    target.setNoDelay(true);
    target.on('data', (d: Buffer) => this.#push('down', d));
    target.on('error', () => this.destroy(true));
    target.on('close', () => this.#sourceClosed('down'));
    target.on('connect', () => void this.#pump('up'));
  }

  #push(dir: Direction, data: Buffer): void {
    this.#queues[dir].push({ data, readyAt: performance.now() + this.#proxy.delayMs });
    this.#queued[dir] += data.length;
    if (this.#queued[dir] > this.#o.highWaterBytes) this.#source(dir)?.pause();
    void this.#pump(dir);
  }

  #source(dir: Direction): Socket | undefined {
    return dir === 'up' ? this.#client : this.#target;
  }

  #sink(dir: Direction): Socket | undefined {
    return dir === 'up' ? this.#target : this.#client;
  }

  /** One pump per direction: forwards queued chunks in order, honouring every control. */
  async #pump(dir: Direction): Promise<void> {
    if (this.#pumping[dir]) return;
    this.#pumping[dir] = true;
    try {
      const queue = this.#queues[dir];
      while (!this.#closed && queue.length > 0) {
        const sink = this.#sink(dir);
        if (sink === undefined || sink.connecting) return; // 'connect' restarts the pump
        const hold = this.#proxy.holdMs();
        if (hold !== 0) {
          await this.#proxy.waitChange(hold);
          continue;
        }
        const chunk = queue[0]!;
        const wait = chunk.readyAt - performance.now();
        if (wait > 0 && this.#proxy.delayMs > 0) {
          await this.#proxy.waitChange(wait);
          continue;
        }
        const { bytes, retryMs } = this.#proxy.bucket(dir).take(chunk.data.length);
        if (bytes === 0) {
          await this.#proxy.waitChange(retryMs);
          continue;
        }
        const part = chunk.data.subarray(0, bytes);
        if (bytes === chunk.data.length) queue.shift();
        else chunk.data = chunk.data.subarray(bytes);
        this.#queued[dir] -= bytes;
        this.#proxy.count(dir, bytes);
        const flushed = sink.write(part);
        if (this.#queued[dir] <= this.#o.highWaterBytes) this.#source(dir)?.resume();
        if (!flushed) await new Promise((resolve) => sink.once('drain', resolve).once('close', resolve));
      }
      if (!this.#closed && queue.length === 0 && this.#ended[dir]) this.#sink(dir)?.end();
    } finally {
      this.#pumping[dir] = false;
    }
  }

  /** The source of `dir` closed: pass the end on once what it sent is forwarded. */
  #sourceClosed(dir: Direction): void {
    if (this.#closed) return;
    this.#ended[dir] = true;
    if (dir === 'up' && this.#target === undefined) {
      this.destroy(false);
      return;
    }
    if (this.#queues[dir].length === 0) this.#sink(dir)?.end();
    else void this.#pump(dir);
    if (this.#ended.up && this.#ended.down) this.destroy(false);
  }

  destroy(reset: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of [this.#client, this.#target]) {
      if (s === undefined || s.destroyed) continue;
      if (reset && !s.connecting) s.resetAndDestroy();
      else s.destroy();
    }
    this.#proxy.forget(this);
  }
}
