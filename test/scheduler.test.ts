// The scheduler on a real in-process API (LocalCluster on a SQLite store): bindings, the Unschedulable
// condition and FailedScheduling events, and retries when the cluster changes.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { KubeObject } from '../src/api/meta.ts';
import { LocalCluster } from '../src/apiserver/local-cluster.ts';
import { ApiServer } from '../src/apiserver/server.ts';
import { InformerFactory } from '../src/client/informer.ts';
import { Resources } from '../src/client/types.ts';
import { type Scheduler, startScheduler } from '../src/controllers/scheduler/index.ts';
import { silentLogger } from '../src/lib/log.ts';
import { openSqliteStore } from '../src/store/sqlite.ts';
import type { Store } from '../src/store/types.ts';

interface NodeOpts {
  cpu?: string;
  memory?: string;
  pods?: string;
  labels?: Record<string, string>;
  ready?: 'True' | 'False' | 'Unknown';
  taints?: { key: string; value?: string; effect: string }[];
  unschedulable?: boolean;
  extra?: Record<string, string>;
}

function node(name: string, o: NodeOpts = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...o.labels } },
    spec: {
      ...(o.taints === undefined ? {} : { taints: o.taints }),
      ...(o.unschedulable ? { unschedulable: true } : {}),
    },
    status: {
      allocatable: { cpu: o.cpu ?? '2', memory: o.memory ?? '4Gi', pods: o.pods ?? '110', ...o.extra },
      capacity: { cpu: o.cpu ?? '2', memory: o.memory ?? '4Gi', pods: o.pods ?? '110', ...o.extra },
      conditions: [{ type: 'Ready', status: o.ready ?? 'True', reason: 'KubeletReady' }],
    },
  };
}

function pod(
  name: string,
  spec: Record<string, unknown> = {},
  meta: Partial<KubeObject['metadata']> = {},
): KubeObject {
  const { requests, ...rest } = spec as { requests?: Record<string, string> };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', ...meta },
    spec: {
      containers: [
        { name: 'main', image: 'busybox', ...(requests === undefined ? {} : { resources: { requests } }) },
      ],
      ...rest,
    },
  };
}

describe('scheduler on a LocalCluster', () => {
  let dir: string;
  let store: Store;
  let api: ApiServer;
  let cluster: LocalCluster;
  let informers: InformerFactory;
  let scheduler: Scheduler;
  let seq = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kedge-scheduler-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    store = openSqliteStore({ path: join(dir, `state-${++seq}.db`) });
    api = new ApiServer({ store, logger: silentLogger(), authenticate: () => undefined });
    await api.start();
    cluster = new LocalCluster(api.storage);
    informers = new InformerFactory(cluster, silentLogger());
    scheduler = startScheduler({
      cluster,
      informers,
      logger: silentLogger(),
      seed: 42,
      backoff: { initialBackoffMs: 5, maxBackoffMs: 50 },
    });
    informers.start();
    await informers.waitForSync();
  });
  afterEach(async () => {
    await scheduler.stop();
    await informers.stop();
    await api.close();
    await store.close();
  });

  /** Watch pods until `pred` holds for the named pod; resolves with it (fails after 10 s with the last state). */
  async function waitForPod(name: string, pred: (p: KubeObject) => boolean): Promise<KubeObject> {
    const ac = new AbortController();
    const signal = AbortSignal.any([ac.signal, AbortSignal.timeout(10_000)]);
    let last: KubeObject | undefined;
    try {
      for await (const ev of cluster.watch(Resources.pods, {
        namespace: 'default',
        resourceVersion: '0',
        fieldSelector: `metadata.name=${name}`,
        signal,
      })) {
        last = ev.object;
        if (ev.type !== 'DELETED' && pred(ev.object)) return ev.object;
      }
    } finally {
      ac.abort();
    }
    throw new Error(
      `pod ${name} did not reach the expected state; last seen: ${JSON.stringify(last?.['status'])}`,
    );
  }

  const nodeNameOf = (p: KubeObject): string => (p['spec'] as { nodeName?: string }).nodeName ?? '';
  const bound = (name: string) => waitForPod(name, (p) => nodeNameOf(p) !== '');
  const scheduledCondition = (p: KubeObject) =>
    ((p['status'] as { conditions?: Record<string, unknown>[] } | undefined)?.conditions ?? []).find(
      (c) => c['type'] === 'PodScheduled',
    );
  const unschedulable = (name: string, message?: string) =>
    waitForPod(name, (p) => {
      const c = scheduledCondition(p);
      return (
        c?.['status'] === 'False' &&
        c['reason'] === 'Unschedulable' &&
        (message === undefined || c['message'] === message)
      );
    });

  async function failedSchedulingEvents(name: string): Promise<KubeObject[]> {
    const list = await cluster.list(Resources.events, {
      namespace: 'default',
      fieldSelector: `involvedObject.name=${name},reason=FailedScheduling`,
    });
    return list.items;
  }

  const create = (ref: typeof Resources.pods | typeof Resources.nodes, obj: KubeObject) =>
    cluster.create(ref, ref === Resources.pods ? 'default' : undefined, obj);

  it('binds a pod to the node its nodeSelector names and marks it PodScheduled', async () => {
    await create(Resources.nodes, node('edge-a', { labels: { zone: 'a' } }));
    await create(Resources.nodes, node('edge-b', { labels: { zone: 'b' } }));
    await create(Resources.pods, pod('web', { nodeSelector: { zone: 'b' } }));
    const p = await bound('web');
    assert.equal(nodeNameOf(p), 'edge-b');
    assert.equal(scheduledCondition(p)?.['status'], 'True');
  });

  it('sets PodScheduled=False with the Kubernetes message and a FailedScheduling event, then binds when a node fits', async () => {
    await create(Resources.nodes, node('small', { cpu: '1' }));
    await create(Resources.pods, pod('first', { requests: { cpu: '600m' } }));
    assert.equal(nodeNameOf(await bound('first')), 'small');

    await create(Resources.pods, pod('second', { requests: { cpu: '600m' } }));
    await unschedulable('second', '0/1 nodes are available: 1 Insufficient cpu.');
    const events = await failedSchedulingEvents('second');
    assert.equal(events.length, 1);
    assert.equal(events[0]?.['type'], 'Warning');
    assert.equal(events[0]?.['message'], '0/1 nodes are available: 1 Insufficient cpu.');
    assert.deepEqual(events[0]?.['source'], { component: 'default-scheduler' });

    await create(Resources.nodes, node('big', { cpu: '4' }));
    assert.equal(nodeNameOf(await bound('second')), 'big');
  });

  it('counts each reason once per node in the message', async () => {
    await create(Resources.nodes, node('n1', { labels: { disk: 'hdd' } }));
    await create(Resources.nodes, node('n2', { labels: { disk: 'ssd' }, cpu: '1' }));
    await create(Resources.nodes, node('n3', { labels: { disk: 'ssd' }, cpu: '1' }));
    await create(Resources.pods, pod('picky', { nodeSelector: { disk: 'ssd' }, requests: { cpu: '1500m' } }));
    await unschedulable(
      'picky',
      "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu.",
    );
  });

  it('retries when a pod on a node goes away', async () => {
    await create(Resources.nodes, node('only', { memory: '1Gi' }));
    await create(Resources.pods, pod('hog', { requests: { memory: '800Mi' } }));
    await bound('hog');
    await create(Resources.pods, pod('waiter', { requests: { memory: '800Mi' } }));
    await unschedulable('waiter', '0/1 nodes are available: 1 Insufficient memory.');
    await cluster.delete(Resources.pods, 'default', 'hog', { gracePeriodSeconds: 0 });
    assert.equal(nodeNameOf(await bound('waiter')), 'only');
  });

  it('keeps pods off nodes that are not Ready unless they tolerate the not-ready taint', async () => {
    await create(Resources.nodes, node('down', { ready: 'False' }));
    await create(Resources.pods, pod('plain'));
    await unschedulable(
      'plain',
      '0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.',
    );
    await create(
      Resources.pods,
      pod('tolerant', {
        tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoSchedule' }],
      }),
    );
    assert.equal(nodeNameOf(await bound('tolerant')), 'down');
    // The node becomes Ready: the parked pod goes there.
    const n = await cluster.get(Resources.nodes, undefined, 'down');
    (n['status'] as { conditions: { status: string }[] }).conditions[0]!.status = 'True';
    await cluster.update(Resources.nodes, n, { subresource: 'status' });
    assert.equal(nodeNameOf(await bound('plain')), 'down');
  });

  it('honours taints, unschedulable nodes and tolerations', async () => {
    await create(
      Resources.nodes,
      node('tainted', { taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }] }),
    );
    await create(Resources.nodes, node('cordoned', { unschedulable: true }));
    await create(Resources.pods, pod('normal'));
    await unschedulable(
      'normal',
      '0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable.',
    );
    await create(
      Resources.pods,
      pod('gpu-job', {
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }],
      }),
    );
    assert.equal(nodeNameOf(await bound('gpu-job')), 'tainted');
  });

  it('checks extended resources and the pod count', async () => {
    await create(Resources.nodes, node('dev', { pods: '1', extra: { 'example.com/dongle': '1' } }));
    await create(Resources.pods, pod('d1', { requests: { 'example.com/dongle': '1' } }));
    assert.equal(nodeNameOf(await bound('d1')), 'dev');
    await create(Resources.pods, pod('d2', { requests: { 'example.com/dongle': '1' } }));
    await unschedulable('d2', '0/1 nodes are available: 1 Insufficient example.com/dongle, 1 Too many pods.');
  });

  it('places pods with required anti-affinity on different nodes, and parks the one too many', async () => {
    await create(Resources.nodes, node('h1'));
    await create(Resources.nodes, node('h2'));
    const anti = {
      affinity: {
        podAntiAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: [
            { labelSelector: { matchLabels: { app: 'db' } }, topologyKey: 'kubernetes.io/hostname' },
          ],
        },
      },
    };
    await create(Resources.pods, pod('db-0', anti, { labels: { app: 'db' } }));
    const n0 = nodeNameOf(await bound('db-0'));
    await create(Resources.pods, pod('db-1', anti, { labels: { app: 'db' } }));
    const n1 = nodeNameOf(await bound('db-1'));
    assert.notEqual(n0, n1);
    await create(Resources.pods, pod('db-2', anti, { labels: { app: 'db' } }));
    await unschedulable('db-2', "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules.");
  });

  it('places a pod with required affinity next to the pods it names', async () => {
    await create(Resources.nodes, node('z1', { labels: { zone: 'one' } }));
    await create(Resources.nodes, node('z2', { labels: { zone: 'two' } }));
    await create(
      Resources.pods,
      pod('cache', { nodeSelector: { zone: 'two' } }, { labels: { app: 'cache' } }),
    );
    await bound('cache');
    await create(
      Resources.pods,
      pod('app', {
        affinity: {
          podAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [
              { labelSelector: { matchLabels: { app: 'cache' } }, topologyKey: 'zone' },
            ],
          },
        },
      }),
    );
    assert.equal(nodeNameOf(await bound('app')), 'z2');
  });

  it('spreads the pods of one owner across nodes', async () => {
    for (const n of ['s1', 's2', 's3'])
      await create(Resources.nodes, node(n, { cpu: '64', memory: '256Gi' }));
    const owner = {
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: 'rs-uid', controller: true },
      ],
    };
    for (let i = 0; i < 6; i++) await create(Resources.pods, pod(`rs-${i}`, {}, owner));
    const counts = new Map<string, number>();
    for (let i = 0; i < 6; i++) {
      const n = nodeNameOf(await bound(`rs-${i}`));
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
    assert.deepEqual([...counts.values()], [2, 2, 2]);
  });

  it('leaves pods for other schedulers alone', async () => {
    await create(Resources.nodes, node('any'));
    await create(Resources.pods, pod('theirs', { schedulerName: 'other-scheduler' }));
    await create(Resources.pods, pod('ours'));
    await bound('ours');
    const theirs = await cluster.get(Resources.pods, 'default', 'theirs');
    assert.equal(nodeNameOf(theirs), '');
    assert.equal(scheduledCondition(theirs), undefined);
  });

  it('bumps the count of the FailedScheduling event when the same failure repeats', async () => {
    await create(Resources.nodes, node('tiny', { cpu: '100m' }));
    await create(Resources.pods, pod('large', { requests: { cpu: '1' } }));
    await unschedulable('large');
    // An irrelevant-looking node change still wakes parked pods; the same failure repeats.
    const n = await cluster.get(Resources.nodes, undefined, 'tiny');
    n.metadata.labels = { ...n.metadata.labels, touched: 'yes' };
    await cluster.update(Resources.nodes, n);
    for (;;) {
      const events = await failedSchedulingEvents('large');
      assert.equal(events.length, 1);
      if ((events[0]?.['count'] as number) >= 2) break;
      await waitForEventChange();
    }
  });

  /** Resolves on the next change to any Event. */
  async function waitForEventChange(): Promise<void> {
    const ac = new AbortController();
    const list = await cluster.list(Resources.events, { namespace: 'default' });
    try {
      for await (const _ of cluster.watch(Resources.events, {
        namespace: 'default',
        resourceVersion: list.metadata.resourceVersion ?? '0',
        signal: ac.signal,
      })) {
        return;
      }
    } finally {
      ac.abort();
    }
  }
});
