import assert from 'node:assert/strict';
import { once } from 'node:events';
import { stat } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import WebSocket from 'ws';
import { LocalStore } from '../agent/local-store.ts';
import { Outbox } from '../agent/outbox.ts';
import { Session as AgentSession } from '../agent/session.ts';
import type { KubeObject } from '../api/meta.ts';
import { isApiError } from '../api/status-error.ts';
import { certificateAuthenticator } from '../apiserver/auth.ts';
import { LocalCluster } from '../apiserver/local-cluster.ts';
import { ApiServer } from '../apiserver/server.ts';
import { InformerFactory } from '../client/informer.ts';
import { Resources } from '../client/types.ts';
import { silentLogger } from '../lib/log.ts';
import { type CertKeyPair, caHash, certInfo, createCA, createCsr, issueCertificate } from '../lib/pki.ts';
import { parseJoinToken, TokenStore } from '../lib/tokens.ts';
import { decodeHubMessage, encodeMessage, encodeStreamFrame } from '../protocol/codec.ts';
import {
  type Batch,
  HUB_PATH,
  type HubMessage,
  JOIN_CA_PATH,
  JOIN_CSR_PATH,
  MAX_FRAME_BYTES,
  RENEW_CSR_PATH,
  STREAM_CHUNK_BYTES,
  type SyncKey,
} from '../protocol/messages.ts';
import { openSqliteStore } from '../store/sqlite.ts';
import type { Store } from '../store/types.ts';
import { createHub, type Hub } from './hub.ts';
import { joinHandlers } from './join.ts';
import { nodeAuthorizer } from './node-authorizer.ts';
import { NodeRegistry } from './node-registry.ts';

interface Creds {
  certPem: string;
  keyPem: string;
}

/** A hand-written protocol client: a queue of decoded hub messages and the close event. */
class Client {
  readonly ws: WebSocket;
  readonly #queue: HubMessage[] = [];
  readonly #waiters: Array<(m: HubMessage | undefined) => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;
  isClosed = false;

  constructor(url: string, ca: string, creds: Creds) {
    this.ws = new WebSocket(url, { ca, cert: creds.certPem, key: creds.keyPem });
    this.opened = new Promise((ok, fail) => {
      this.ws.once('open', () => ok());
      this.ws.once('unexpected-response', (_req, res) => fail(new Error(`HTTP ${res.statusCode}`)));
      this.ws.once('error', fail);
    });
    this.ws.on('message', (data) => {
      const m = decodeHubMessage(data as Buffer);
      const w = this.#waiters.shift();
      if (w !== undefined) w(m);
      else this.#queue.push(m);
    });
    this.closed = new Promise((ok) =>
      this.ws.once('close', (code, reason) => {
        this.isClosed = true;
        for (const w of this.#waiters.splice(0)) w(undefined);
        ok({ code, reason: reason.toString() });
      }),
    );
  }

  next(): Promise<HubMessage | undefined> {
    const m = this.#queue.shift();
    if (m !== undefined) return Promise.resolve(m);
    if (this.isClosed) return Promise.resolve(undefined);
    return new Promise((ok) => this.#waiters.push(ok));
  }

  async expect<T extends HubMessage['type']>(type: T): Promise<Extract<HubMessage, { type: T }>> {
    const m = await this.next();
    assert.equal(m?.type, type, `expected ${type}, got ${JSON.stringify(m)}`);
    return m as Extract<HubMessage, { type: T }>;
  }

  send(m: unknown): void {
    this.ws.send(typeof m === 'string' ? m : JSON.stringify(m));
  }

  close(): Promise<unknown> {
    this.ws.close();
    return this.closed;
  }
}

/** The agent's view: key → revision (and the object), kept from batches. */
type Model = Map<SyncKey, { revision: number; object: Record<string, unknown> }>;

describe('hub', () => {
  let dir: string;
  let store: Store;
  let api: ApiServer;
  let cluster: LocalCluster;
  let informers: InformerFactory;
  let ca: CertKeyPair;
  let tokens: TokenStore;
  let registry: NodeRegistry;
  let hub: Hub;
  /** Another hub that takes the WebSocket upgrades while set (a test with other options). */
  let upgradeTo: Hub | undefined;
  let metrics: Registry;
  let https: Server;
  let base: string;
  let token: string;
  const creds = new Map<string, Creds>();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kedge-hub-'));
    store = openSqliteStore({ path: join(dir, 'state.db') });
    cluster = undefined as unknown as LocalCluster;
    informers = undefined as unknown as InformerFactory;
    api = new ApiServer({
      store,
      logger: silentLogger(),
      authenticate: certificateAuthenticator,
      authorizers: [
        nodeAuthorizer({ informers: { informer: (ref) => informers.informer(ref) } as InformerFactory }),
      ],
    });
    await api.start();
    cluster = new LocalCluster(api.storage);
    informers = new InformerFactory(cluster, silentLogger());
    ca = await createCA({ commonName: 'kedge-test-ca' });
    const server = await issueCertificate(ca, {
      commonName: 'kedge',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    });
    tokens = new TokenStore({ path: ':memory:', caHash: caHash(ca.certPem) });
    token = tokens.create().token;
    registry = new NodeRegistry({ path: ':memory:' });
    metrics = new Registry();
    hub = createHub({ cluster, informers, logger: silentLogger(), metrics, registry, maxUnackedBatches: 2 });
    const joinHandler = joinHandlers({ ca, tokens, registry, cluster, logger: silentLogger() });
    https = createServer(
      {
        key: server.keyPem,
        cert: server.certPem,
        ca: ca.certPem,
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => {
        if (!joinHandler(req, res)) api.handle(req, res);
      },
    );
    https.on('upgrade', (req, socket, head) => {
      if (!(upgradeTo ?? hub).handleUpgrade(req, socket, head)) socket.destroy();
    });
    await new Promise<void>((ok) => https.listen(0, '127.0.0.1', ok));
    base = `https://127.0.0.1:${(https.address() as AddressInfo).port}`;
    informers.start();
    await informers.waitForSync();
    for (const name of ['node-a', 'node-b']) creds.set(name, await joinNode(name));
  });

  after(async () => {
    await hub.close();
    await new Promise((ok) => https.close(ok));
    await informers.stop();
    await api.close();
    await store.close();
    registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  function call(
    method: string,
    path: string,
    options: { body?: unknown; token?: string; creds?: Creds } = {},
  ): Promise<{ status: number; text: string }> {
    return new Promise((ok, fail) => {
      const req = httpsRequest(
        `${base}${path}`,
        {
          method,
          ca: ca.certPem,
          ...(options.creds === undefined ? {} : { cert: options.creds.certPem, key: options.creds.keyPem }),
          headers: {
            'Content-Type': 'application/json',
            ...(options.token === undefined ? {} : { Authorization: `Bearer ${options.token}` }),
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => ok({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', fail);
      req.end(options.body === undefined ? undefined : JSON.stringify(options.body));
    });
  }

  async function joinNode(nodeName: string): Promise<Creds> {
    const csr = await createCsr({ commonName: `system:node:${nodeName}`, organizations: ['system:nodes'] });
    const res = await call('POST', JOIN_CSR_PATH, { token, body: { nodeName, csrPem: csr.csrPem } });
    assert.equal(res.status, 200, res.text);
    const { certPem } = JSON.parse(res.text) as { certPem: string };
    return { certPem, keyPem: csr.keyPem };
  }

  function connect(node: string, c: Creds = creds.get(node)!): Client {
    return new Client(`wss://127.0.0.1:${(https.address() as AddressInfo).port}${HUB_PATH}`, ca.certPem, c);
  }

  /** Opens a session with this inventory; resolves after welcome. */
  async function session(
    node: string,
    inventory: Array<[SyncKey, number]> = [],
    features: string[] = [],
  ): Promise<Client> {
    const c = connect(node);
    await c.opened;
    c.send({ type: 'hello', v: 1, node, revision: 0, inventory, features });
    await c.expect('welcome');
    return c;
  }

  /** Applies batches (acking each) until `done(model, lastBatch)`; returns every batch seen. */
  async function syncUntil(c: Client, model: Model, done: (m: Model) => boolean): Promise<Batch[]> {
    const seen: Batch[] = [];
    while (!done(model)) {
      const b = await c.expect('batch');
      seen.push(b);
      for (const it of b.items) {
        if ('deleted' in it) model.delete(it.key);
        else model.set(it.key, { revision: it.revision, object: it.object });
      }
      c.send({ type: 'ack', seq: b.seq, revision: b.revision });
    }
    return seen;
  }

  const pod = (name: string, node: string, spec: Record<string, unknown> = {}): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'busybox' }], ...spec },
  });
  const cm = (name: string, data: Record<string, string> = { a: '1' }): KubeObject => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: 'default' },
    data,
  });
  const secret = (name: string): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: 'default' },
    stringData: { password: name },
  });
  const rv = (o: KubeObject): number => Number(o.metadata.resourceVersion);
  /** Resolves once the hub's informers hold `o` (or something newer). */
  async function seen(o: KubeObject): Promise<void> {
    const plural = `${o.kind?.toLowerCase()}s`;
    const key = `core/${plural}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    while (Number(hub.graph.get(key)?.metadata.resourceVersion ?? -1) < rv(o)) {
      await new Promise((ok) => setTimeout(ok, 2));
    }
  }

  describe('join', () => {
    it('serves the CA; the hash pinned in the token matches it', async () => {
      const res = await call('GET', JOIN_CA_PATH);
      assert.equal(res.status, 200);
      assert.equal(res.text, ca.certPem);
      assert.equal(parseJoinToken(token).caHash, caHash(res.text));
      const other = await createCA({ commonName: 'impostor' });
      assert.notEqual(parseJoinToken(token).caHash, caHash(other.certPem));
    });

    it('issued a node certificate and created the Node object', async () => {
      const info = certInfo(creds.get('node-a')!.certPem);
      assert.equal(info.commonName, 'system:node:node-a');
      assert.deepEqual(info.organizations, ['system:nodes']);
      const days = (info.notAfter.getTime() - Date.now()) / 86_400_000;
      assert.ok(days > 360 && days < 370, `validity ${days} days`);
      const node = await cluster.get(Resources.nodes, undefined, 'node-a');
      assert.equal(node.metadata.labels?.['kubernetes.io/hostname'], 'node-a');
    });

    it('refuses a missing or wrong token, a bad name and a CSR for another identity', async () => {
      const csr = await createCsr({ commonName: 'system:node:node-x', organizations: ['system:nodes'] });
      const body = { nodeName: 'node-x', csrPem: csr.csrPem };
      assert.equal((await call('POST', JOIN_CSR_PATH, { body })).status, 401);
      const wrong = `${token.slice(0, -4)}zzzz`;
      assert.equal((await call('POST', JOIN_CSR_PATH, { body, token: wrong })).status, 401);
      const bad = await call('POST', JOIN_CSR_PATH, { token, body: { ...body, nodeName: 'Node_X' } });
      assert.equal(bad.status, 400);
      assert.match(bad.text, /Node_X/);
      const other = await call('POST', JOIN_CSR_PATH, { token, body: { ...body, nodeName: 'node-y' } });
      assert.equal(other.status, 400);
      assert.match(other.text, /common name/);
      await assert.rejects(cluster.get(Resources.nodes, undefined, 'node-x'), /not found/);
    });

    it('refuses a truncated or tampered CSR with 400 and says why, creating no node', async () => {
      const csr = await createCsr({ commonName: 'system:node:node-t', organizations: ['system:nodes'] });
      const der = Buffer.from(csr.csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
      const pem = (bytes: Buffer): string =>
        `-----BEGIN CERTIFICATE REQUEST-----\n${bytes.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
      const truncated = await call('POST', JOIN_CSR_PATH, {
        token,
        body: { nodeName: 'node-t', csrPem: pem(der.subarray(0, der.length - 10)) },
      });
      assert.equal(truncated.status, 400);
      assert.match(truncated.text, /CSR cannot be parsed: DER truncated/);
      const tampered = Buffer.from(der);
      tampered[der.length - 40] = (tampered[der.length - 40] ?? 0) ^ 0x01;
      const forged = await call('POST', JOIN_CSR_PATH, {
        token,
        body: { nodeName: 'node-t', csrPem: pem(tampered) },
      });
      assert.equal(forged.status, 400);
      assert.match(forged.text, /CSR signature does not match/);
      await assert.rejects(cluster.get(Resources.nodes, undefined, 'node-t'), /not found/);
    });

    it('refuses a node name already joined with another key (409)', async () => {
      const csr = await createCsr({ commonName: 'system:node:node-a', organizations: ['system:nodes'] });
      const res = await call('POST', JOIN_CSR_PATH, {
        token,
        body: { nodeName: 'node-a', csrPem: csr.csrPem },
      });
      assert.equal(res.status, 409);
      assert.match(
        (JSON.parse(res.text) as { message: string }).message,
        /"node-a" already belongs to another key/,
      );
    });

    it('renews with the current certificate, a new key replaces the old one', async () => {
      const old = await joinNode('node-r');
      const csr = await createCsr({ commonName: 'system:node:node-r', organizations: ['system:nodes'] });
      const body = { nodeName: 'node-r', csrPem: csr.csrPem };
      assert.equal((await call('POST', RENEW_CSR_PATH, { body })).status, 401);
      const forOther = await call('POST', RENEW_CSR_PATH, {
        body: { ...body, nodeName: 'node-a' },
        creds: old,
      });
      assert.equal(forOther.status, 403);
      const res = await call('POST', RENEW_CSR_PATH, { body, creds: old });
      assert.equal(res.status, 200, res.text);
      const renewed = { certPem: (JSON.parse(res.text) as { certPem: string }).certPem, keyPem: csr.keyPem };
      // The old key no longer owns the name: neither renewal nor the hub take it.
      assert.equal((await call('POST', RENEW_CSR_PATH, { body, creds: old })).status, 403);
      await assert.rejects(connect('node-r', old).opened, /HTTP 403/);
      const c = connect('node-r', renewed);
      await c.opened;
      await c.close();
    });
  });

  describe('session', () => {
    it('refuses clients without a node certificate', async () => {
      const admin = await issueCertificate(ca, {
        commonName: 'admin',
        organizations: ['system:masters'],
        usage: 'client',
      });
      await assert.rejects(
        connect('x', { certPem: admin.certPem, keyPem: admin.keyPem! }).opened,
        /HTTP 401/,
      );
    });

    it('syncs a pod with what it references, and only that', async () => {
      await cluster.create(Resources.configmaps, 'default', cm('cm1'));
      await cluster.create(Resources.secrets, 'default', secret('s1'));
      await cluster.create(Resources.secrets, 'default', secret('s-b'));
      await cluster.create(Resources.configmaps, 'default', cm('unrelated'));
      await cluster.create(
        Resources.pods,
        'default',
        pod('p-b', 'node-b', { volumes: [{ name: 'v', secret: { secretName: 's-b' } }] }),
      );
      const p1 = await cluster.create(
        Resources.pods,
        'default',
        pod('p1', 'node-a', {
          volumes: [{ name: 'v', secret: { secretName: 's1' } }],
          containers: [{ name: 'c', image: 'busybox', envFrom: [{ configMapRef: { name: 'cm1' } }] }],
        }),
      );
      await seen(p1);
      const c = await session('node-a');
      const model: Model = new Map();
      const want = [
        'core/nodes//node-a',
        'core/pods/default/p1',
        'core/configmaps/default/cm1',
        'core/secrets/default/s1',
      ];
      await syncUntil(c, model, (m) => want.every((k) => m.has(k)));
      assert.deepEqual([...model.keys()].sort(), [...want].sort());
      assert.equal(model.get('core/pods/default/p1')?.revision, rv(p1));
      assert.equal(hub.queueDepth('node-a'), 0);

      // A ConfigMap change flows.
      const cur = await cluster.get(Resources.configmaps, 'default', 'cm1');
      const upd = await cluster.update(Resources.configmaps, { ...cur, data: { a: '2' } });
      await syncUntil(c, model, (m) => m.get('core/configmaps/default/cm1')?.revision === rv(upd));
      assert.deepEqual(model.get('core/configmaps/default/cm1')?.object['data'], { a: '2' });

      // The pod goes: it and what only it referenced are deleted on the node.
      await cluster.delete(Resources.pods, 'default', 'p1', { gracePeriodSeconds: 0 });
      await syncUntil(c, model, (m) => m.size === 1);
      assert.deepEqual([...model.keys()], ['core/nodes//node-a']);
      await c.close();
    });

    it('on reconnect sends only the difference to the inventory, deletes included', async () => {
      await cluster.create(Resources.configmaps, 'default', cm('cm2'));
      const p2 = await cluster.create(
        Resources.pods,
        'default',
        pod('p2', 'node-a', { volumes: [{ name: 'v', configMap: { name: 'cm2' } }] }),
      );
      await seen(p2);
      let c = await session('node-a');
      const model: Model = new Map();
      await syncUntil(c, model, (m) => m.has('core/configmaps/default/cm2') && m.has('core/pods/default/p2'));
      await c.close();
      // Offline: cm2 changes, an unrelated object appears; the agent also holds a stale key.
      const cur = await cluster.get(Resources.configmaps, 'default', 'cm2');
      const upd = await cluster.update(Resources.configmaps, { ...cur, data: { a: 'offline' } });
      await cluster.create(Resources.configmaps, 'default', cm('cm3'));
      await seen(upd);
      const inventory: Array<[SyncKey, number]> = [...model].map(([k, v]) => [k, v.revision]);
      inventory.push(['core/configmaps/default/gone', 3]);
      c = await session('node-a', inventory);
      const b = await c.expect('batch');
      assert.deepEqual(
        b.items.map((i) => [i.key, 'deleted' in i ? 'deleted' : i.revision]).sort(),
        [
          ['core/configmaps/default/cm2', rv(upd)],
          ['core/configmaps/default/gone', 'deleted'],
        ].sort(),
      );
      c.send({ type: 'ack', seq: b.seq, revision: b.revision });
      await cluster.delete(Resources.pods, 'default', 'p2', { gracePeriodSeconds: 0 });
      await c.close();
    });

    it('keeps at most maxUnackedBatches in flight and coalesces the queue', async () => {
      const c = await session('node-a', [
        ['core/nodes//node-a', rv(await cluster.get(Resources.nodes, undefined, 'node-a'))],
      ]);
      // Two batches out, unacknowledged; then more changes arrive.
      const p3 = await cluster.create(Resources.pods, 'default', pod('p3', 'node-a'));
      const b1 = await c.expect('batch');
      await cluster.create(Resources.pods, 'default', pod('p4', 'node-a'));
      const b2 = await c.expect('batch');
      let last: KubeObject = p3;
      for (let i = 0; i < 5; i++) {
        const cur = await cluster.get(Resources.pods, 'default', 'p3');
        last = await cluster.update(Resources.pods, {
          ...cur,
          metadata: { ...cur.metadata, labels: { i: String(i) } },
        });
      }
      await seen(last);
      await new Promise((ok) => setImmediate(ok));
      assert.equal(hub.queueDepth('node-a'), 1, 'five updates of one pod are one queue entry');
      c.send({ type: 'ack', seq: b2.seq, revision: b2.revision });
      const b3 = await c.expect('batch');
      assert.equal(b3.seq, b1.seq + 2);
      assert.deepEqual(
        b3.items.map((i) => [i.key, i.revision]),
        [['core/pods/default/p3', rv(last)]],
      );
      await cluster.delete(Resources.pods, 'default', 'p3', { gracePeriodSeconds: 0 });
      await cluster.delete(Resources.pods, 'default', 'p4', { gracePeriodSeconds: 0 });
      await c.close();
    });

    it('a new session of a node replaces the old one', async () => {
      const first = await session('node-b');
      const second = await session('node-b');
      let m = await first.next();
      while (m?.type === 'batch') m = await first.next();
      assert.equal(m?.type === 'error' && m.code, 'replaced');
      await first.closed;
      await second.close();
    });

    it('writes status upstream only for what the node owns, then acknowledges', async () => {
      const pa = await cluster.create(Resources.pods, 'default', pod('st-a', 'node-a'));
      const pb = await cluster.create(Resources.pods, 'default', pod('st-b', 'node-b'));
      await seen(pb);
      // Status right behind hello, before the welcome arrives, is accepted.
      const c = connect('node-a');
      await c.opened;
      c.send({ type: 'hello', v: 1, node: 'node-a', revision: 0, inventory: [] });
      c.send({
        type: 'status',
        seq: 10,
        items: [
          {
            kind: 'PodStatus',
            namespace: 'default',
            name: 'st-a',
            uid: pa.metadata.uid,
            status: { phase: 'Running' },
          },
          {
            kind: 'PodStatus',
            namespace: 'default',
            name: 'st-b',
            uid: pb.metadata.uid,
            status: { phase: 'Failed' },
          },
          {
            kind: 'NodeStatus',
            name: 'node-b',
            status: { conditions: [{ type: 'Ready', status: 'False' }] },
          },
          { kind: 'NodeStatus', name: 'node-a', status: { conditions: [{ type: 'Ready', status: 'True' }] } },
          {
            kind: 'Event',
            namespace: 'default',
            event: {
              involvedObject: { kind: 'Pod', namespace: 'default', name: 'st-b' },
              reason: 'Spoof',
              message: 'x',
            },
          },
          {
            kind: 'Event',
            namespace: 'default',
            event: {
              metadata: { name: 'st-a.started' },
              involvedObject: { kind: 'Pod', namespace: 'default', name: 'st-a', uid: pa.metadata.uid },
              reason: 'Started',
              message: 'Started container c',
              type: 'Normal',
            },
          },
        ],
      });
      let ack: HubMessage | undefined;
      const refusals: string[] = [];
      while (ack === undefined || refusals.length < 3) {
        const m = await c.next();
        if (m?.type === 'status-ack') ack = m;
        else if (m?.type === 'error') {
          assert.equal(m.code, 'forbidden');
          assert.equal(ack?.type, 'status-ack', 'refusals come after the ack');
          refusals.push(m.message);
        } else if (m?.type !== 'batch' && m?.type !== 'welcome')
          assert.fail(`unexpected ${JSON.stringify(m)}`);
      }
      assert.deepEqual(ack, { type: 'status-ack', seq: 10 });
      assert.equal(refusals.length, 3);
      assert.match(refusals.join('\n'), /st-b/);
      assert.match(refusals.join('\n'), /node node-b/);
      const a = await cluster.get(Resources.pods, 'default', 'st-a');
      assert.deepEqual(a['status'], { phase: 'Running' });
      const b = await cluster.get(Resources.pods, 'default', 'st-b');
      assert.equal(
        b.metadata.resourceVersion,
        pb.metadata.resourceVersion,
        "another node's pod is untouched",
      );
      const nb = await cluster.get(Resources.nodes, undefined, 'node-b');
      assert.equal(
        nb['status'] === undefined || JSON.stringify(nb['status']).includes('False') === false,
        true,
      );
      const na = await cluster.get(Resources.nodes, undefined, 'node-a');
      assert.match(JSON.stringify(na['status']), /"Ready","status":"True"/);
      const events = await cluster.list(Resources.events, { namespace: 'default' });
      assert.deepEqual(
        events.items.map((e) => e['reason']),
        ['Started'],
      );
      assert.equal((events.items[0]?.['source'] as { host?: string } | undefined)?.host, 'node-a');

      // A resend after a lost ack: acknowledged again, nothing written.
      const before = await cluster.get(Resources.pods, 'default', 'st-a');
      c.send({
        type: 'status',
        seq: 10,
        items: [
          {
            kind: 'PodStatus',
            namespace: 'default',
            name: 'st-a',
            uid: pa.metadata.uid,
            status: { phase: 'Succeeded' },
          },
        ],
      });
      let again = await c.next();
      while (again?.type === 'batch') again = await c.next();
      assert.deepEqual(again, { type: 'status-ack', seq: 10 });
      const afterResend = await cluster.get(Resources.pods, 'default', 'st-a');
      assert.equal(afterResend.metadata.resourceVersion, before.metadata.resourceVersion);

      // PodDeleted for a terminating pod finishes its deletion.
      await cluster.delete(Resources.pods, 'default', 'st-a', { gracePeriodSeconds: 30 });
      c.send({
        type: 'status',
        seq: 11,
        items: [{ kind: 'PodDeleted', namespace: 'default', name: 'st-a', uid: pa.metadata.uid }],
      });
      let m = await c.next();
      while (m?.type === 'batch') m = await c.next();
      assert.deepEqual(m, { type: 'status-ack', seq: 11 });
      await assert.rejects(cluster.get(Resources.pods, 'default', 'st-a'), /not found/);
      await cluster.delete(Resources.pods, 'default', 'st-b', { gracePeriodSeconds: 0 });
      await c.close();
    });

    it("does not send a node's own status writes back down to an agent that applies them itself", async () => {
      for (const name of ['node-w', 'node-x']) creds.set(name, await joinNode(name));
      const runningStatus = { phase: 'Running', hostIP: '10.0.0.7' };
      for (const [node, features] of [
        ['node-w', ['status-write-back', 'some-future-feature']],
        ['node-x', []],
      ] as const) {
        const p0 = await cluster.create(Resources.pods, 'default', pod(`wb-${node}`, node));
        await seen(p0);
        const c = await session(node, [], [...features]);
        const model: Model = new Map();
        const podKey = `core/pods/default/wb-${node}`;
        const nodeKeyOf = `core/nodes//${node}`;
        await syncUntil(c, model, (m) => m.has(podKey) && m.has(nodeKeyOf));
        const nodeFrom = model.get(nodeKeyOf)!.revision;
        c.send({
          type: 'status',
          seq: 1,
          items: [
            {
              kind: 'PodStatus',
              namespace: 'default',
              name: `wb-${node}`,
              uid: p0.metadata.uid,
              status: runningStatus,
            },
            { kind: 'NodeStatus', name: node, status: { conditions: [{ type: 'Ready', status: 'True' }] } },
          ],
        });
        let m = await c.next();
        while (m?.type === 'batch') {
          // Whatever comes before the ack is older than the writes.
          if (node === 'node-w')
            for (const it of m.items) assert.ok(it.key !== podKey || it.revision === rv(p0));
          c.send({ type: 'ack', seq: m.seq, revision: m.revision });
          m = await c.next();
        }
        const written = await cluster.get(Resources.pods, 'default', `wb-${node}`);
        const nodeNow = await cluster.get(Resources.nodes, undefined, node);
        assert.deepEqual(written['status'], runningStatus);
        // A label change afterwards: the next batch carries it, the status write before it was not sent.
        await cluster.update(Resources.pods, {
          ...written,
          metadata: { ...written.metadata, labels: { after: 'write' } },
        });
        if (node === 'node-w') {
          assert.deepEqual(m, {
            type: 'status-ack',
            seq: 1,
            written: [
              [podKey, rv(p0), rv(written)],
              [nodeKeyOf, nodeFrom, rv(nodeNow)],
            ],
          });
          const next = await c.expect('batch');
          assert.deepEqual(
            next.items.map((it) => it.key),
            [podKey],
            'only the label change goes down',
          );
          assert.ok(next.items[0]!.revision > rv(written));
        } else {
          // An agent without the feature gets the plain ack and the objects in full, as before.
          assert.deepEqual(m, { type: 'status-ack', seq: 1 });
          const revisions = new Map<string, number>();
          while ((revisions.get(podKey) ?? 0) <= rv(written)) {
            const b = await c.expect('batch');
            for (const it of b.items) revisions.set(it.key, it.revision);
            c.send({ type: 'ack', seq: b.seq, revision: b.revision });
          }
        }
        await cluster.delete(Resources.pods, 'default', `wb-${node}`, { gracePeriodSeconds: 0 });
        await c.close();
      }
    });

    it('a real agent holds its own status at the API revision, and a reconnect resends nothing', {
      timeout: 30_000,
    }, async () => {
      creds.set('node-wr', await joinNode('node-wr'));
      const p0 = await cluster.create(Resources.pods, 'default', pod('wb-real', 'node-wr'));
      await seen(p0);
      const localStore = new LocalStore(join(dir, 'agent-write-back.db'));
      const outbox = new Outbox(localStore);
      const podKey = 'core/pods/default/wb-real';
      const options = {
        server: base,
        nodeName: 'node-wr',
        store: localStore,
        outbox,
        credentials: () => ({ caPem: ca.certPem, ...creds.get('node-wr')! }),
        logger: silentLogger(),
      };
      let agent = new AgentSession(options);
      const changes: string[] = [];
      localStore.onChange((cs) => {
        for (const c of cs) if (c.key === podKey) changes.push(`${c.type}@${c.revision}`);
      });
      try {
        agent.start();
        await once(agent, 'connected');
        while (localStore.get(podKey) === undefined) await once(agent, 'batch');
        const status = { phase: 'Running', podIP: '10.1.2.3' };
        outbox.enqueue({
          kind: 'PodStatus',
          namespace: 'default',
          name: 'wb-real',
          uid: p0.metadata.uid ?? '',
          status,
        });
        while (outbox.depth() > 0) await once(agent, 'status-ack');
        const api = await cluster.get(Resources.pods, 'default', 'wb-real');
        const local = localStore.get(podKey);
        assert.equal(local?.revision, rv(api));
        assert.deepEqual(local?.object, api, 'the local copy is the API object');
        assert.deepEqual(changes, [`put@${rv(p0)}`, `put@${rv(api)}`], 'listeners heard the write-back');

        // Offline and back: the inventory says the agent has the API's revision, so nothing is resent.
        await agent.stop();
        const batches: number[] = [];
        agent = new AgentSession(options);
        agent.on('batch', (b: Batch) => batches.push(b.items.length));
        agent.start();
        await once(agent, 'connected');
        const marked = await cluster.update(Resources.pods, {
          ...api,
          metadata: { ...api.metadata, labels: { marker: 'after-reconnect' } },
        });
        while (localStore.get(podKey)?.revision !== rv(marked)) await once(agent, 'batch');
        assert.deepEqual(batches, [1], 'only the label change came down');
      } finally {
        await agent.stop();
        localStore.close();
        await cluster.delete(Resources.pods, 'default', 'wb-real', { gracePeriodSeconds: 0 });
      }
    });

    it('a real agent keeps syncing after the hub refuses a status item of a pod now bound elsewhere', {
      timeout: 30_000,
    }, async () => {
      // The edge-faults flake: a pod of node-f is deleted and recreated with the same name on node-g while
      // node-f still reports on the old one; the hub acks and refuses that item ('forbidden') and keeps the
      // session. Later objects for node-f must still reach the agent's store over the same session.
      // Fresh nodes: the hub remembers the last status seq of each node, and this agent's outbox starts at 1.
      for (const name of ['node-f', 'node-g']) creds.set(name, await joinNode(name));
      const old = await cluster.create(Resources.pods, 'default', pod('moved', 'node-f'));
      await cluster.delete(Resources.pods, 'default', 'moved', { gracePeriodSeconds: 0 });
      const moved = await cluster.create(Resources.pods, 'default', pod('moved', 'node-g'));
      await seen(moved);
      const localStore = new LocalStore(join(dir, 'agent-forbidden.db'));
      const outbox = new Outbox(localStore);
      const agentLogs: Array<Record<string, unknown>> = [];
      const agentLogger = pino(
        { level: 'warn' },
        { write: (line: string) => agentLogs.push(JSON.parse(line)) },
      );
      const agent = new AgentSession({
        server: base,
        nodeName: 'node-f',
        store: localStore,
        outbox,
        credentials: () => ({ caPem: ca.certPem, ...creds.get('node-f')! }),
        logger: agentLogger,
      });
      const disconnects: string[] = [];
      agent.on('disconnected', (reason) => disconnects.push(reason));
      try {
        agent.start();
        await once(agent, 'connected');
        const seq = outbox.enqueue({
          kind: 'PodStatus',
          namespace: 'default',
          name: 'moved',
          uid: old.metadata.uid ?? '',
          status: { phase: 'Running' },
        });
        while (outbox.depth() > 0) await once(agent, 'status-ack');
        assert.ok(seq > 0);
        // Whatever the hub sent before is applied; what comes after the refusal must be too.
        await cluster.create(Resources.configmaps, 'default', cm('after-refusal'));
        const fresh = await cluster.create(
          Resources.pods,
          'default',
          pod('after-refusal', 'node-f', {
            containers: [
              { name: 'c', image: 'busybox', envFrom: [{ configMapRef: { name: 'after-refusal' } }] },
            ],
          }),
        );
        const want = ['core/pods/default/after-refusal', 'core/configmaps/default/after-refusal'];
        const has = (): boolean => {
          const inv = new Map(localStore.inventory());
          return inv.get('core/pods/default/after-refusal') === rv(fresh) && want.every((k) => inv.has(k));
        };
        while (!has()) await once(agent, 'batch');
        assert.ok(
          agentLogs.some((e) => e['code'] === 'forbidden'),
          'the hub refused the status item',
        );
        assert.deepEqual(disconnects, [], 'the refusal did not end the session');
        const bPod = await cluster.get(Resources.pods, 'default', 'moved');
        assert.equal(bPod.metadata.resourceVersion, moved.metadata.resourceVersion, "node-g's pod untouched");
      } finally {
        await agent.stop();
        localStore.close();
        await cluster.delete(Resources.pods, 'default', 'moved', { gracePeriodSeconds: 0 });
        await cluster.delete(Resources.pods, 'default', 'after-refusal', { gracePeriodSeconds: 0 });
      }
    });

    it('heartbeats renew the Lease on the node behalf', async () => {
      const c = await session('node-b');
      c.send({ type: 'heartbeat' });
      let lease: KubeObject | undefined;
      while (lease === undefined) {
        lease = await cluster.get(Resources.leases, 'kube-node-lease', 'node-b').catch(() => undefined);
        if (lease === undefined) await new Promise((ok) => setTimeout(ok, 10));
      }
      const spec = lease['spec'] as {
        holderIdentity: string;
        leaseDurationSeconds: number;
        renewTime: string;
      };
      assert.equal(spec.holderIdentity, 'node-b');
      assert.equal(spec.leaseDurationSeconds, 40);
      assert.match(spec.renewTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      const text = await metrics.metrics();
      assert.match(text, /kedge_edge_node_status\{node="node-b",state="connected"\} 1/);
      assert.match(text, /kedge_edge_bytes_received_total\{node="node-b"\} \d+/);
      assert.match(text, /kedge_certificate_expiry_days\{node="node-b"\} 36\d/);
      await c.close();
    });

    it('renews a Lease at most once per leaseRenewSeconds, however often the node heartbeats', async () => {
      const getLease = () =>
        cluster.get(Resources.leases, 'kube-node-lease', 'node-lease').catch(() => undefined);
      hub.heartbeat('node-lease');
      hub.heartbeat('node-lease');
      let lease = await getLease();
      while (lease === undefined) {
        await new Promise((ok) => setTimeout(ok, 20));
        lease = await getLease();
      }
      const first = lease.metadata.resourceVersion;
      hub.heartbeat('node-lease');
      // Past the batch window (500 ms): a renewal would have been written by now.
      await new Promise((ok) => setTimeout(ok, 800));
      assert.equal((await getLease())?.metadata.resourceVersion, first);
    });

    it('a heartbeat waiting in the socket of a busy hub keeps the session (and silence ends it)', async () => {
      const quick = createHub({ cluster, informers, logger: silentLogger(), registry, heartbeatSeconds: 1 });
      upgradeTo = quick;
      try {
        const c = connect('node-b');
        await c.opened;
        c.send({ type: 'hello', v: 1, node: 'node-b', revision: 0, inventory: [] });
        await c.expect('welcome');
        const welcomed = performance.now();
        // Just before the 3 s silence limit a heartbeat goes out, from an I/O callback (the poll phase of
        // the event loop) that then keeps the loop busy past the limit: the next turn runs the expired
        // liveness timer before it reads the heartbeat waiting in the hub's socket (same process).
        await new Promise((ok) => setTimeout(ok, 2700));
        await new Promise<void>((ok) =>
          stat('.', () => {
            c.send({ type: 'heartbeat' });
            while (performance.now() - welcomed < 3500) {
              // busy: nothing else runs
            }
            ok();
          }),
        );
        await new Promise((ok) => setTimeout(ok, 300));
        assert.equal(c.isClosed, false, 'the session survived its late-read heartbeat');
        // Then silence: the session ends about three intervals after the last message.
        const { code } = await c.closed;
        assert.equal(code, 1008);
        assert.ok(performance.now() - welcomed >= 5400, 'ended by silence, not earlier');
      } finally {
        upgradeTo = undefined;
        await quick.close();
      }
    });

    async function expectFailure(c: Client, code: string, pattern: RegExp): Promise<void> {
      let m = await c.next();
      while (m?.type === 'batch' || m?.type === 'welcome') m = await c.next();
      assert.equal(m?.type, 'error', `expected an error, got ${JSON.stringify(m)}`);
      assert.equal(m.type === 'error' && m.code, code);
      assert.match(m.type === 'error' ? m.message : '', pattern);
      await c.closed;
    }

    it('closes with a clear error on bad input', async () => {
      let c = connect('node-a');
      await c.opened;
      c.send('{"type": "hello", ');
      await expectFailure(c, 'bad-frame', /not valid JSON/);

      c = connect('node-a');
      await c.opened;
      c.send({ type: 'teleport' });
      await expectFailure(c, 'bad-frame', /"teleport" is not one an agent sends/);

      c = connect('node-a');
      await c.opened;
      c.send({ type: 'hello', v: 1, node: 'node-b', revision: 0, inventory: [] });
      await expectFailure(c, 'unauthorized', /certificate is for node node-a, not node-b/);

      c = connect('node-a');
      await c.opened;
      c.send({ type: 'hello', v: 99, node: 'node-a', revision: 0, inventory: [] });
      await expectFailure(c, 'version', /99/);

      c = await session('node-a');
      c.send({ type: 'ack', seq: 1000, revision: 0 });
      await expectFailure(c, 'bad-frame', /Ack for batch 1000, which was never sent/);

      c = await session('node-a');
      c.send({ type: 'hello', v: 1, node: 'node-a', revision: 0, inventory: [] });
      await expectFailure(c, 'bad-frame', /only one hello/);

      c = await session('node-a');
      c.send(encodeMessage({ type: 'heartbeat' }).replace('}', `,"pad":"${'x'.repeat(MAX_FRAME_BYTES)}"}`));
      const closed = await c.closed;
      assert.equal(closed.code, 1009, 'ws closes a too-large frame with 1009 (message too big)');
    });

    it('stream frames: corrupt, oversized or of a stream never opened end the session with an error', async () => {
      let c = await session('node-a');
      c.ws.send(Buffer.from([1, 0, 0]), { binary: true });
      await expectFailure(c, 'bad-frame', /needs 6 header bytes, got 3/);

      c = await session('node-a');
      c.ws.send(encodeStreamFrame({ kind: 'data', id: 7, channel: 1, payload: Buffer.from('x') }), {
        binary: true,
      });
      await expectFailure(c, 'bad-frame', /Stream 7 was never opened/);

      c = await session('node-a');
      c.send({ type: 'stream-close', id: 3, exitCode: 0 });
      await expectFailure(c, 'bad-frame', /Stream 3 was never opened/);

      c = await session('node-a');
      const big = Buffer.alloc(STREAM_CHUNK_BYTES + 7);
      big[0] = 1;
      big.writeUInt32BE(1, 1);
      big[5] = 1;
      c.ws.send(big, { binary: true });
      await expectFailure(c, 'too-large', /larger than the limit of 32768/);
    });

    it('carries a log stream over a live session, which goes on syncing', async () => {
      const c = await session('node-a');
      const chunks: Buffer[] = [];
      const out = new Writable({
        write(chunk: Buffer, _e, cb) {
          chunks.push(chunk);
          cb();
        },
      });
      const target = { node: 'node-a', namespace: 'default', name: 'p', uid: 'u1' };
      const options = { container: 'c', follow: false, previous: false, timestamps: true, tailLines: 5 };
      const logs = hub.streams.logs(target, options, out, new AbortController().signal);
      let m = await c.next();
      while (m?.type === 'batch') m = await c.next();
      assert.equal(m?.type, 'stream-open');
      if (m?.type !== 'stream-open') return;
      assert.deepEqual(m.pod, { namespace: 'default', name: 'p', uid: 'u1' });
      assert.deepEqual(m.request, { kind: 'logs', ...options });
      c.ws.send(encodeStreamFrame({ kind: 'data', id: m.id, channel: 1, payload: Buffer.from('line\n') }), {
        binary: true,
      });
      c.send({ type: 'stream-close', id: m.id });
      await logs;
      assert.equal(Buffer.concat(chunks).toString(), 'line\n');
      // An error from the node becomes the Status the API answers with.
      const failing = hub.streams.exec(
        target,
        { container: 'c', command: ['x'], stdin: false, stdout: true, stderr: false, tty: false },
        { stdout: out },
        new AbortController().signal,
      );
      m = await c.next();
      while (m?.type === 'batch') m = await c.next();
      assert.equal(m?.type, 'stream-open');
      c.send({
        type: 'stream-close',
        id: m?.type === 'stream-open' ? m.id : 0,
        error: { reason: 'NotFound', message: 'no such pod here' },
      });
      await assert.rejects(
        failing,
        (err: unknown) => isApiError(err, 404) && err.message === 'no such pod here',
      );
      c.send({ type: 'heartbeat' });
      await c.close();
      await assert.rejects(
        hub.streams.logs(target, options, out, new AbortController().signal),
        (err: unknown) =>
          isApiError(err, 503) &&
          /node node-a (is not connected to|disconnected from) the hub/.test(err.message),
      );
    });

    it('refuses an ack older than the last one (replayed acks)', async () => {
      const c = await session('node-a');
      const model: Model = new Map();
      await syncUntil(c, model, (m) => m.has('core/nodes//node-a'));
      await cluster.create(Resources.configmaps, 'default', cm('cm-ack'));
      const p = await cluster.create(
        Resources.pods,
        'default',
        pod('p-ack', 'node-a', { volumes: [{ name: 'v', configMap: { name: 'cm-ack' } }] }),
      );
      await syncUntil(c, model, (m) => m.get('core/pods/default/p-ack')?.revision === rv(p));
      c.send({ type: 'ack', seq: 1, revision: 0 });
      await expectFailure(c, 'bad-frame', /older than the last ack/);
      await cluster.delete(Resources.pods, 'default', 'p-ack', { gracePeriodSeconds: 0 });
    });
  });

  describe('node authorizer', () => {
    it("lets a node read its pods' secrets, not another node's", async () => {
      await cluster.create(Resources.secrets, 'default', secret('only-b'));
      await cluster.create(Resources.secrets, 'default', secret('only-a'));
      await cluster.create(
        Resources.pods,
        'default',
        pod('az-b', 'node-b', { imagePullSecrets: [{ name: 'only-b' }] }),
      );
      const pa = await cluster.create(
        Resources.pods,
        'default',
        pod('az-a', 'node-a', { imagePullSecrets: [{ name: 'only-a' }] }),
      );
      await seen(pa);
      const a = creds.get('node-a')!;
      assert.equal(
        (await call('GET', '/api/v1/namespaces/default/secrets/only-a', { creds: a })).status,
        200,
      );
      const denied = await call('GET', '/api/v1/namespaces/default/secrets/only-b', { creds: a });
      assert.equal(denied.status, 403);
      assert.equal((await call('GET', '/api/v1/namespaces/default/pods/az-a', { creds: a })).status, 200);
      assert.equal((await call('GET', '/api/v1/namespaces/default/pods/az-b', { creds: a })).status, 403);
      assert.equal((await call('GET', '/api/v1/nodes/node-a', { creds: a })).status, 200);
      assert.equal((await call('GET', '/api/v1/nodes/node-b', { creds: a })).status, 403);
      assert.equal((await call('GET', '/api/v1/namespaces/default/secrets', { creds: a })).status, 403);
      assert.equal((await call('DELETE', '/api/v1/namespaces/default/pods/az-a', { creds: a })).status, 403);

      // Nor through the hub: B's secret never enters A's relevant set.
      const c = await session('node-a');
      const model: Model = new Map();
      await syncUntil(c, model, (m) => m.has('core/secrets/default/only-a'));
      assert.equal(model.has('core/secrets/default/only-b'), false);
      assert.equal(model.has('core/pods/default/az-b'), false);
      await c.close();
    });
  });
});
