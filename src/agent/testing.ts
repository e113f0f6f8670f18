/**
 * Test helpers for the agent (imported only by tests): a tiny fake hub speaking the real protocol over a
 * real TLS WebSocket, and a throwaway PKI.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { createCA, issueCertificate } from '../lib/pki.ts';
import { decodeAgentMessage, encodeMessage } from '../protocol/codec.ts';
import { type AgentMessage, HUB_PATH, type HubMessage } from '../protocol/messages.ts';
import type { NodeTls } from './session.ts';

export interface TestPki {
  readonly ca: { certPem: string; keyPem: string };
  readonly server: { certPem: string; keyPem: string };
  node(name: string): Promise<NodeTls>;
}

export async function createTestPki(): Promise<TestPki> {
  const ca = await createCA({ commonName: 'test-ca' });
  const server = await issueCertificate(ca, {
    commonName: 'kedge-server',
    usage: 'server',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  return {
    ca,
    server: { certPem: server.certPem, keyPem: server.keyPem ?? '' },
    async node(name) {
      const c = await issueCertificate(ca, {
        commonName: `system:node:${name}`,
        organizations: ['system:nodes'],
        usage: 'client',
      });
      return { caPem: ca.certPem, certPem: c.certPem, keyPem: c.keyPem ?? '' };
    },
  };
}

/** A simple async queue: push values, await them in order. */
export class AsyncQueue<T> {
  readonly #items: T[] = [];
  readonly #waiters: Array<(v: T) => void> = [];
  push(value: T): void {
    const w = this.#waiters.shift();
    if (w !== undefined) w(value);
    else this.#items.push(value);
  }
  next(): Promise<T> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  get length(): number {
    return this.#items.length;
  }
}

/** One agent connection as the fake hub sees it. */
export class HubConnection {
  readonly ws: WebSocket;
  /** Common name of the verified client certificate. */
  readonly clientName: string;
  readonly messages = new AsyncQueue<AgentMessage>();
  readonly closed: Promise<void>;
  /** WebSocket pings received. */
  pings = 0;
  constructor(ws: WebSocket, clientName: string) {
    this.ws = ws;
    this.clientName = clientName;
    this.closed = once(ws, 'close').then(() => {});
    ws.on('ping', () => this.pings++);
    ws.on('message', (data) => this.messages.push(decodeAgentMessage(data as Buffer)));
  }
  send(m: HubMessage): void {
    this.ws.send(encodeMessage(m));
  }
  sendRaw(text: string): void {
    this.ws.send(text);
  }
  /** The next message that is not a heartbeat. */
  async next(): Promise<AgentMessage> {
    for (;;) {
      const m = await this.messages.next();
      if (m.type !== 'heartbeat') return m;
    }
  }
}

export interface FakeHub {
  readonly url: string;
  readonly port: number;
  readonly connections: AsyncQueue<HubConnection>;
  close(): Promise<void>;
}

/** A fake hub on loopback that verifies client certificates against the CA, like the real one. */
export async function startFakeHub(
  pki: TestPki,
  port = 0,
  options: { autoPong?: boolean } = {},
): Promise<FakeHub> {
  const https: Server = createServer({
    key: pki.server.keyPem,
    cert: pki.server.certPem,
    ca: pki.ca.certPem,
    requestCert: true,
    rejectUnauthorized: true,
  });
  const wss = new WebSocketServer({ server: https, path: HUB_PATH, autoPong: options.autoPong ?? true });
  const connections = new AsyncQueue<HubConnection>();
  wss.on('connection', (ws, req) => {
    const cert = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
    const cn = cert.subject?.CN;
    connections.push(new HubConnection(ws, Array.isArray(cn) ? String(cn[0]) : String(cn)));
  });
  https.listen(port, '127.0.0.1');
  await once(https, 'listening');
  const actual = (https.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${actual}`,
    port: actual,
    connections,
    async close() {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      https.closeAllConnections();
      await new Promise<void>((resolve) => https.close(() => resolve()));
    },
  };
}

export { WebSocket };
