import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../lib/log.ts';
import type { AgentMessage, SyncItem } from '../protocol/messages.ts';
import { LocalStore } from './local-store.ts';
import { createAgentMetrics } from './metrics.ts';
import { Outbox } from './outbox.ts';
import { backoffDelay, type NodeTls, Session } from './session.ts';
import { createTestPki, type FakeHub, type HubConnection, startFakeHub, type TestPki } from './testing.ts';

let dir: string;
let pki: TestPki;
let tls: NodeTls;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-agent-session-'));
  pki = await createTestPki();
  tls = await pki.node('n1');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
interface Rig {
  store: LocalStore;
  outbox: Outbox;
  session: Session;
  hub: FakeHub;
  [Symbol.asyncDispose](): Promise<void>;
}

async function rig(options: { hub?: FakeHub; store?: LocalStore; creds?: NodeTls } = {}): Promise<Rig> {
  const hub = options.hub ?? (await startFakeHub(pki));
  const store = options.store ?? new LocalStore(join(dir, `s${++n}.db`));
  const outbox = new Outbox(store);
  const session = new Session({
    server: hub.url,
    nodeName: 'n1',
    store,
    outbox,
    credentials: () => options.creds ?? tls,
    logger: silentLogger(),
    backoff: { initialMs: 10, maxMs: 50 },
    metrics: createAgentMetrics(),
  });
  session.start();
  return {
    store,
    outbox,
    session,
    hub,
    async [Symbol.asyncDispose]() {
      await session.stop();
      store.close();
      await hub.close();
    },
  };
}

const pod = (name: string, rev: number): SyncItem => ({
  key: `core/pods/default/${name}`,
  revision: rev,
  object: { metadata: { name, namespace: 'default' } },
});

async function expectType<T extends AgentMessage['type']>(
  conn: HubConnection,
  type: T,
): Promise<Extract<AgentMessage, { type: T }>> {
  const m = await conn.next();
  assert.equal(m.type, type, `expected ${type}, got ${JSON.stringify(m)}`);
  return m as Extract<AgentMessage, { type: T }>;
}

async function welcome(conn: HubConnection, heartbeatSeconds = 30): Promise<void> {
  conn.send({ type: 'welcome', v: 1, serverRevision: 100, heartbeatSeconds });
}

describe('Session', () => {
  it('says hello with its inventory, applies batches and acks them cumulatively', async () => {
    await using r = await rig();
    const conn = await r.hub.connections.next();
    assert.equal(conn.clientName, 'system:node:n1');
    const hello = await expectType(conn, 'hello');
    assert.deepEqual([hello.node, hello.revision, hello.inventory], ['n1', 0, []]);
    await welcome(conn);
    conn.send({ type: 'batch', seq: 1, revision: 5, items: [pod('a', 4), pod('b', 5)] });
    conn.send({
      type: 'batch',
      seq: 2,
      revision: 7,
      items: [{ key: 'core/pods/default/a', revision: 7, deleted: true }],
    });
    assert.deepEqual(await expectType(conn, 'ack'), { type: 'ack', seq: 1, revision: 5 });
    assert.deepEqual(await expectType(conn, 'ack'), { type: 'ack', seq: 2, revision: 7 });
    assert.deepEqual(r.store.inventory(), [['core/pods/default/b', 5]]);

    // The next session starts from what is stored.
    conn.ws.close();
    const conn2 = await r.hub.connections.next();
    const hello2 = await expectType(conn2, 'hello');
    assert.deepEqual([hello2.revision, hello2.inventory], [7, [['core/pods/default/b', 5]]]);
  });

  it('a silent hub: pings only after 1.5 quiet intervals, gives up after four, and reconnects', async () => {
    // A hub that never answers pings and sends nothing after the welcome: a dead path TCP has not noticed.
    await using r = await rig({ hub: await startFakeHub(pki, 0, { autoPong: false }) });
    const conn = await r.hub.connections.next();
    await expectType(conn, 'hello');
    const welcomed = performance.now();
    await welcome(conn, 1);
    let heartbeats = 0;
    void (async () => {
      for (;;) {
        const m = await conn.messages.next();
        if (m.type === 'heartbeat') heartbeats++;
      }
    })();
    await conn.closed;
    const lasted = performance.now() - welcomed;
    // Not after three intervals (a busy hub gets more time), and not long after four.
    assert.ok(lasted >= 4000, `closed after ${lasted} ms`);
    assert.ok(heartbeats >= 3, `${heartbeats} heartbeats`);
    // The first interval had contact (the welcome), so no ping then: fewer pings than heartbeats.
    assert.ok(conn.pings >= 1 && conn.pings < heartbeats, `${conn.pings} pings, ${heartbeats} heartbeats`);
    const again = await r.hub.connections.next();
    await expectType(again, 'hello');
  });

  it('stream frames: a stream-open it cannot serve is refused; a corrupt frame or unknown id is bad-frame', async () => {
    await using r = await rig();
    let conn = await r.hub.connections.next();
    await expectType(conn, 'hello');
    await welcome(conn);
    conn.send({
      type: 'stream-open',
      id: 1,
      pod: { namespace: 'default', name: 'a', uid: 'u' },
      request: { kind: 'logs', container: 'c', follow: false, previous: false, timestamps: false },
    });
    const refused = await expectType(conn, 'stream-close');
    assert.equal(refused.error?.reason, 'Unsupported');
    conn.ws.send(Buffer.from([1, 0, 0, 0, 5, 0, 120]), { binary: true });
    const err = await expectType(conn, 'error');
    assert.equal(err.code, 'bad-frame');
    assert.match(err.message, /Stream 5 was never opened/);
    await conn.closed;
    conn = await r.hub.connections.next();
    await expectType(conn, 'hello');
    await welcome(conn);
    conn.ws.send(Buffer.from([7, 0]), { binary: true });
    assert.match((await expectType(conn, 'error')).message, /needs 6 header bytes/);
  });

  it('applies nothing from a batch with a bad item, reports bad-frame and reconnects', async () => {
    await using r = await rig();
    const conn = await r.hub.connections.next();
    await expectType(conn, 'hello');
    await welcome(conn);
    conn.send({ type: 'batch', seq: 1, revision: 2, items: [pod('a', 2)] });
    await expectType(conn, 'ack');
    conn.send({
      type: 'batch',
      seq: 2,
      revision: 9,
      items: [pod('b', 8), { key: 'core/pods/default/c', revision: 9, object: { metadata: { name: 'x' } } }],
    });
    const err = await expectType(conn, 'error');
    assert.equal(err.code, 'bad-frame');
    await conn.closed;
    assert.deepEqual(r.store.inventory(), [['core/pods/default/a', 2]]);
    const conn2 = await r.hub.connections.next();
    assert.deepEqual((await expectType(conn2, 'hello')).inventory, [['core/pods/default/a', 2]]);
  });

  it('treats an undecodable frame and a seq gap as bad frames', async () => {
    await using r = await rig();
    const conn = await r.hub.connections.next();
    await expectType(conn, 'hello');
    await welcome(conn);
    conn.sendRaw('{"type":"batch","seq":1}');
    assert.equal((await expectType(conn, 'error')).code, 'bad-frame');
    const conn2 = await r.hub.connections.next();
    await expectType(conn2, 'hello');
    await welcome(conn2);
    conn2.send({ type: 'batch', seq: 2, revision: 2, items: [pod('a', 2)] });
    assert.match((await expectType(conn2, 'error')).message, /seq 2/);
    assert.equal(r.store.size(), 0);
  });

  it('drains the outbox in order, removes only acked items and resends the rest after a reconnect', async () => {
    await using r = await rig();
    r.outbox.enqueue({ kind: 'NodeStatus', name: 'n1', status: { a: 1 } });
    const conn = await r.hub.connections.next();
    await expectType(conn, 'hello');
    await welcome(conn);
    const first = await expectType(conn, 'status');
    assert.deepEqual(
      first.items.map((i) => i.kind),
      ['NodeStatus'],
    );
    // Enqueued while connected: sent at once.
    r.outbox.enqueue({ kind: 'Event', namespace: 'default', event: { reason: 'x' } });
    const second = await expectType(conn, 'status');
    assert.ok(second.seq > first.seq);
    conn.send({ type: 'status-ack', seq: first.seq });
    await once(r.session, 'status-ack');
    assert.deepEqual(
      r.outbox.pending().map((p) => p.seq),
      [second.seq],
    );
    conn.ws.close();
    const conn2 = await r.hub.connections.next();
    await expectType(conn2, 'hello');
    await welcome(conn2);
    const resent = await expectType(conn2, 'status');
    assert.deepEqual([resent.seq, resent.items.map((i) => i.kind)], [second.seq, ['Event']]);
    conn2.send({ type: 'status-ack', seq: resent.seq });
    await once(r.session, 'status-ack');
    assert.equal(r.outbox.depth(), 0);
  });

  it('applies a write-back with the status it sent, even when a newer report replaced it before the ack', async () => {
    // The node reports on connect, then again before the first report's ack (as an agent does when its
    // own Node arrives with other conditions); the second report coalesces into the first one's row. The
    // hub's write-back for the first batch names the status that batch carried: the node must hold that
    // status at the API's revision, not stay at the old revision (a reconnect would then resend the Node).
    await using r = await rig();
    const conn = await r.hub.connections.next();
    await expectType(conn, 'hello');
    await welcome(conn);
    conn.send({
      type: 'batch',
      seq: 1,
      revision: 9,
      items: [{ key: 'core/nodes//n1', revision: 9, object: { metadata: { name: 'n1' }, spec: {} } }],
    });
    await expectType(conn, 'ack');
    r.outbox.enqueue({ kind: 'NodeStatus', name: 'n1', status: { phase: 'first' } });
    const first = await expectType(conn, 'status');
    r.outbox.enqueue({ kind: 'NodeStatus', name: 'n1', status: { phase: 'second' } });
    const second = await expectType(conn, 'status');
    assert.ok(second.seq > first.seq);
    conn.send({ type: 'status-ack', seq: first.seq, written: [['core/nodes//n1', 9, 12]] });
    await once(r.session, 'status-ack');
    const node = r.store.get('core/nodes//n1');
    assert.equal(node?.revision, 12);
    assert.deepEqual(node?.object, {
      metadata: { name: 'n1', resourceVersion: '12' },
      spec: {},
      status: { phase: 'first' },
    });
    assert.deepEqual(
      r.outbox.pending().map((p) => p.seq),
      [second.seq],
      'the newer report is still to be acked',
    );
  });

  it('keeps the session after a forbidden refusal: later batches are still applied and acked', async () => {
    // The hub acknowledges a status batch and then reports each item it refused (e.g. the status of a pod
    // that was deleted and recreated on another node) as error 'forbidden', without closing. The agent
    // used to ignore every later frame of that connection while its heartbeats kept it open: batches
    // were never applied or acked, so the node stayed without new pods and ConfigMaps for good.
    await using r = await rig();
    r.outbox.enqueue({ kind: 'PodStatus', namespace: 'default', name: 'p', uid: 'u1', status: {} });
    const conn = await r.hub.connections.next();
    await expectType(conn, 'hello');
    await welcome(conn);
    const status = await expectType(conn, 'status');
    conn.send({ type: 'status-ack', seq: status.seq });
    conn.send({
      type: 'error',
      code: 'forbidden',
      message: 'Node n1 cannot write the status of pod default/p, which is not bound to it',
    });
    conn.send({ type: 'batch', seq: 1, revision: 3, items: [pod('q', 3)] });
    assert.deepEqual(await expectType(conn, 'ack'), { type: 'ack', seq: 1, revision: 3 });
    assert.deepEqual(r.store.inventory(), [['core/pods/default/q', 3]]);
    assert.equal(r.outbox.depth(), 0);
    assert.equal(r.session.connected, true);
    assert.equal(r.hub.connections.length, 0, 'no reconnect');
  });

  it('closes the connection itself after a fatal hub error, even when the hub keeps it open', async () => {
    await using r = await rig();
    const conn = await r.hub.connections.next();
    await expectType(conn, 'hello');
    await welcome(conn);
    await once(r.session, 'connected');
    conn.send({ type: 'error', code: 'replaced', message: 'A newer session of this node replaced this one' });
    const [reason] = (await once(r.session, 'disconnected')) as [string];
    assert.match(reason, /replaced/);
    await conn.closed;
    const conn2 = await r.hub.connections.next();
    await expectType(conn2, 'hello');
  });

  it('keeps retrying while the hub is down and connects when it comes back', async () => {
    const placeholder = await startFakeHub(pki);
    const port = placeholder.port;
    await placeholder.close();
    const store = new LocalStore(join(dir, `s${++n}.db`));
    const session = new Session({
      server: `https://127.0.0.1:${port}`,
      nodeName: 'n1',
      store,
      outbox: new Outbox(store),
      credentials: () => tls,
      logger: silentLogger(),
      backoff: { initialMs: 5, maxMs: 20 },
    });
    const failures: string[] = [];
    session.on('disconnected', (reason) => failures.push(reason));
    session.start();
    while (failures.length < 3) await once(session, 'disconnected');
    assert.match(failures[0] ?? '', /ECONNREFUSED/);
    const hub = await startFakeHub(pki, port);
    const conn = await hub.connections.next();
    await expectType(conn, 'hello');
    await welcome(conn);
    await once(session, 'connected');
    assert.equal(session.connected, true);
    await session.stop();
    store.close();
    await hub.close();
  });

  it('refuses a hub whose certificate is not from the cluster CA', async () => {
    const other = await createTestPki();
    const hub = await startFakeHub(other);
    await using r = await rig({ hub, creds: tls });
    const [reason] = (await once(r.session, 'disconnected')) as [string];
    assert.match(reason, /certificate/i);
    assert.equal(r.hub.connections.length, 0);
  });

  it('heartbeats at the interval the hub asks for', async () => {
    await using r = await rig();
    const conn = await r.hub.connections.next();
    await expectType(conn, 'hello');
    await welcome(conn, 1);
    const m = await conn.messages.next();
    assert.equal(m.type, 'heartbeat');
  });
});

describe('backoffDelay', () => {
  it('doubles from 0.5 s up to 30 s with jitter in the upper half', () => {
    assert.equal(
      backoffDelay(0, 500, 30_000, () => 0),
      250,
    );
    assert.equal(
      backoffDelay(0, 500, 30_000, () => 1),
      500,
    );
    assert.equal(
      backoffDelay(3, 500, 30_000, () => 1),
      4000,
    );
    assert.equal(
      backoffDelay(20, 500, 30_000, () => 1),
      30_000,
    );
    assert.equal(
      backoffDelay(1000, 500, 30_000, () => 0),
      15_000,
    );
  });
});
