import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { startTestCluster, type TestCluster } from '../../../test/harness/cluster.ts';
import type { Condition, KubeObject } from '../../api/meta.ts';
import { isApiError } from '../../api/status-error.ts';
import { InformerFactory } from '../../client/informer.ts';
import { Resources } from '../../client/types.ts';
import { isKedgeError } from '../../lib/errors.ts';
import { silentLogger } from '../../lib/log.ts';
import {
  LEASE_NAMESPACE,
  type NodeLifecycleController,
  resolveNodeLifecycleOptions,
  startNodeLifecycleController,
} from './node-lifecycle.ts';

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await delay(10);
  }
}

const microNow = (): string => new Date().toISOString().replace('Z', '000Z');

describe('node lifecycle controller', () => {
  let t: TestCluster;
  let factory: InformerFactory;
  let controller: NodeLifecycleController;
  /** Nodes whose Lease the test keeps renewing, like a connected agent would. */
  const alive = new Set<string>();
  let renewer: NodeJS.Timeout;

  const renew = async (name: string): Promise<void> => {
    await t.cluster.patch(Resources.leases, LEASE_NAMESPACE, name, 'merge', {
      spec: { renewTime: microNow() },
    });
  };

  async function addNode(name: string, annotations: Record<string, string> = {}): Promise<void> {
    const c = t.cluster;
    const node = await c.create<KubeObject>(Resources.nodes, undefined, {
      metadata: { name, annotations, labels: { 'kedge.io/edge': 'true' } },
      spec: {},
    });
    await c.update(
      Resources.nodes,
      {
        ...node,
        status: {
          conditions: [
            { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kedge agent is ready' },
            { type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory' },
          ],
        },
      },
      { subresource: 'status' },
    );
    await c.create(Resources.leases, LEASE_NAMESPACE, {
      metadata: { name },
      spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: microNow() },
    });
    const pod = await c.create<KubeObject>(Resources.pods, 'default', {
      metadata: { name: `${name}-app` },
      spec: { nodeName: name, containers: [{ name: 'app', image: 'app:1' }] },
    });
    await c.update(
      Resources.pods,
      {
        ...pod,
        status: {
          phase: 'Running',
          conditions: [{ type: 'Ready', status: 'True' }],
        },
      },
      { subresource: 'status' },
    );
  }

  const getNode = (name: string): Promise<KubeObject> => t.cluster.get(Resources.nodes, undefined, name);
  const ready = async (name: string): Promise<Condition | undefined> =>
    ((await getNode(name))['status'] as { conditions: Condition[] }).conditions.find(
      (c) => c.type === 'Ready',
    );
  const taints = async (name: string): Promise<string[]> =>
    (((await getNode(name))['spec'] as { taints?: Array<{ key: string; effect: string }> }).taints ?? []).map(
      (x) => `${x.key}:${x.effect}`,
    );
  const podExists = async (name: string): Promise<boolean> => {
    try {
      await t.cluster.get(Resources.pods, 'default', name);
      return true;
    } catch (err) {
      if (isApiError(err, 404)) return false;
      throw err;
    }
  };
  const events = async (name: string, reason: string): Promise<KubeObject[]> =>
    (
      await t.cluster.list(Resources.events, {
        namespace: 'default',
        fieldSelector: `involvedObject.name=${name},reason=${reason}`,
      })
    ).items;

  before(async () => {
    t = await startTestCluster();
    factory = new InformerFactory(t.cluster, silentLogger());
    controller = startNodeLifecycleController({
      cluster: t.cluster,
      factory,
      logger: silentLogger(),
      gracePeriodMs: 400,
    });
    factory.start();
    await factory.waitForSync();
    renewer = setInterval(() => {
      for (const name of alive) void renew(name).catch(() => {});
    }, 50);
  });
  after(async () => {
    clearInterval(renewer);
    await controller.stop();
    await factory.stop();
    await t.close();
  });

  it('rejects a grace period that is not positive', () => {
    assert.throws(
      () => resolveNodeLifecycleOptions({ gracePeriodMs: 0 }),
      (err) => isKedgeError(err, 'KEDGE_CONFIG_INVALID') && /gracePeriodMs 0/.test(err.message),
    );
  });

  it('a node whose Lease stops gets Ready=Unknown and unreachable taints; its pods stay Running', async () => {
    await addNode('edge-1');
    await eventually('edge-1 is Ready=Unknown', async () => (await ready('edge-1'))?.status === 'Unknown');
    const cond = await ready('edge-1');
    assert.equal(cond?.reason, 'NodeStatusUnknown');
    assert.equal(cond?.message, 'Kubelet stopped posting node status.');
    const memory = ((await getNode('edge-1'))['status'] as { conditions: Condition[] }).conditions.find(
      (c) => c.type === 'MemoryPressure',
    );
    assert.equal(memory?.status, 'Unknown');
    await eventually('edge-1 has both unreachable taints', async () => {
      const list = await taints('edge-1');
      return (
        list.includes('node.kubernetes.io/unreachable:NoSchedule') &&
        list.includes('node.kubernetes.io/unreachable:NoExecute')
      );
    });
    const pod = await t.cluster.get(Resources.pods, 'default', 'edge-1-app');
    assert.equal(pod.metadata.deletionTimestamp, undefined);
    assert.equal((pod['status'] as { phase: string }).phase, 'Running');
    assert.deepEqual((pod['status'] as { conditions: unknown[] }).conditions, [
      { type: 'Ready', status: 'True' },
    ]);
    await eventually(
      'a NodeNotReady event is recorded',
      async () => (await events('edge-1', 'NodeNotReady')).length === 1,
    );
  });

  it('a renewed Lease removes the taints, leaves Ready to the node, and recreates nothing', async () => {
    await eventually('edge-1 is tainted', async () => (await taints('edge-1')).length === 2);
    alive.add('edge-1');
    await renew('edge-1');
    await eventually('edge-1 has no taints', async () => (await taints('edge-1')).length === 0);
    assert.equal((await ready('edge-1'))?.status, 'Unknown');
    // The agent reports Ready again.
    const node = await getNode('edge-1');
    const status = node['status'] as { conditions: Condition[] };
    await t.cluster.update(
      Resources.nodes,
      {
        ...node,
        status: {
          ...status,
          conditions: status.conditions.map((c) =>
            c.type === 'Ready' ? { ...c, status: 'True', reason: 'KubeletReady' } : c,
          ),
        },
      },
      { subresource: 'status' },
    );
    await eventually(
      'a NodeReady event is recorded',
      async () => (await events('edge-1', 'NodeReady')).length === 1,
    );
    assert.deepEqual(await taints('edge-1'), []);
    assert.equal(
      (await t.cluster.list(Resources.pods, { fieldSelector: 'spec.nodeName=edge-1' })).items.length,
      1,
    );
  });

  it('with an autonomy duration, the pods of an unreachable node are deleted after it', async () => {
    await addNode('edge-2', { 'kedge.io/autonomy-duration': '1s' });
    await eventually('edge-2 is Ready=Unknown', async () => (await ready('edge-2'))?.status === 'Unknown');
    const unknownAt = Date.parse((await ready('edge-2'))?.lastTransitionTime ?? '');
    assert.equal(await podExists('edge-2-app'), true);
    await eventually('the pod of edge-2 is deleted', async () => !(await podExists('edge-2-app')));
    // Not before the autonomy duration counted from the (second-precision) transition time.
    assert.ok(Date.now() - unknownAt >= 1000, 'deleted too early');
    await eventually(
      'a DeletingAllPods event is recorded',
      async () => (await events('edge-2', 'DeletingAllPods')).length === 1,
    );
  });

  it('a node that reports Ready=False gets the not-ready taints, and loses them when Ready again', async () => {
    await addNode('edge-3');
    alive.add('edge-3');
    const setReady = async (value: 'True' | 'False'): Promise<void> => {
      const node = await getNode('edge-3');
      const status = node['status'] as { conditions: Condition[] };
      await t.cluster.update(
        Resources.nodes,
        {
          ...node,
          status: {
            ...status,
            conditions: status.conditions.map((c) => (c.type === 'Ready' ? { ...c, status: value } : c)),
          },
        },
        { subresource: 'status' },
      );
    };
    await setReady('False');
    await eventually('edge-3 has the not-ready taints', async () => {
      const list = await taints('edge-3');
      return (
        list.includes('node.kubernetes.io/not-ready:NoSchedule') &&
        list.includes('node.kubernetes.io/not-ready:NoExecute')
      );
    });
    await setReady('True');
    await eventually('edge-3 has no taints', async () => (await taints('edge-3')).length === 0);
    assert.equal(await podExists('edge-3-app'), true);
  });

  it('an autonomy duration that does not parse is reported, and no pod is deleted', async () => {
    await addNode('edge-4', { 'kedge.io/autonomy-duration': 'soon' });
    await eventually(
      'an InvalidAutonomyDuration warning is recorded',
      async () => (await events('edge-4', 'InvalidAutonomyDuration')).length === 1,
    );
    assert.equal(await podExists('edge-4-app'), true);
  });
});
