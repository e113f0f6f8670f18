import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { startTestCluster, type TestCluster } from '../../../test/harness/cluster.ts';
import { cronTabCrdExample } from '../../api/crd/index.ts';
import type { KubeObject, OwnerReference } from '../../api/meta.ts';
import { isApiError } from '../../api/status-error.ts';
import { InformerFactory } from '../../client/informer.ts';
import { type ResourceRef, Resources } from '../../client/types.ts';
import { silentLogger } from '../../lib/log.ts';
import { type GarbageCollector, startGarbageCollector } from './garbage-collector.ts';

/** Re-check a condition until it holds (or fail after 10s, naming it). */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await delay(10);
  }
}

const labels = { app: 'web' };
const podTemplate = { metadata: { labels }, spec: { containers: [{ name: 'c', image: 'nginx' }] } };

function ownerRef(owner: KubeObject, extra: Partial<OwnerReference> = {}): OwnerReference {
  return {
    apiVersion: owner.apiVersion ?? '',
    kind: owner.kind ?? '',
    name: owner.metadata.name ?? '',
    uid: owner.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
    ...extra,
  };
}

describe('garbage collector', () => {
  let t: TestCluster;
  let factory: InformerFactory;
  let gc: GarbageCollector;
  let ns = 0;

  const exists = async (ref: ResourceRef, namespace: string | undefined, name: string): Promise<boolean> => {
    try {
      await t.cluster.get(ref, namespace, name);
      return true;
    } catch (err) {
      if (isApiError(err, 404)) return false;
      throw err;
    }
  };

  /** A Deployment → ReplicaSet → two Pods chain built by hand, in a fresh namespace. */
  async function chain(): Promise<{
    namespace: string;
    deploy: KubeObject;
    rs: KubeObject;
    pods: KubeObject[];
  }> {
    const namespace = `gc-${++ns}`;
    const c = t.cluster;
    await c.create(Resources.namespaces, undefined, { metadata: { name: namespace } });
    const deploy = await c.create(Resources.deployments, namespace, {
      metadata: { name: 'web' },
      spec: { replicas: 2, selector: { matchLabels: labels }, template: podTemplate },
    });
    const rs = await c.create(Resources.replicasets, namespace, {
      metadata: { name: 'web-1', labels, ownerReferences: [ownerRef(deploy)] },
      spec: { replicas: 2, selector: { matchLabels: labels }, template: podTemplate },
    });
    const pods: KubeObject[] = [];
    for (const name of ['web-1-a', 'web-1-b']) {
      pods.push(
        await c.create(Resources.pods, namespace, {
          metadata: { name, labels, ownerReferences: [ownerRef(rs)] },
          spec: podTemplate.spec,
        }),
      );
    }
    return { namespace, deploy, rs, pods };
  }

  before(async () => {
    t = await startTestCluster();
    // An orphan from before the collector started: its owner never existed.
    await t.cluster.create(Resources.configmaps, 'default', {
      metadata: {
        name: 'stale',
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'never', uid: 'no-such-uid' }],
      },
    });
    factory = new InformerFactory(t.cluster, silentLogger());
    gc = startGarbageCollector({ cluster: t.cluster, factory, logger: silentLogger() });
    factory.start();
    await factory.waitForSync();
  });
  after(async () => {
    await gc.stop();
    await factory.stop();
    await t.close();
  });

  it('collects dependents whose owner was gone before it started', async () => {
    await eventually(
      'the stale ConfigMap is collected',
      async () => !(await exists(Resources.configmaps, 'default', 'stale')),
    );
  });

  it('background: deleting the Deployment deletes its ReplicaSet, then its Pods', async () => {
    const { namespace, pods } = await chain();
    await t.cluster.delete(Resources.deployments, namespace, 'web', { propagationPolicy: 'Background' });
    assert.equal(await exists(Resources.deployments, namespace, 'web'), false);
    await eventually(
      'the ReplicaSet is gone',
      async () => !(await exists(Resources.replicasets, namespace, 'web-1')),
    );
    for (const pod of pods) {
      await eventually(
        `pod ${pod.metadata.name} is gone`,
        async () => !(await exists(Resources.pods, namespace, pod.metadata.name ?? '')),
      );
    }
  });

  it('foreground: Pods go first, then the ReplicaSet, then the Deployment', async () => {
    const { namespace } = await chain();
    const start = String(await t.api.storage.store.currentRevision());
    const deleted = new Map<string, number>();
    const abort = new AbortController();
    const watching = Promise.all(
      [Resources.pods, Resources.replicasets, Resources.deployments].map(async (ref) => {
        for await (const ev of t.cluster.watch(ref, {
          namespace,
          resourceVersion: start,
          signal: abort.signal,
        })) {
          if (ev.type === 'DELETED')
            deleted.set(ev.object.metadata.name ?? '', Number(ev.object.metadata.resourceVersion));
        }
      }),
    );
    const answer = await t.cluster.delete(Resources.deployments, namespace, 'web', {
      propagationPolicy: 'Foreground',
    });
    assert.ok(answer.metadata.finalizers?.includes('foregroundDeletion'));
    assert.ok(answer.metadata.deletionTimestamp);
    await eventually(
      'the Deployment is gone',
      async () => !(await exists(Resources.deployments, namespace, 'web')),
    );
    await eventually('every delete was watched', async () => deleted.size === 4);
    abort.abort();
    await watching;
    const at = (name: string): number => deleted.get(name) ?? Number.NaN;
    assert.ok(at('web-1-a') < at('web-1'), 'pod a before its ReplicaSet');
    assert.ok(at('web-1-b') < at('web-1'), 'pod b before its ReplicaSet');
    assert.ok(at('web-1') < at('web'), 'ReplicaSet before its Deployment');
  });

  it('orphan: the Deployment goes, the ReplicaSet stays without its ownerReference, Pods stay owned', async () => {
    const { namespace, rs } = await chain();
    const answer = await t.cluster.delete(Resources.deployments, namespace, 'web', {
      propagationPolicy: 'Orphan',
    });
    assert.ok(answer.metadata.finalizers?.includes('orphan'));
    await eventually(
      'the Deployment is gone',
      async () => !(await exists(Resources.deployments, namespace, 'web')),
    );
    const left = await t.cluster.get(Resources.replicasets, namespace, 'web-1');
    assert.equal(left.metadata.uid, rs.metadata.uid);
    assert.equal(left.metadata.ownerReferences, undefined);
    const pod = await t.cluster.get(Resources.pods, namespace, 'web-1-a');
    assert.equal(pod.metadata.ownerReferences?.[0]?.uid, rs.metadata.uid);
  });

  it('keeps a dependent that another owner still holds, and drops the gone owner from it', async () => {
    const { namespace, rs } = await chain();
    const other: KubeObject = await t.cluster.create(Resources.configmaps, namespace, {
      metadata: { name: 'other-owner' },
    });
    await t.cluster.create(Resources.configmaps, namespace, {
      metadata: { name: 'shared', ownerReferences: [ownerRef(rs), ownerRef(other, { controller: false })] },
    });
    await t.cluster.delete(Resources.replicasets, namespace, 'web-1');
    await eventually('the gone owner is dropped', async () => {
      const shared = await t.cluster.get(Resources.configmaps, namespace, 'shared');
      return shared.metadata.ownerReferences?.length === 1;
    });
    const shared = await t.cluster.get(Resources.configmaps, namespace, 'shared');
    assert.equal(shared.metadata.ownerReferences?.[0]?.uid, other.metadata.uid);
    await eventually(
      'the pods of the ReplicaSet are gone',
      async () => !(await exists(Resources.pods, namespace, 'web-1-a')),
    );
  });

  it('treats an owner replaced by a new object of the same name (uid mismatch) as gone', async () => {
    const owner = await t.cluster.create(Resources.configmaps, 'default', { metadata: { name: 'owner-v1' } });
    await t.cluster.create(Resources.configmaps, 'default', {
      metadata: { name: 'dep-of-v1', ownerReferences: [{ ...ownerRef(owner), uid: 'the-old-uid' }] },
    });
    await eventually(
      'the dependent is collected',
      async () => !(await exists(Resources.configmaps, 'default', 'dep-of-v1')),
    );
    assert.equal(await exists(Resources.configmaps, 'default', 'owner-v1'), true);
  });

  it('collects dependents of a custom resource (CRD types are followed as they appear)', async () => {
    const crd = cronTabCrdExample();
    await t.cluster.create(Resources.customresourcedefinitions, undefined, crd as unknown as KubeObject);
    const version = crd.spec.versions.find((v) => v.storage)?.name ?? 'v1';
    const crontabs: ResourceRef = { group: 'stable.example.com', version, resource: 'crontabs' };
    let owner: KubeObject | undefined;
    await eventually('the CronTab type is served', async () => {
      try {
        owner = await t.cluster.create(crontabs, 'default', {
          apiVersion: `stable.example.com/${version}`,
          kind: 'CronTab',
          metadata: { name: 'nightly' },
          spec: { cronSpec: '0 3 * * *', image: 'backup:1' },
        });
        return true;
      } catch (err) {
        if (isApiError(err, 404)) return false;
        throw err;
      }
    });
    await t.cluster.create(Resources.configmaps, 'default', {
      metadata: { name: 'crontab-config', ownerReferences: [ownerRef(owner!)] },
    });
    // Still owned: the collector must not take it while the owner lives.
    await t.cluster.delete(crontabs, 'default', 'nightly');
    await eventually(
      'the dependent of the CronTab is collected',
      async () => !(await exists(Resources.configmaps, 'default', 'crontab-config')),
    );
  });

  it('never collects a dependent whose owner exists', async () => {
    const owner = await t.cluster.create(Resources.configmaps, 'default', { metadata: { name: 'alive' } });
    await t.cluster.create(Resources.configmaps, 'default', {
      metadata: { name: 'kept', ownerReferences: [ownerRef(owner)] },
    });
    // A later collection proves the collector has looked at 'kept' (one queue, keys in order).
    await t.cluster.create(Resources.configmaps, 'default', {
      metadata: {
        name: 'marker',
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'x', uid: 'x' }],
      },
    });
    await eventually(
      'the marker is collected',
      async () => !(await exists(Resources.configmaps, 'default', 'marker')),
    );
    assert.equal(await exists(Resources.configmaps, 'default', 'kept'), true);
  });
});
