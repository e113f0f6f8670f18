import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../api/meta.ts';
import { silentLogger } from '../lib/log.ts';
import type { StatusItem } from '../protocol/messages.ts';
import { FakeRuntime } from './fake-runtime.ts';
import { LocalStore } from './local-store.ts';
import { Outbox } from './outbox.ts';
import { buildPodStatus, PodManager, phaseOf } from './pods.ts';
import type { RuntimeContainer, RuntimePod } from './runtime.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-agent-pods-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
let rev = 0;
const logger = silentLogger();

function podObject(name: string, node: string, extra: Partial<KubeObject['metadata']> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', uid: `uid-${name}`, ...extra },
    spec: {
      nodeName: node,
      containers: [
        { name: 'app', image: 'busybox' },
        { name: 'side', image: 'pause' },
      ],
    },
  };
}

function put(store: LocalStore, obj: KubeObject): void {
  rev++;
  store.applyBatch(rev, [{ key: `core/pods/default/${obj.metadata.name}`, revision: rev, object: obj }]);
}

function statuses(outbox: Outbox): StatusItem[] {
  return outbox.pending(0, 1000).map((p) => p.item);
}

async function rig(store = new LocalStore(join(dir, `p${++n}.db`))) {
  const runtime = new FakeRuntime({ logger });
  const outbox = new Outbox(store);
  const manager = new PodManager({
    nodeName: 'n1',
    hostIP: '192.0.2.10',
    store,
    runtime,
    outbox,
    logger,
    resyncMs: 3_600_000,
  });
  return { store, runtime, outbox, manager };
}

describe('PodManager with the fake runtime', () => {
  it('starts the pods bound to this node and reports a Running, Ready status', async () => {
    const { store, runtime, outbox, manager } = await rig();
    await manager.start();
    put(store, podObject('a', 'n1'));
    put(store, podObject('elsewhere', 'n2'));
    await manager.idle();
    assert.deepEqual(
      (await runtime.list()).map((p) => p.name),
      ['a'],
    );
    const [item, ...rest] = statuses(outbox);
    assert.equal(rest.length, 0);
    assert.ok(item?.kind === 'PodStatus');
    assert.equal(item.uid, 'uid-a');
    const s = item.status;
    assert.equal(s['phase'], 'Running');
    assert.equal(s['hostIP'], '192.0.2.10');
    assert.match(String(s['podIP']), /^10\.88\.\d+\.\d+$/);
    assert.equal(typeof s['startTime'], 'string');
    const conditions = s['conditions'] as Array<{ type: string; status: string }>;
    for (const type of ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready']) {
      assert.equal(conditions.find((c) => c.type === type)?.status, 'True', type);
    }
    const containers = s['containerStatuses'] as Array<{ name: string; ready: boolean; state: object }>;
    assert.deepEqual(
      containers.map((c) => [c.name, c.ready, Object.keys(c.state)[0]]),
      [
        ['app', true, 'running'],
        ['side', true, 'running'],
      ],
    );
    await manager.stop();
    store.close();
  });

  it('reports nothing new when nothing changed, including once the server echoes the status back', async () => {
    const { store, outbox, manager } = await rig();
    await manager.start();
    put(store, podObject('a', 'n1'));
    await manager.idle();
    const [first] = outbox.pending();
    assert.ok(first?.item.kind === 'PodStatus');
    outbox.ack(first.seq);
    await manager.resync();
    assert.equal(outbox.depth(), 0);
    // The hub wrote the status; the pod comes back with it and a new revision.
    put(store, { ...podObject('a', 'n1'), status: first.item.status });
    await manager.idle();
    assert.equal(outbox.depth(), 0);
    await manager.stop();
    store.close();
  });

  it('stops a pod marked for deletion and reports PodDeleted in place of its status', async () => {
    const { store, runtime, outbox, manager } = await rig();
    await manager.start();
    put(store, podObject('a', 'n1'));
    await manager.idle();
    put(
      store,
      podObject('a', 'n1', { deletionTimestamp: '2025-01-01T00:00:00Z', deletionGracePeriodSeconds: 0 }),
    );
    await manager.idle();
    assert.deepEqual(await runtime.list(), []);
    assert.deepEqual(statuses(outbox), [
      { kind: 'PodDeleted', namespace: 'default', name: 'a', uid: 'uid-a' },
    ]);
    await manager.stop();
    store.close();
  });

  it('stops a pod whose object is gone, and replaces a pod recreated under the same name', async () => {
    const { store, runtime, manager } = await rig();
    await manager.start();
    put(store, podObject('a', 'n1'));
    put(store, podObject('b', 'n1'));
    await manager.idle();
    rev++;
    store.applyBatch(rev, [{ key: 'core/pods/default/a', revision: rev, deleted: true }]);
    put(store, podObject('b', 'n1', { uid: 'uid-b2' }));
    await manager.idle();
    assert.deepEqual(
      (await runtime.list()).map((p) => [p.name, p.uid]),
      [['b', 'uid-b2']],
    );
    await manager.stop();
    store.close();
  });

  it('runs every pod from the local store after a restart, with no hub at all', async () => {
    const path = join(dir, `p${++n}.db`);
    {
      const { store, manager } = await rig(new LocalStore(path));
      await manager.start();
      for (const name of ['a', 'b', 'c']) put(store, podObject(name, 'n1'));
      await manager.idle();
      await manager.stop();
      store.close();
    }
    // A new process: new runtime (nothing runs), same store file.
    const { store, runtime, manager } = await rig(new LocalStore(path));
    await manager.start();
    assert.deepEqual((await runtime.list()).map((p) => p.name).sort(), ['a', 'b', 'c']);
    await manager.stop();
    store.close();
  });

  it('keeps transition times and startTime from the previous status', () => {
    const pod = podObject('a', 'n1');
    const running = {
      uid: 'uid-a',
      namespace: 'default',
      name: 'a',
      podIP: '10.88.0.2',
      startedAt: '2025-01-01T00:00:05Z',
      containers: [],
    };
    const first = buildPodStatus(pod, running, '192.0.2.1', new Date('2025-01-01T00:00:10Z'));
    assert.equal(first['phase'], 'Pending');
    const later = buildPodStatus(
      { ...pod, status: first },
      running,
      '192.0.2.1',
      new Date('2025-01-01T01:00:00Z'),
    );
    assert.deepEqual(later, first);
  });
});

describe('phaseOf', () => {
  const c = (state: RuntimeContainer['state'], lastState?: RuntimeContainer['state']): RuntimeContainer => ({
    name: 'c',
    image: 'i',
    imageID: '',
    containerID: '',
    ready: false,
    started: false,
    restartCount: 0,
    state,
    ...(lastState === undefined ? {} : { lastState }),
  });
  const pod = (containers: RuntimeContainer[], extra: Partial<RuntimePod> = {}): RuntimePod => ({
    uid: 'u',
    namespace: 'n',
    name: 'p',
    podIP: undefined,
    startedAt: '2026-01-01T00:00:00Z',
    containers,
    ...extra,
  });
  const ok = c({ terminated: { exitCode: 0, reason: 'Completed', finishedAt: 'x' } });
  const bad = c({ terminated: { exitCode: 3, reason: 'Error', finishedAt: 'x' } });
  const run = c({ running: { startedAt: 'x' } });
  const backoff = c(
    { waiting: { reason: 'CrashLoopBackOff' } },
    { terminated: { exitCode: 3, reason: 'Error', finishedAt: 'x' } },
  );
  it('follows the restart policy like the kubelet', () => {
    assert.equal(phaseOf(pod([run, ok]), 'Never'), 'Running');
    assert.equal(phaseOf(pod([ok, ok]), 'Never'), 'Succeeded');
    assert.equal(phaseOf(pod([ok, bad]), 'Never'), 'Failed');
    assert.equal(phaseOf(pod([ok, bad]), 'Always'), 'Running');
    assert.equal(phaseOf(pod([ok, ok]), 'OnFailure'), 'Succeeded');
    assert.equal(
      phaseOf(pod([backoff]), 'Always'),
      'Running',
      'a container in CrashLoopBackOff keeps the pod Running',
    );
    assert.equal(phaseOf(pod([c({ waiting: { reason: 'ContainerCreating' } })]), 'Always'), 'Pending');
    assert.equal(phaseOf(pod([run], { initialized: false, initContainers: [bad] }), 'Never'), 'Failed');
    assert.equal(phaseOf(pod([run], { initialized: false, initContainers: [bad] }), 'Always'), 'Pending');
  });
});
