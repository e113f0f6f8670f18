import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestCluster, type TestCluster } from '../../../test/harness/cluster.ts';
import { type ReadyPods, startReadyPods, waitUntil } from '../../../test/harness/ready-pods.ts';
import type { KubeObject } from '../../api/meta.ts';
import { InformerFactory } from '../../client/informer.ts';
import { Resources } from '../../client/types.ts';
import { silentLogger } from '../../lib/log.ts';
import type { Pod, ReplicaSet } from './common.ts';
import { ReplicaSetController } from './replicaset.ts';

const NS = 'default';

function replicaSet(name: string, replicas: number, extra: Record<string, unknown> = {}): ReplicaSet {
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name, namespace: NS },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name, tier: 'x' }, annotations: { note: 'kept' } },
        spec: { containers: [{ name: 'c', image: 'busybox:1.36' }] },
      },
      ...extra,
    },
  };
}

const ownedBy = (rs: KubeObject) => (items: KubeObject[]) =>
  items.filter((p) => p.metadata.ownerReferences?.some((r) => r.uid === rs.metadata.uid && r.controller));

describe('ReplicaSet controller', { concurrency: false }, () => {
  let tc: TestCluster;
  let informers: InformerFactory;
  let controller: ReplicaSetController;
  let ready: ReadyPods;

  before(async () => {
    tc = await startTestCluster();
    informers = new InformerFactory(tc.cluster, silentLogger());
    controller = new ReplicaSetController({ cluster: tc.cluster, informers, logger: silentLogger() });
    informers.start();
    controller.start();
    ready = startReadyPods(tc.cluster, { bindTo: 'node-a' });
  });

  after(async () => {
    await ready.stop();
    await controller.stop();
    await informers.stop();
    await tc.close();
  });

  it('creates spec.replicas pods from the template, owned by the set, and reports status', async () => {
    const rs = await tc.cluster.create(Resources.replicasets, NS, replicaSet('web', 3));
    const pods = await waitUntil(tc.cluster, Resources.pods, NS, (items) => {
      const mine = ownedBy(rs)(items);
      return mine.length === 3 ? mine : undefined;
    });
    for (const p of pods) {
      assert.match(p.metadata.name ?? '', /^web-[a-z0-9]{5}$/);
      assert.deepEqual(p.metadata.labels, { app: 'web', tier: 'x' });
      assert.equal(p.metadata.annotations?.['note'], 'kept');
      const ref = p.metadata.ownerReferences?.[0];
      assert.deepEqual(ref, {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        name: 'web',
        uid: rs.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      });
    }
    const status = await waitUntil(tc.cluster, Resources.replicasets, NS, (items) => {
      const s = items.find((i) => i.metadata.name === 'web')?.['status'] as ReplicaSet['status'];
      return s?.availableReplicas === 3 ? s : undefined;
    });
    assert.deepEqual(
      { ...status, conditions: undefined },
      {
        replicas: 3,
        fullyLabeledReplicas: 3,
        readyReplicas: 3,
        availableReplicas: 3,
        observedGeneration: 1,
        conditions: undefined,
      },
    );
    const events = await waitUntil(tc.cluster, Resources.events, NS, (items) => {
      const mine = items.filter(
        (e) =>
          (e['involvedObject'] as { uid?: string }).uid === rs.metadata.uid &&
          e['reason'] === 'SuccessfulCreate',
      );
      return mine.length === 3 ? mine : undefined;
    });
    assert.match(String(events[0]?.['message']), /^Created pod: web-/);
  });

  it('replaces a deleted pod and scales down deleting not-ready pods first', async () => {
    const rs = await tc.cluster.get(Resources.replicasets, NS, 'web');
    const before = ownedBy(rs)((await tc.cluster.list(Resources.pods, { namespace: NS })).items);
    const victim = before[0]!;
    await tc.cluster.delete(Resources.pods, NS, victim.metadata.name ?? '');
    const after3 = await waitUntil(tc.cluster, Resources.pods, NS, (items) => {
      const mine = ownedBy(rs)(items);
      return mine.length === 3 && !mine.some((p) => p.metadata.name === victim.metadata.name)
        ? mine
        : undefined;
    });
    // Hold new pods back from readiness, scale up to 4, then down to 2: the not-ready one goes first.
    ready.setShouldMarkReady(() => false);
    await tc.cluster.patch(Resources.replicasets, NS, 'web', 'merge', { spec: { replicas: 4 } });
    const four = await waitUntil(tc.cluster, Resources.pods, NS, (items) => {
      const mine = ownedBy(rs)(items);
      return mine.length === 4 && mine.some((p) => p.spec && (p['spec'] as Pod['spec'])?.nodeName)
        ? mine
        : undefined;
    });
    const fresh = four.find((p) => !after3.some((q) => q.metadata.name === p.metadata.name))!;
    await tc.cluster.patch(Resources.replicasets, NS, 'web', 'merge', { spec: { replicas: 2 } });
    const two = await waitUntil(tc.cluster, Resources.pods, NS, (items) => {
      const mine = ownedBy(rs)(items);
      return mine.length === 2 ? mine : undefined;
    });
    assert.ok(
      !two.some((p) => p.metadata.name === fresh.metadata.name),
      'the not-ready pod was deleted first',
    );
    ready.setShouldMarkReady(() => true);
  });

  it('adopts a matching orphan and releases a pod whose labels stop matching', async () => {
    const rs = await tc.cluster.create(Resources.replicasets, NS, replicaSet('adopt', 2));
    await waitUntil(tc.cluster, Resources.pods, NS, (items) =>
      ownedBy(rs)(items).length === 2 ? true : undefined,
    );
    // An orphan with matching labels: the set adopts it and, now at 3, deletes one.
    await tc.cluster.create(Resources.pods, NS, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'orphan', labels: { app: 'adopt' } },
      spec: { containers: [{ name: 'c', image: 'busybox:1.36' }] },
    });
    await waitUntil(tc.cluster, Resources.pods, NS, (items) => {
      const mine = ownedBy(rs)(items);
      const orphan = items.find((p) => p.metadata.name === 'orphan');
      return mine.length === 2 && (orphan === undefined || ownedBy(rs)([orphan]).length === 1)
        ? true
        : undefined;
    });
    // Relabel one owned pod: it is released (owner reference removed) and replaced.
    const owned = ownedBy(rs)((await tc.cluster.list(Resources.pods, { namespace: NS })).items);
    const relabelled = owned[0]!;
    await tc.cluster.patch(Resources.pods, NS, relabelled.metadata.name ?? '', 'merge', {
      metadata: { labels: { app: 'elsewhere' } },
    });
    await waitUntil(tc.cluster, Resources.pods, NS, (items) => {
      const p = items.find((i) => i.metadata.name === relabelled.metadata.name);
      const mine = ownedBy(rs)(items);
      return p !== undefined && (p.metadata.ownerReferences ?? []).length === 0 && mine.length === 2
        ? true
        : undefined;
    });
  });

  it('counts pods available only after minReadySeconds', async () => {
    const rs = await tc.cluster.create(
      Resources.replicasets,
      NS,
      replicaSet('slow', 1, { minReadySeconds: 1 }),
    );
    const readyNotAvailable = await waitUntil(tc.cluster, Resources.replicasets, NS, (items) => {
      const s = items.find((i) => i.metadata.uid === rs.metadata.uid)?.['status'] as ReplicaSet['status'];
      return s?.readyReplicas === 1 ? s : undefined;
    });
    assert.equal(readyNotAvailable.availableReplicas, 0);
    await waitUntil(tc.cluster, Resources.replicasets, NS, (items) => {
      const s = items.find((i) => i.metadata.uid === rs.metadata.uid)?.['status'] as ReplicaSet['status'];
      return s?.availableReplicas === 1 ? s : undefined;
    });
  });
});
