/**
 * The server's side of the stream tunnel (protocol in messages.ts): kubectl logs / exec / cp carried to a
 * node over its hub session. One Tunnel per live session multiplexes that node's streams; `podStreamer`
 * turns the hub's sessions into the API server's PodStreamer. Data from the node goes to the caller's
 * writables and is granted back only once written, so a slow kubectl holds at most one window per stream.
 */
import type { ExecIO, ExecOptions, LogOptions, PodStreamer, PodStreamTarget } from '../api/pod-streams.ts';
import { ApiError } from '../api/status-error.ts';
import { ReceiveWindow, SendCredit } from '../lib/credit.ts';
import type { Logger } from '../lib/log.ts';
import { encodeMessage, encodeStreamFrame } from '../protocol/codec.ts';
import {
  MAX_STREAMS_PER_SESSION,
  STREAM_CHUNK_BYTES,
  STREAM_WINDOW_BYTES,
  type StreamClose,
  type StreamErrorReason,
  type StreamFrame,
  type StreamPod,
  type StreamRequest,
  type StreamWindow,
} from '../protocol/messages.ts';

/** How a tunnel reaches its node: the session's WebSocket. */
export interface TunnelLink {
  readonly node: string;
  sendText(text: string): void;
  sendBinary(frame: Buffer): void;
}

/** A frame that breaks the protocol (an id never opened): the session ends with bad-frame. */
export class TunnelViolation extends Error {}

interface StreamIO {
  readonly stdin?: NodeJS.ReadableStream;
  readonly stdout?: NodeJS.WritableStream;
  readonly stderr?: NodeJS.WritableStream;
  readonly resize?: AsyncIterable<{ readonly width: number; readonly height: number }>;
}

/** How a stream ended: the agent's close, or a failure on this side. */
type Outcome = { readonly close: StreamClose } | { readonly error: ApiError } | { readonly cancelled: true };

interface OpenStream {
  readonly id: number;
  readonly credit: SendCredit;
  readonly window: ReceiveWindow;
  readonly io: StreamIO;
  readonly done: (outcome: Outcome) => void;
}

const REASON_CODES: Record<StreamErrorReason, [number, ApiError['reason']]> = {
  NotFound: [404, 'NotFound'],
  BadRequest: [400, 'BadRequest'],
  Unsupported: [400, 'BadRequest'],
  TooManyStreams: [429, 'TooManyRequests'],
  InternalError: [500, 'InternalError'],
};

export function notConnected(node: string): ApiError {
  return new ApiError(503, 'ServiceUnavailable', `node ${node} is not connected to the hub`);
}

export class Tunnel {
  readonly #link: TunnelLink;
  readonly #log: Logger;
  readonly #streams = new Map<number, OpenStream>();
  #nextId = 1;
  #closedReason: string | undefined;

  constructor(link: TunnelLink, log: Logger) {
    this.#link = link;
    this.#log = log;
  }

  get openStreams(): number {
    return this.#streams.size;
  }

  /** Opens a stream and carries it until the agent closes it, the signal aborts or the session ends. */
  run(pod: StreamPod, request: StreamRequest, io: StreamIO, signal: AbortSignal): Promise<Outcome> {
    if (this.#closedReason !== undefined) return Promise.resolve({ error: notConnected(this.#link.node) });
    if (this.#streams.size >= MAX_STREAMS_PER_SESSION) {
      return Promise.resolve({
        error: new ApiError(
          429,
          'TooManyRequests',
          `node ${this.#link.node} already serves ${MAX_STREAMS_PER_SESSION} streams; try again later`,
        ),
      });
    }
    const id = this.#nextId++;
    const { promise, resolve } = Promise.withResolvers<Outcome>();
    const stream: OpenStream = {
      id,
      credit: new SendCredit(STREAM_WINDOW_BYTES),
      window: new ReceiveWindow(STREAM_WINDOW_BYTES),
      io,
      done: (outcome) => {
        if (this.#streams.get(id) !== stream) return;
        this.#streams.delete(id);
        stream.credit.close();
        signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      },
    };
    const onAbort = (): void => this.#cancel(stream, { cancelled: true });
    if (signal.aborted) return Promise.resolve({ cancelled: true });
    signal.addEventListener('abort', onAbort, { once: true });
    this.#streams.set(id, stream);
    this.#link.sendText(encodeMessage({ type: 'stream-open', id, pod, request }));
    if (io.stdin !== undefined) void this.#pumpStdin(stream, io.stdin);
    if (io.resize !== undefined) void this.#pumpResize(stream, io.resize);
    return promise;
  }

  /** stream-window or stream-close from the agent. */
  onMessage(msg: StreamWindow | StreamClose): void {
    const stream = this.#lookup(msg.id);
    if (stream === undefined) return;
    if (msg.type === 'stream-window') stream.credit.grant(msg.bytes);
    else stream.done({ close: msg });
  }

  /** A binary data frame from the agent. */
  onFrame(frame: StreamFrame): void {
    const stream = this.#lookup(frame.id);
    if (stream === undefined) return;
    const n = frame.payload.byteLength;
    const sink = frame.channel === 1 ? stream.io.stdout : frame.channel === 2 ? stream.io.stderr : undefined;
    const node = this.#link.node;
    if (!stream.window.receive(n)) {
      this.#log.warn({ stream: frame.id }, 'node sent more than its stream window');
      this.#cancel(stream, {
        error: new ApiError(
          502,
          'InternalError',
          `node ${node} sent more than the window of stream ${frame.id}`,
        ),
      });
      return;
    }
    if (sink === undefined) {
      this.#cancel(stream, {
        error: new ApiError(
          502,
          'InternalError',
          `node ${node} sent on channel ${frame.channel}, which was not asked for`,
        ),
      });
      return;
    }
    sink.write(frame.payload, (err) => {
      if (err !== undefined && err !== null) return;
      const grant = stream.window.consumed(n);
      if (grant > 0 && this.#streams.get(stream.id) === stream) {
        this.#link.sendText(encodeMessage({ type: 'stream-window', id: stream.id, bytes: grant }));
      }
    });
  }

  /** The session ended: every stream fails with `reason`. */
  close(reason: string): void {
    this.#closedReason = reason;
    for (const s of [...this.#streams.values()]) {
      s.done({ error: new ApiError(503, 'ServiceUnavailable', `node ${this.#link.node} ${reason}`) });
    }
  }

  #lookup(id: number): OpenStream | undefined {
    if (id >= this.#nextId) throw new TunnelViolation(`Stream ${id} was never opened`);
    return this.#streams.get(id);
  }

  #cancel(stream: OpenStream, outcome: Outcome): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#link.sendText(encodeMessage({ type: 'stream-cancel', id: stream.id }));
    stream.done(outcome);
  }

  async #pumpStdin(stream: OpenStream, stdin: NodeJS.ReadableStream): Promise<void> {
    const live = (): boolean => this.#streams.get(stream.id) === stream;
    try {
      for await (const chunk of stdin as AsyncIterable<Buffer | string>) {
        let buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        while (buf.byteLength > 0) {
          const n = await stream.credit.take(Math.min(buf.byteLength, STREAM_CHUNK_BYTES));
          if (n === 0 || !live()) return;
          this.#link.sendBinary(
            encodeStreamFrame({ kind: 'data', id: stream.id, channel: 0, payload: buf.subarray(0, n) }),
          );
          buf = buf.subarray(n);
        }
      }
      if (live()) {
        this.#link.sendBinary(
          encodeStreamFrame({ kind: 'eof', id: stream.id, channel: 0, payload: Buffer.alloc(0) }),
        );
      }
    } catch (err) {
      this.#log.debug({ err, stream: stream.id }, 'stdin of a stream failed');
    }
  }

  async #pumpResize(
    stream: OpenStream,
    sizes: AsyncIterable<{ readonly width: number; readonly height: number }>,
  ): Promise<void> {
    try {
      for await (const { width, height } of sizes) {
        if (this.#streams.get(stream.id) !== stream) return;
        const w = Math.max(0, Math.min(65535, Math.trunc(width)));
        const h = Math.max(0, Math.min(65535, Math.trunc(height)));
        this.#link.sendText(encodeMessage({ type: 'stream-resize', id: stream.id, width: w, height: h }));
      }
    } catch (err) {
      this.#log.debug({ err, stream: stream.id }, 'resize events of a stream failed');
    }
  }
}

function failure(node: string, close: StreamClose): ApiError | undefined {
  if (close.error === undefined) return undefined;
  const [code, reason] = REASON_CODES[close.error.reason];
  return new ApiError(code, reason, close.error.message || `node ${node} failed the stream`);
}

/** The API server's PodStreamer over the hub: finds the pod's node session and carries the stream. */
export function podStreamer(tunnelOf: (node: string) => Tunnel | undefined): PodStreamer {
  const tunnel = (node: string): Tunnel => {
    const t = tunnelOf(node);
    if (t === undefined) throw notConnected(node);
    return t;
  };
  const pod = (t: PodStreamTarget): StreamPod => ({ namespace: t.namespace, name: t.name, uid: t.uid });
  return {
    async logs(target, options: LogOptions, out, signal) {
      const request: StreamRequest = {
        kind: 'logs',
        container: options.container,
        follow: options.follow,
        previous: options.previous,
        timestamps: options.timestamps,
        ...(options.tailLines === undefined ? {} : { tailLines: options.tailLines }),
        ...(options.since === undefined ? {} : { sinceTime: options.since.toISOString() }),
        ...(options.limitBytes === undefined ? {} : { limitBytes: options.limitBytes }),
      };
      const outcome = await tunnel(target.node).run(pod(target), request, { stdout: out }, signal);
      if ('error' in outcome) throw outcome.error;
      if ('close' in outcome) {
        const err = failure(target.node, outcome.close);
        if (err !== undefined) throw err;
      }
    },
    async exec(target, options: ExecOptions, io: ExecIO, signal) {
      const request: StreamRequest = {
        kind: 'exec',
        container: options.container,
        command: options.command,
        stdin: options.stdin,
        stdout: options.stdout,
        stderr: options.stderr,
        tty: options.tty,
      };
      const outcome = await tunnel(target.node).run(pod(target), request, io, signal);
      if ('error' in outcome) throw outcome.error;
      if ('cancelled' in outcome) return { exitCode: -1 };
      const err = failure(target.node, outcome.close);
      if (err !== undefined) throw err;
      if (outcome.close.exitCode === undefined) {
        throw new ApiError(500, 'InternalError', `node ${target.node} ended the exec without an exit code`);
      }
      return { exitCode: outcome.close.exitCode };
    },
  };
}
