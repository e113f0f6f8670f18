/**
 * The agent's side of the stream tunnel (protocol in messages.ts): serves the hub's stream-open for logs and
 * exec with the runtime's StreamingRuntime, for pods this node holds in its local store (same uid, bound to
 * this node): the hub is trusted with nothing it could not see anyway. Output goes out in data frames within
 * the credit the hub granted (a fast `cat` waits for kubectl); stdin is granted back only once the process
 * took it.
 */
import { PassThrough, Writable } from 'node:stream';
import { isPlainObject } from '../api/meta.ts';
import { ReceiveWindow, SendCredit } from '../lib/credit.ts';
import { isKedgeError } from '../lib/errors.ts';
import { LatestQueue } from '../lib/latest-queue.ts';
import type { Logger } from '../lib/log.ts';
import { encodeMessage, encodeStreamFrame } from '../protocol/codec.ts';
import {
  type HubMessage,
  MAX_STREAMS_PER_SESSION,
  STREAM_CHUNK_BYTES,
  STREAM_WINDOW_BYTES,
  type StreamClose,
  type StreamErrorReason,
  StreamErrorReasons,
  type StreamFrame,
  type StreamOpen,
  syncKey,
} from '../protocol/messages.ts';
import type { LocalStore } from './local-store.ts';
import { isStreamingRuntime, type PodRuntime } from './runtime.ts';

/** How streams reach the hub: the session's open WebSocket. */
export interface StreamLink {
  sendText(text: string): void;
  sendBinary(frame: Buffer): void;
}

/** A frame or message that breaks the protocol: the session reconnects. */
export class StreamViolation extends Error {}

type StreamControl = Extract<
  HubMessage,
  { type: 'stream-open' | 'stream-window' | 'stream-resize' | 'stream-cancel' }
>;

interface Running {
  readonly id: number;
  readonly abort: AbortController;
  readonly credit: SendCredit;
  readonly window: ReceiveWindow;
  stdin: PassThrough | undefined;
  readonly resize: LatestQueue<{ width: number; height: number }>;
  readonly writers: Writable[];
}

export interface AgentStreamsOptions {
  readonly nodeName: string;
  readonly store: LocalStore;
  readonly runtime: PodRuntime;
  readonly logger: Logger;
}

export class AgentStreams {
  readonly #o: AgentStreamsOptions;
  readonly #log: Logger;
  readonly #streams = new Map<number, Running>();
  #link: StreamLink | undefined;
  #highestId = 0;

  constructor(options: AgentStreamsOptions) {
    this.#o = options;
    this.#log = options.logger;
  }

  get openStreams(): number {
    return this.#streams.size;
  }

  /** A session went live: stream ids start again from 1. */
  attach(link: StreamLink): void {
    this.detach();
    this.#link = link;
    this.#highestId = 0;
  }

  /** The session ended: every stream stops (nothing can reach kubectl any more). */
  detach(): void {
    this.#link = undefined;
    for (const s of this.#streams.values()) this.#stop(s);
    this.#streams.clear();
  }

  onMessage(msg: StreamControl): void {
    if (msg.type === 'stream-open') {
      this.#open(msg);
      return;
    }
    if (msg.id > this.#highestId) throw new StreamViolation(`Stream ${msg.id} was never opened`);
    const s = this.#streams.get(msg.id);
    if (s === undefined) return;
    switch (msg.type) {
      case 'stream-window':
        s.credit.grant(msg.bytes);
        return;
      case 'stream-resize':
        s.resize.push({ width: msg.width, height: msg.height });
        return;
      case 'stream-cancel':
        this.#stop(s);
        return;
    }
  }

  onFrame(frame: StreamFrame): void {
    if (frame.id > this.#highestId) throw new StreamViolation(`Stream ${frame.id} was never opened`);
    const s = this.#streams.get(frame.id);
    if (s === undefined) return;
    if (s.stdin === undefined) {
      this.#fail(s, 'BadRequest', `Stream ${frame.id} has no stdin`);
      return;
    }
    if (frame.kind === 'eof') {
      s.stdin.end();
      return;
    }
    const n = frame.payload.byteLength;
    if (!s.window.receive(n)) {
      this.#fail(s, 'BadRequest', `The hub sent more than the window of stream ${frame.id}`);
      return;
    }
    s.stdin.write(frame.payload, () => {
      const grant = s.window.consumed(n);
      if (grant > 0 && this.#streams.get(s.id) === s)
        this.#sendText({ type: 'stream-window', id: s.id, bytes: grant });
    });
  }

  #sendText(m: StreamClose | { type: 'stream-window'; id: number; bytes: number }): void {
    this.#link?.sendText(encodeMessage(m));
  }

  #stop(s: Running): void {
    s.abort.abort();
    s.credit.close();
    s.resize.end();
    s.stdin?.destroy();
  }

  #fail(s: Running, reason: StreamErrorReason, message: string): void {
    if (this.#streams.get(s.id) !== s) return;
    this.#streams.delete(s.id);
    this.#stop(s);
    this.#sendText({ type: 'stream-close', id: s.id, error: { reason, message } });
  }

  #open(msg: StreamOpen): void {
    if (msg.id <= this.#highestId) {
      throw new StreamViolation(`Stream id ${msg.id} is not above the last one opened (${this.#highestId})`);
    }
    this.#highestId = msg.id;
    const refuse = (reason: StreamErrorReason, message: string): void =>
      this.#sendText({ type: 'stream-close', id: msg.id, error: { reason, message } });
    if (this.#streams.size >= MAX_STREAMS_PER_SESSION) {
      refuse('TooManyStreams', `node ${this.#o.nodeName} already serves ${MAX_STREAMS_PER_SESSION} streams`);
      return;
    }
    const { namespace, name, uid } = msg.pod;
    const held = this.#o.store.get(syncKey('', 'pods', namespace, name))?.object;
    const spec = isPlainObject(held?.['spec']) ? held['spec'] : {};
    if (held === undefined || held.metadata.uid !== uid || spec['nodeName'] !== this.#o.nodeName) {
      refuse('NotFound', `pod ${namespace}/${name} (uid ${uid}) is not on node ${this.#o.nodeName}`);
      return;
    }
    const containers = [spec['containers'], spec['initContainers']]
      .flatMap((list) => (Array.isArray(list) ? list : []))
      .filter(isPlainObject)
      .map((c) => c['name']);
    if (!containers.includes(msg.request.container)) {
      refuse('NotFound', `container ${msg.request.container} is not in pod ${namespace}/${name}`);
      return;
    }
    const runtime = this.#o.runtime;
    if (!isStreamingRuntime(runtime)) {
      const what =
        runtime.name === 'fake'
          ? 'the fake runtime runs no containers'
          : `the ${runtime.name} runtime serves no logs or exec`;
      refuse('Unsupported', `${what}: no logs or exec for pod ${namespace}/${name}`);
      return;
    }
    const request = msg.request;
    const s: Running = {
      id: msg.id,
      abort: new AbortController(),
      credit: new SendCredit(STREAM_WINDOW_BYTES),
      window: new ReceiveWindow(STREAM_WINDOW_BYTES),
      stdin:
        request.kind === 'exec' && request.stdin
          ? new PassThrough({ highWaterMark: STREAM_CHUNK_BYTES })
          : undefined,
      resize: new LatestQueue(),
      writers: [],
    };
    this.#streams.set(s.id, s);
    const ref = { namespace, name, uid };
    const stdout = this.#writer(s, 1);
    const run: Promise<StreamClose> =
      request.kind === 'logs'
        ? runtime
            .logs(
              ref,
              {
                container: request.container,
                follow: request.follow,
                previous: request.previous,
                timestamps: request.timestamps,
                ...(request.tailLines === undefined ? {} : { tailLines: request.tailLines }),
                ...(request.sinceTime === undefined ? {} : { since: new Date(request.sinceTime) }),
                ...(request.limitBytes === undefined ? {} : { limitBytes: request.limitBytes }),
              },
              stdout,
              s.abort.signal,
            )
            .then(() => ({ type: 'stream-close', id: s.id }))
        : runtime
            .exec(
              ref,
              {
                container: request.container,
                command: request.command,
                stdin: request.stdin,
                stdout: request.stdout,
                stderr: request.stderr,
                tty: request.tty,
              },
              {
                ...(s.stdin === undefined ? {} : { stdin: s.stdin }),
                ...(request.stdout ? { stdout } : {}),
                ...(request.stderr && !request.tty ? { stderr: this.#writer(s, 2) } : {}),
                ...(request.tty ? { resize: s.resize } : {}),
              },
              s.abort.signal,
            )
            .then(({ exitCode }) => ({ type: 'stream-close', id: s.id, exitCode }));
    void run
      .catch((err: unknown): StreamClose => {
        const reason = isKedgeError(err, 'KEDGE_AGENT_STREAM') ? err.context['reason'] : undefined;
        const known = (StreamErrorReasons as readonly unknown[]).includes(reason)
          ? (reason as StreamErrorReason)
          : undefined;
        if (known === undefined && !s.abort.signal.aborted)
          this.#log.warn({ err, stream: s.id, pod: `${namespace}/${name}` }, 'stream failed');
        const message = err instanceof Error ? err.message : String(err);
        return {
          type: 'stream-close',
          id: s.id,
          error: { reason: known ?? 'InternalError', message: message.slice(0, 4000) },
        };
      })
      .then(async (close) => {
        // Everything the runtime wrote goes out before the close.
        await Promise.all(s.writers.map(finished));
        if (this.#streams.get(s.id) !== s) return;
        this.#streams.delete(s.id);
        this.#stop(s);
        this.#sendText(close);
      });
  }

  /** A writable that sends data frames on one channel, each within the credit the hub granted. */
  #writer(s: Running, channel: 1 | 2): Writable {
    const live = (): boolean => this.#streams.get(s.id) === s && this.#link !== undefined;
    const send = async (chunk: Buffer): Promise<void> => {
      let buf = chunk;
      while (buf.byteLength > 0) {
        const n = await s.credit.take(Math.min(buf.byteLength, STREAM_CHUNK_BYTES));
        if (n === 0 || !live()) return;
        this.#link?.sendBinary(
          encodeStreamFrame({ kind: 'data', id: s.id, channel, payload: buf.subarray(0, n) }),
        );
        buf = buf.subarray(n);
      }
    };
    const w = new Writable({
      highWaterMark: STREAM_CHUNK_BYTES,
      write(chunk: Buffer | string, _enc, cb) {
        send(typeof chunk === 'string' ? Buffer.from(chunk) : chunk).then(() => cb(), cb);
      },
    });
    s.writers.push(w);
    return w;
  }
}

/** Ends a writable (when its writer did not) and waits until what it holds went out. */
function finished(w: Writable): Promise<void> {
  if (w.writableFinished || w.destroyed) return Promise.resolve();
  return new Promise((ok) => {
    w.once('finish', ok);
    w.once('close', ok);
    w.once('error', () => ok());
    if (!w.writableEnded) w.end();
  });
}
