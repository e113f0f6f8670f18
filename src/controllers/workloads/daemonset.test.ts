import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestCluster, type TestCluster } from '../../../test/harness/cluster.ts';
import { type ReadyPods, startReadyPods, waitUntil } from '../../../test/harness/ready-pods.ts';
import type { KubeObject } from '../../api/meta.ts';
import { InformerFactory } from '../../client/informer.ts';
import { Resources } from '../../client/types.ts';
import { silentLogger } from '../../lib/log.ts';
import type { DaemonSet, Node, Pod } from './common.ts';
import { nodeShouldRunDaemonPod } from './daemonset.ts';
import { startWorkloadControllers } from './index.ts';

const NS = 'default';

function node(name: string, labels: Record<string, string> = {}, taints: Node['spec'] = {}): Node {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, spec: taints };
}

function daemonSet(
  name: string,
  spec: Record<string, unknown> = {},
  podSpec: Record<string, unknown> = {},
): DaemonSet {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace: NS },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'c', image: 'agent:1' }], ...podSpec },
      },
      ...spec,
    },
  };
}

const ownedBy = (owner: KubeObject, items: KubeObject[]): Pod[] =>
  items.filter((i) =>
    i.metadata.ownerReferences?.some((r) => r.uid === owner.metadata.uid && r.controller),
  ) as Pod[];

function imageOf(pod: Pod | undefined): string | undefined {
  return (pod?.spec?.['containers'] as Array<{ image: string }> | undefined)?.[0]?.image;
}

function nodesOf(pods: readonly Pod[]): string[] {
  return pods.map((p) => p.spec?.nodeName ?? '').sort();
}

/** The pods of a DaemonSet once they sit exactly on `nodes` (one each, none terminating). */
function podsOn(tc: TestCluster, ds: KubeObject, nodes: string[]): Promise<Pod[]> {
  return waitUntil(tc.cluster, Resources.pods, NS, (items) => {
    const pods = ownedBy(ds, items);
    return JSON.stringify(nodesOf(pods)) === JSON.stringify([...nodes].sort()) ? pods : undefined;
  });
}

function rolledOut(tc: TestCluster, name: string): Promise<DaemonSet> {
  return waitUntil(tc.cluster, Resources.daemonsets, NS, (items) => {
    const ds = items.find((i) => i.metadata.name === name) as DaemonSet | undefined;
    const s = ds?.status;
    if (ds === undefined || s === undefined) return undefined;
    const done =
      (s.observedGeneration ?? 0) >= (ds.metadata.generation ?? 1) &&
      (s.updatedNumberScheduled ?? 0) >= (s.desiredNumberScheduled ?? 0) &&
      (s.numberAvailable ?? 0) >= (s.desiredNumberScheduled ?? 0);
    return done ? ds : undefined;
  });
}

describe('nodeShouldRunDaemonPod', () => {
  const ds = daemonSet('x', {}, { nodeSelector: { edge: 'true' } });
  it('follows nodeSelector, taints and the standard daemon tolerations', () => {
    assert.deepEqual(nodeShouldRunDaemonPod(node('a', { edge: 'true' }), ds), {
      shouldRun: true,
      shouldContinueRunning: true,
    });
    assert.equal(nodeShouldRunDaemonPod(node('b'), ds).shouldRun, false);
    const tainted = node(
      'c',
      { edge: 'true' },
      { taints: [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }] },
    );
    assert.deepEqual(nodeShouldRunDaemonPod(tainted, ds), { shouldRun: false, shouldContinueRunning: true });
    const evicting = node('d', { edge: 'true' }, { taints: [{ key: 'dedicated', effect: 'NoExecute' }] });
    assert.deepEqual(nodeShouldRunDaemonPod(evicting, ds), {
      shouldRun: false,
      shouldContinueRunning: false,
    });
    const notReady = node(
      'e',
      { edge: 'true' },
      {
        unschedulable: true,
        taints: [
          { key: 'node.kubernetes.io/not-ready', effect: 'NoExecute' },
          { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' },
        ],
      },
    );
    assert.equal(nodeShouldRunDaemonPod(notReady, ds).shouldRun, true);
    const tolerant = daemonSet('y', {}, { tolerations: [{ key: 'dedicated', operator: 'Exists' }] });
    assert.equal(nodeShouldRunDaemonPod(evicting, tolerant).shouldRun, true);
  });
  it('follows required node affinity (labels and metadata.name fields)', () => {
    const affinity = (term: Record<string, unknown>): DaemonSet =>
      daemonSet(
        'z',
        {},
        {
          affinity: {
            nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [term] } },
          },
        },
      );
    const zone = affinity({ matchExpressions: [{ key: 'zone', operator: 'In', values: ['north'] }] });
    assert.equal(nodeShouldRunDaemonPod(node('a', { zone: 'north' }), zone).shouldRun, true);
    assert.equal(nodeShouldRunDaemonPod(node('a', { zone: 'south' }), zone).shouldRun, false);
    const byName = affinity({ matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['a'] }] });
    assert.equal(nodeShouldRunDaemonPod(node('a'), byName).shouldRun, false);
    assert.equal(nodeShouldRunDaemonPod(node('b'), byName).shouldRun, true);
  });
});

describe('DaemonSet controller', { concurrency: false }, () => {
  let tc: TestCluster;
  let informers: InformerFactory;
  let controllers: { stop(): Promise<void> };
  let ready: ReadyPods;

  before(async () => {
    tc = await startTestCluster();
    for (const n of [node('n1', { edge: 'true' }), node('n2', { edge: 'true' }), node('n3')]) {
      await tc.cluster.create(Resources.nodes, undefined, n);
    }
    informers = new InformerFactory(tc.cluster, silentLogger());
    controllers = startWorkloadControllers({ cluster: tc.cluster, informers, logger: silentLogger() });
    ready = startReadyPods(tc.cluster);
  });

  after(async () => {
    await ready.stop();
    await controllers.stop();
    await informers.stop();
    await tc.close();
  });

  it('runs one pod per eligible node, bound, pinned and tolerant, with a ControllerRevision', async () => {
    const ds = await tc.cluster.create(
      Resources.daemonsets,
      NS,
      daemonSet('agent', {}, { nodeSelector: { edge: 'true' } }),
    );
    const pods = await podsOn(tc, ds, ['n1', 'n2']);
    const revisions = ownedBy(
      ds,
      (await tc.cluster.list(Resources.controllerrevisions, { namespace: NS })).items,
    );
    assert.equal(revisions.length, 1);
    const hash = revisions[0]!.metadata.labels?.['controller-revision-hash'] ?? '';
    assert.equal(revisions[0]!.metadata.name, `agent-${hash}`);
    assert.equal((revisions[0] as KubeObject)['revision'], 1);
    for (const p of pods) {
      assert.equal(p.metadata.labels?.['controller-revision-hash'], hash);
      assert.equal(p.metadata.labels?.['pod-template-generation'], '1');
      const affinity = p.spec?.['affinity'] as { nodeAffinity: Record<string, unknown> };
      assert.deepEqual(affinity.nodeAffinity['requiredDuringSchedulingIgnoredDuringExecution'], {
        nodeSelectorTerms: [
          { matchFields: [{ key: 'metadata.name', operator: 'In', values: [p.spec?.nodeName] }] },
        ],
      });
      const tolerations = p.spec?.['tolerations'] as Array<{ key: string }>;
      assert.ok(tolerations.some((t) => t.key === 'node.kubernetes.io/unreachable'));
    }
    const done = await rolledOut(tc, 'agent');
    assert.deepEqual(
      { ...done.status, conditions: undefined, collisionCount: undefined },
      {
        currentNumberScheduled: 2,
        numberMisscheduled: 0,
        desiredNumberScheduled: 2,
        numberReady: 2,
        observedGeneration: 1,
        updatedNumberScheduled: 2,
        numberAvailable: 2,
        numberUnavailable: 0,
        conditions: undefined,
        collisionCount: undefined,
      },
    );
  });

  it('follows nodes joining, leaving and changing labels', async () => {
    const ds = await tc.cluster.get(Resources.daemonsets, NS, 'agent');
    await tc.cluster.create(Resources.nodes, undefined, node('n4', { edge: 'true' }));
    await podsOn(tc, ds, ['n1', 'n2', 'n4']);
    await tc.cluster.delete(Resources.nodes, undefined, 'n1');
    await podsOn(tc, ds, ['n2', 'n4']);
    await tc.cluster.patch(Resources.nodes, undefined, 'n2', 'merge', {
      metadata: { labels: { edge: null } },
    });
    await podsOn(tc, ds, ['n4']);
    await tc.cluster.patch(Resources.nodes, undefined, 'n3', 'merge', {
      metadata: { labels: { edge: 'true' } },
    });
    await podsOn(tc, ds, ['n3', 'n4']);
    await rolledOut(tc, 'agent');
  });

  it('rolls a new template out node by node and undoes to an old revision', async () => {
    const ds = await tc.cluster.get(Resources.daemonsets, NS, 'agent');
    const before = ownedBy(
      ds,
      (await tc.cluster.list(Resources.controllerrevisions, { namespace: NS })).items,
    )[0]!;
    await tc.cluster.patch(Resources.daemonsets, NS, 'agent', 'strategic', {
      spec: { template: { spec: { containers: [{ name: 'c', image: 'agent:2' }] } } },
    });
    const done = await rolledOut(tc, 'agent');
    assert.equal(done.status?.updatedNumberScheduled, 2);
    const pods = await podsOn(tc, ds, ['n3', 'n4']);
    const revisions = ownedBy(
      ds,
      (await tc.cluster.list(Resources.controllerrevisions, { namespace: NS })).items,
    );
    assert.equal(revisions.length, 2);
    const current = revisions.find((r) => r.metadata.uid !== before.metadata.uid)!;
    assert.equal((current as KubeObject)['revision'], 2);
    for (const p of pods) {
      assert.equal(
        p.metadata.labels?.['controller-revision-hash'],
        current.metadata.labels?.['controller-revision-hash'],
      );
      assert.equal(imageOf(p), 'agent:2');
    }
    // kubectl rollout undo ds: the old revision's data is applied as a strategic merge patch.
    await tc.cluster.patch(Resources.daemonsets, NS, 'agent', 'strategic', (before as KubeObject)['data']);
    await rolledOut(tc, 'agent');
    const back = await waitUntil(tc.cluster, Resources.pods, NS, (items) => {
      const mine = ownedBy(ds, items);
      return mine.length === 2 &&
        mine.every(
          (p) =>
            p.metadata.labels?.['controller-revision-hash'] ===
            before.metadata.labels?.['controller-revision-hash'],
        )
        ? mine
        : undefined;
    });
    assert.equal(imageOf(back[0]), 'agent:1');
    const reused = await tc.cluster.get(Resources.controllerrevisions, NS, before.metadata.name ?? '');
    assert.equal(reused['revision'], 3);
  });

  it('OnDelete replaces a pod only when it is deleted', async () => {
    const ds = await tc.cluster.create(
      Resources.daemonsets,
      NS,
      daemonSet('manual', { updateStrategy: { type: 'OnDelete' } }, { nodeSelector: { edge: 'true' } }),
    );
    const pods = await podsOn(tc, ds, ['n3', 'n4']);
    await tc.cluster.patch(Resources.daemonsets, NS, 'manual', 'strategic', {
      spec: { template: { spec: { containers: [{ name: 'c', image: 'agent:2' }] } } },
    });
    await waitUntil(tc.cluster, Resources.daemonsets, NS, (items) => {
      const x = items.find((i) => i.metadata.name === 'manual') as DaemonSet;
      return (x.status?.observedGeneration ?? 0) === 2 ? true : undefined;
    });
    const still = ownedBy(ds, (await tc.cluster.list(Resources.pods, { namespace: NS })).items);
    assert.deepEqual(still.map((p) => p.metadata.uid).sort(), pods.map((p) => p.metadata.uid).sort());
    await tc.cluster.delete(Resources.pods, NS, pods[0]!.metadata.name ?? '');
    const replaced = await waitUntil(tc.cluster, Resources.pods, NS, (items) => {
      const mine = ownedBy(ds, items);
      return mine.length === 2 && !mine.some((p) => p.metadata.uid === pods[0]!.metadata.uid)
        ? mine
        : undefined;
    });
    const images = replaced.map((p) => imageOf(p)).sort();
    assert.deepEqual(images, ['agent:1', 'agent:2']);
  });

  it('surges a new pod next to the old one when maxSurge is set', async () => {
    const ds = await tc.cluster.create(
      Resources.daemonsets,
      NS,
      daemonSet(
        'surge',
        { updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } } },
        { nodeSelector: { edge: 'true' } },
      ),
    );
    await podsOn(tc, ds, ['n3', 'n4']);
    await rolledOut(tc, 'surge');
    ready.setShouldMarkReady((p) => !(p.metadata.name ?? '').startsWith('surge-'));
    await tc.cluster.patch(Resources.daemonsets, NS, 'surge', 'strategic', {
      spec: { template: { spec: { containers: [{ name: 'c', image: 'agent:2' }] } } },
    });
    // With the new pod held unready, both the old and the new pod run on one node; nothing else moves.
    const doubled = await waitUntil(tc.cluster, Resources.pods, NS, (items) => {
      const mine = ownedBy(ds, items);
      return mine.length === 3 ? mine : undefined;
    });
    const perNode = new Map<string, number>();
    for (const p of doubled)
      perNode.set(p.spec?.nodeName ?? '', (perNode.get(p.spec?.nodeName ?? '') ?? 0) + 1);
    assert.deepEqual([...perNode.values()].sort(), [1, 2]);
    ready.setShouldMarkReady(() => true);
    await rolledOut(tc, 'surge');
    await podsOn(tc, ds, ['n3', 'n4']);
  });
});
