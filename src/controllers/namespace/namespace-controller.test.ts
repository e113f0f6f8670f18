import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { startTestCluster, type TestCluster } from '../../../test/harness/cluster.ts';
import { cronTabCrdExample } from '../../api/crd/index.ts';
import type { KubeObject } from '../../api/meta.ts';
import { isApiError } from '../../api/status-error.ts';
import { InformerFactory } from '../../client/informer.ts';
import { type ResourceRef, Resources } from '../../client/types.ts';
import { silentLogger } from '../../lib/log.ts';
import { type GarbageCollector, startGarbageCollector } from '../gc/garbage-collector.ts';
import { type NamespaceController, startNamespaceController } from './namespace-controller.ts';

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await delay(10);
  }
}

describe('namespace controller', () => {
  let t: TestCluster;
  let factory: InformerFactory;
  let controller: NamespaceController;
  let gc: GarbageCollector | undefined;
  let crontabs: ResourceRef;

  const exists = async (ref: ResourceRef, namespace: string | undefined, name: string): Promise<boolean> => {
    try {
      await t.cluster.get(ref, namespace, name);
      return true;
    } catch (err) {
      if (isApiError(err, 404)) return false;
      throw err;
    }
  };

  before(async () => {
    t = await startTestCluster();
    const crd = cronTabCrdExample();
    await t.cluster.create(Resources.customresourcedefinitions, undefined, crd as unknown as KubeObject);
    const version = crd.spec.versions.find((v) => v.storage)?.name ?? 'v1';
    crontabs = { group: 'stable.example.com', version, resource: 'crontabs' };
    factory = new InformerFactory(t.cluster, silentLogger());
    controller = startNamespaceController({
      cluster: t.cluster,
      factory,
      logger: silentLogger(),
      recheckMs: 20,
    });
    factory.start();
    await factory.waitForSync();
  });
  after(async () => {
    await controller.stop();
    await gc?.stop();
    await factory.stop();
    await t.close();
  });

  async function fill(namespace: string): Promise<void> {
    const c = t.cluster;
    await c.create(Resources.namespaces, undefined, { metadata: { name: namespace } });
    await c.create(Resources.configmaps, namespace, { metadata: { name: 'cm' }, data: { a: '1' } });
    await c.create(Resources.secrets, namespace, { metadata: { name: 's' }, stringData: { p: 'x' } });
    await c.create(Resources.pods, namespace, {
      metadata: { name: 'p' },
      spec: { containers: [{ name: 'c', image: 'nginx' }] },
    });
    await eventually('the CronTab type is served', async () => {
      try {
        await c.create(crontabs, namespace, {
          apiVersion: `${crontabs.group}/${crontabs.version}`,
          kind: 'CronTab',
          metadata: { name: 'nightly' },
          spec: { cronSpec: '0 3 * * *', image: 'backup:1' },
        });
        return true;
      } catch (err) {
        if (isApiError(err, 404) && !err.message.includes('namespaces')) return false;
        throw err;
      }
    });
  }

  it('deletes configmaps, secrets, pods and custom resources, then the namespace', async () => {
    await fill('doomed');
    const answer = await t.cluster.delete(Resources.namespaces, undefined, 'doomed');
    assert.equal((answer['status'] as { phase: string }).phase, 'Terminating');
    await eventually(
      'the namespace is gone',
      async () => !(await exists(Resources.namespaces, undefined, 'doomed')),
    );
    for (const [ref, name] of [
      [Resources.configmaps, 'cm'],
      [Resources.secrets, 's'],
      [Resources.pods, 'p'],
      [crontabs, 'nightly'],
    ] as const) {
      assert.equal(
        (await t.cluster.list(ref, { namespace: 'doomed' })).items.length,
        0,
        `${ref.resource} left`,
      );
      assert.equal(await exists(ref, 'doomed', name), false);
    }
  });

  it('waits for content held by a finalizer before it finalizes the namespace', async () => {
    await fill('held');
    await t.cluster.patch(Resources.configmaps, 'held', 'cm', 'merge', {
      metadata: { finalizers: ['example.com/hold'] },
    });
    await t.cluster.delete(Resources.namespaces, undefined, 'held');
    await eventually(
      'the rest of the content is deleted',
      async () => !(await exists(Resources.secrets, 'held', 's')),
    );
    // Several rechecks happen meanwhile (recheckMs 20); the namespace must still be there.
    await eventually('the pod is deleted', async () => !(await exists(Resources.pods, 'held', 'p')));
    await delay(100);
    const ns = await t.cluster.get(Resources.namespaces, undefined, 'held');
    assert.deepEqual((ns['spec'] as { finalizers: string[] }).finalizers, ['kubernetes']);
    const cm = await t.cluster.get(Resources.configmaps, 'held', 'cm');
    assert.ok(cm.metadata.deletionTimestamp);
    await t.cluster.patch(Resources.configmaps, 'held', 'cm', 'merge', { metadata: { finalizers: null } });
    await eventually(
      'the namespace is gone',
      async () => !(await exists(Resources.namespaces, undefined, 'held')),
    );
  });

  it('with the garbage collector, a foreground-deleted owner inside the namespace does not block it', async () => {
    gc = startGarbageCollector({ cluster: t.cluster, factory, logger: silentLogger() });
    await t.cluster.create(Resources.namespaces, undefined, { metadata: { name: 'chain' } });
    const owner = await t.cluster.create<KubeObject>(Resources.configmaps, 'chain', {
      metadata: { name: 'owner' },
    });
    await t.cluster.create(Resources.configmaps, 'chain', {
      metadata: {
        name: 'dep',
        ownerReferences: [
          {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            name: 'owner',
            uid: owner.metadata.uid ?? '',
            blockOwnerDeletion: true,
          },
        ],
      },
    });
    await t.cluster.delete(Resources.configmaps, 'chain', 'owner', { propagationPolicy: 'Foreground' });
    await t.cluster.delete(Resources.namespaces, undefined, 'chain');
    await eventually(
      'the namespace is gone',
      async () => !(await exists(Resources.namespaces, undefined, 'chain')),
    );
    assert.equal((await t.cluster.list(Resources.configmaps, { namespace: 'chain' })).items.length, 0);
  });

  it('leaves namespaces that are not being deleted alone', async () => {
    await t.cluster.create(Resources.namespaces, undefined, { metadata: { name: 'alive' } });
    await t.cluster.create(Resources.configmaps, 'alive', { metadata: { name: 'cm' } });
    // A namespace deleted afterwards and gone proves the controller has run since.
    await t.cluster.create(Resources.namespaces, undefined, { metadata: { name: 'marker' } });
    await t.cluster.delete(Resources.namespaces, undefined, 'marker');
    await eventually(
      'the marker namespace is gone',
      async () => !(await exists(Resources.namespaces, undefined, 'marker')),
    );
    assert.equal(await exists(Resources.configmaps, 'alive', 'cm'), true);
    assert.equal(await exists(Resources.namespaces, undefined, 'alive'), true);
  });
});
