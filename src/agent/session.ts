/**
 * The agent's side of the hub session: one WebSocket (mTLS, server verified against the cluster CA) that
 * says hello with the full inventory, applies each batch in one transaction and acks it, drains the
 * outbox in status batches, heartbeats, and reconnects with jittered exponential backoff for as long as
 * it takes. A frame that does not decode, or a batch that does not apply, ends the connection with
 * nothing applied; the next hello carries the inventory as it is, and the hub resends the difference.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { isKedgeError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { decodeHubMessage, decodeStreamFrame, encodeMessage, MAX_BATCH_ITEMS } from '../protocol/codec.ts';
import {
  AgentFeatures,
  type AgentMessage,
  type Batch,
  HUB_PATH,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  type StatusItem,
  type Welcome,
} from '../protocol/messages.ts';
import type { LocalStore } from './local-store.ts';
import type { AgentMetrics } from './metrics.ts';
import type { Outbox } from './outbox.ts';
import { type AgentStreams, StreamViolation } from './streams.ts';

/** PEM credentials for the hub connection; read again on every connect, so renewals take effect. */
export interface NodeTls {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export interface SessionOptions {
  /** The server, `https://HOST:PORT`. */
  readonly server: string;
  readonly nodeName: string;
  readonly store: LocalStore;
  readonly outbox: Outbox;
  readonly credentials: () => NodeTls;
  readonly logger: Logger;
  readonly metrics?: AgentMetrics;
  readonly agentVersion?: string;
  /** Reconnect delays: from initialMs doubling up to maxMs, each with jitter (defaults 500 and 30,000). */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number };
  /** How long to wait for the welcome after hello (default 15,000 ms). */
  readonly welcomeTimeoutMs?: number;
  /** Items per status batch (default 100) and status batches awaiting a status-ack at once (default 4). */
  readonly statusBatchItems?: number;
  readonly maxStatusBatchesInFlight?: number;
  /** Local (source) address for the hub connection, e.g. `127.0.0.5` (kedge sim spreads nodes over several). */
  readonly localAddress?: string;
  /** Serves kubectl logs / exec streams the hub opens; without it they are refused. */
  readonly streams?: AgentStreams;
}

export type SessionEvents = {
  connected: [Welcome];
  disconnected: [reason: string];
  batch: [Batch];
  'status-ack': [seq: number];
};

/** Delay before reconnect attempt `attempt` (0-based): exponential, capped, with "equal jitter". */
export function backoffDelay(attempt: number, initialMs = 500, maxMs = 30_000, random = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + random() * (ceiling / 2);
}

export function hubUrl(server: string): string {
  const url = new URL(server);
  if (url.protocol !== 'https:') throw new TypeError(`Server URL ${server} must start with https://`);
  url.protocol = 'wss:';
  url.pathname = HUB_PATH;
  return url.toString();
}

/** Why a connection ended, for logs and the backoff decision. */
interface Outcome {
  readonly welcomed: boolean;
  readonly reason: string;
}

export class Session extends EventEmitter<SessionEvents> {
  readonly #o: SessionOptions;
  readonly #log: Logger;
  readonly #url: string;
  #stopped = false;
  #running: Promise<void> | undefined;
  #ws: WebSocket | undefined;
  #wake: AbortController = new AbortController();
  #lastContact: number | undefined;
  #connected = false;

  constructor(options: SessionOptions) {
    super();
    this.#o = options;
    this.#log = options.logger;
    this.#url = hubUrl(options.server);
    if (options.metrics !== undefined) {
      options.metrics.sources.lastContact = () => this.#lastContact;
      options.metrics.sources.outOfOrder = () => options.store.outOfOrder();
    }
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Milliseconds since the epoch of the last frame or pong from the hub. */
  get lastContact(): number | undefined {
    return this.#lastContact;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake.abort();
    this.#ws?.close(1000, 'agent stopping');
    await this.#running;
  }

  /** Reconnect now (skipping the backoff wait), e.g. after a certificate renewal. */
  reconnectNow(): void {
    this.#wake.abort();
    this.#ws?.close(1000, 'reconnecting');
  }

  async #loop(): Promise<void> {
    let attempt = 0;
    while (!this.#stopped) {
      let outcome: Outcome;
      try {
        outcome = await this.#connectOnce();
      } catch (err) {
        outcome = { welcomed: false, reason: errorText(err) };
      }
      this.#connected = false;
      if (this.#stopped) break;
      this.emit('disconnected', outcome.reason);
      if (outcome.welcomed) attempt = 0;
      const delay = backoffDelay(attempt++, this.#o.backoff?.initialMs, this.#o.backoff?.maxMs);
      this.#o.metrics?.reconnects.inc();
      this.#log.info({ reason: outcome.reason, retryInMs: Math.round(delay) }, 'hub connection ended');
      this.#wake = new AbortController();
      await sleep(delay, undefined, { signal: this.#wake.signal }).catch(() => {});
    }
  }

  #connectOnce(): Promise<Outcome> {
    const tls = this.#o.credentials();
    const ws = new WebSocket(this.#url, {
      ca: tls.caPem,
      cert: tls.certPem,
      key: tls.keyPem,
      maxPayload: MAX_FRAME_BYTES,
      handshakeTimeout: this.#o.welcomeTimeoutMs ?? 15_000,
      perMessageDeflate: false,
      ...(this.#o.localAddress === undefined ? {} : { localAddress: this.#o.localAddress }),
    });
    this.#ws = ws;
    const { promise, resolve } = Promise.withResolvers<Outcome>();
    let welcome: Welcome | undefined;
    let lastBatchSeq = 0;
    let sentSeq = 0;
    /** Status batches sent and not yet acked, oldest first, with their items (a write-back applies what was sent). */
    const inFlight: { seq: number; items: StatusItem[] }[] = [];
    const timers: NodeJS.Timeout[] = [];
    let offEnqueue: (() => void) | undefined;
    let endReason: string | undefined;

    const end = (reason: string, code = 1000): void => {
      endReason ??= reason;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
        if (code === 1000) ws.close(code, reason.slice(0, 120));
        else ws.terminate();
      }
    };
    const send = (m: AgentMessage): void => {
      if (ws.readyState === WebSocket.OPEN) ws.send(encodeMessage(m));
    };
    const fail = (code: 'bad-frame' | 'too-large' | 'internal', message: string): void => {
      this.#log.warn({ code, message }, 'protocol error; reconnecting');
      try {
        send({ type: 'error', code, message: message.slice(0, 1000) });
      } catch {}
      end(message, 1000);
    };

    const pump = (): void => {
      const max = this.#o.maxStatusBatchesInFlight ?? 4;
      const limit = Math.min(this.#o.statusBatchItems ?? 100, MAX_BATCH_ITEMS);
      while (welcome !== undefined && ws.readyState === WebSocket.OPEN && inFlight.length < max) {
        let rows = this.#o.outbox.pending(sentSeq, limit);
        if (rows.length === 0) return;
        let text: string | undefined;
        while (text === undefined) {
          const last = rows.at(-1)!.seq;
          try {
            text = encodeMessage({ type: 'status', seq: last, items: rows.map((r) => r.item) });
          } catch (err) {
            if (!isKedgeError(err, 'KEDGE_PROTOCOL_INVALID')) throw err;
            if (rows.length > 1) {
              rows = rows.slice(0, Math.ceil(rows.length / 2));
              continue;
            }
            // One item larger than a frame can never be sent: drop it rather than block the outbox.
            this.#log.error(
              { seq: last, kind: rows[0]?.item.kind },
              'status item too large for a frame; dropped',
            );
            this.#o.outbox.ack(last);
            rows = this.#o.outbox.pending(sentSeq, limit);
            if (rows.length === 0) return;
          }
        }
        const seq = rows.at(-1)!.seq;
        ws.send(text);
        inFlight.push({ seq, items: rows.map((r) => r.item) });
        sentSeq = seq;
      }
    };

    const onBatch = (batch: Batch): void => {
      if (batch.seq !== lastBatchSeq + 1) {
        fail('bad-frame', `Batch seq ${batch.seq} does not follow ${lastBatchSeq}`);
        return;
      }
      const outOfOrder = this.#o.store.outOfOrder();
      try {
        this.#o.store.applyBatch(batch.revision, batch.items);
      } catch (err) {
        fail(isKedgeError(err, 'KEDGE_AGENT_SYNC_INVALID') ? 'bad-frame' : 'internal', errorText(err));
        return;
      }
      lastBatchSeq = batch.seq;
      if (this.#o.store.outOfOrder() > outOfOrder)
        this.#log.error(
          { seq: batch.seq, revision: batch.revision },
          'batch moved a key back to an older revision',
        );
      this.#o.metrics?.appliedBatches.inc();
      send({ type: 'ack', seq: batch.seq, revision: this.#o.store.revision() });
      this.emit('batch', batch);
    };

    ws.on('open', () => {
      this.#lastContact = Date.now();
      send({
        type: 'hello',
        v: PROTOCOL_VERSION,
        node: this.#o.nodeName,
        revision: this.#o.store.revision(),
        inventory: this.#o.store.inventory(),
        ...(this.#o.agentVersion === undefined ? {} : { agentVersion: this.#o.agentVersion }),
        features: [AgentFeatures.statusWriteBack],
      });
      timers.push(
        setTimeout(() => {
          if (welcome === undefined) end('no welcome from the hub in time', 1006);
        }, this.#o.welcomeTimeoutMs ?? 15_000),
      );
    });
    ws.on('pong', () => {
      this.#lastContact = Date.now();
    });
    const streams = this.#o.streams;
    ws.on('message', (data, isBinary) => {
      if (endReason !== undefined) return;
      this.#lastContact = Date.now();
      let m: ReturnType<typeof decodeHubMessage>;
      try {
        if (isBinary) {
          if (welcome === undefined) throw new TypeError('A stream frame before the welcome');
          const frame = decodeStreamFrame(data as Buffer, 'hub');
          if (streams === undefined) throw new TypeError(`Stream ${frame.id} was never opened`);
          streams.onFrame(frame);
          return;
        }
        m = decodeHubMessage(data as Buffer);
      } catch (err) {
        fail('bad-frame', errorText(err));
        return;
      }
      if (welcome === undefined && m.type !== 'welcome' && m.type !== 'error') {
        fail('bad-frame', `Expected welcome, got ${m.type}`);
        return;
      }
      switch (m.type) {
        case 'welcome': {
          if (welcome !== undefined) return fail('bad-frame', 'A second welcome');
          if (m.v !== PROTOCOL_VERSION) {
            this.#log.warn(
              { hubVersion: m.v, ours: PROTOCOL_VERSION },
              'hub speaks another protocol version',
            );
          }
          welcome = m;
          this.#connected = true;
          const everyMs = Math.max(1, m.heartbeatSeconds) * 1000;
          timers.push(
            setInterval(() => {
              // Silence for four intervals means the path is dead even if TCP has not noticed (a ping goes
              // out after 1.5 silent intervals, so its pong has over two intervals to come back from a
              // hub that is busy, say, with a reconnect storm).
              if (Date.now() - (this.#lastContact ?? 0) > 4 * everyMs) return end('hub went silent', 1006);
              send({ type: 'heartbeat' });
              // A ping only after 1.5 intervals without a frame from the hub: at idle that is a ping every
              // other interval (each pong costs the hub a TLS write).
              if (Date.now() - (this.#lastContact ?? 0) > 1.5 * everyMs) ws.ping();
            }, everyMs),
          );
          offEnqueue = this.#o.outbox.onEnqueue(pump);
          streams?.attach({
            sendText: (text) => {
              if (ws.readyState === WebSocket.OPEN) ws.send(text);
            },
            sendBinary: (frame) => {
              if (ws.readyState === WebSocket.OPEN) ws.send(frame, { binary: true });
            },
          });
          this.#log.info(
            { serverRevision: m.serverRevision, revision: this.#o.store.revision() },
            'connected to hub',
          );
          this.emit('connected', m);
          pump();
          return;
        }
        case 'batch':
          return onBatch(m);
        case 'stream-open':
        case 'stream-window':
        case 'stream-resize':
        case 'stream-cancel':
          if (streams === undefined) {
            if (m.type === 'stream-open') {
              const error = { reason: 'Unsupported', message: 'this agent serves no logs or exec' } as const;
              send({ type: 'stream-close', id: m.id, error });
            }
            return;
          }
          try {
            streams.onMessage(m);
          } catch (err) {
            if (!(err instanceof StreamViolation)) throw err;
            fail('bad-frame', err.message);
          }
          return;
        case 'status-ack': {
          const sent = inFlight.find((b) => b.seq === m.seq)?.items;
          this.#o.outbox.ack(m.seq, m.written, sent);
          while (inFlight.length > 0 && inFlight[0]!.seq <= m.seq) inFlight.shift();
          this.emit('status-ack', m.seq);
          pump();
          return;
        }
        case 'error':
          // 'forbidden' refuses one status item, already acknowledged and dropped by the hub; the session
          // goes on. Ignoring later frames here left a connection that heartbeats kept open but that
          // applied and acked no batch again, so the node never got new objects.
          if (m.code === 'forbidden') {
            this.#log.warn({ code: m.code, message: m.message }, 'hub refused a status item');
            return;
          }
          // Any other error ends the session: close it ourselves rather than wait for the hub to.
          this.#log.warn({ code: m.code, message: m.message }, 'hub reported an error');
          end(`hub error ${m.code}: ${m.message}`);
          return;
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      end(`hub answered the upgrade with HTTP ${res.statusCode}`, 1006);
      res.resume();
    });
    ws.on('error', (err) => {
      endReason ??= errorText(err);
    });
    ws.on('close', (code, reason) => {
      for (const t of timers) clearTimeout(t);
      if (welcome !== undefined) streams?.detach();
      offEnqueue?.();
      if (this.#ws === ws) this.#ws = undefined;
      resolve({
        welcomed: welcome !== undefined,
        reason: endReason ?? `closed with ${code}${reason.length > 0 ? ` ${reason.toString()}` : ''}`,
      });
    });
    return promise;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
