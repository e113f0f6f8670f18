import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestCluster, type TestCluster } from '../../../test/harness/cluster.ts';
import { type ReadyPods, startReadyPods, waitUntil } from '../../../test/harness/ready-pods.ts';
import type { KubeObject } from '../../api/meta.ts';
import { Informer, InformerFactory } from '../../client/informer.ts';
import { Resources } from '../../client/types.ts';
import { silentLogger } from '../../lib/log.ts';
import type { Deployment, ReplicaSet } from './common.ts';
import { DeploymentController } from './deployment.ts';
import { ReplicaSetController } from './replicaset.ts';

const NS = 'default';

function deployment(name: string, image: string, spec: Record<string, unknown> = {}): Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'c', image }] },
      },
      ...spec,
    },
  };
}

const ownedBy = (owner: KubeObject, items: KubeObject[]): KubeObject[] =>
  items.filter((i) => i.metadata.ownerReferences?.some((r) => r.uid === owner.metadata.uid && r.controller));

function rsSpec(rs: KubeObject): NonNullable<ReplicaSet['spec']> {
  return (rs as ReplicaSet).spec ?? {};
}

/** Wait until the Deployment is completely rolled out the way `kubectl rollout status` decides. */
async function rolledOut(tc: TestCluster, name: string): Promise<Deployment> {
  return waitUntil(tc.cluster, Resources.deployments, NS, (items) => {
    const d = items.find((i) => i.metadata.name === name) as Deployment | undefined;
    const s = d?.status;
    if (d === undefined || s === undefined) return undefined;
    const want = d.spec?.replicas ?? 1;
    const progressing = s.conditions?.find((c) => c.type === 'Progressing');
    const done =
      (s.observedGeneration ?? 0) >= (d.metadata.generation ?? 1) &&
      (s.updatedReplicas ?? 0) === want &&
      (s.replicas ?? 0) === want &&
      (s.availableReplicas ?? 0) === want &&
      progressing?.reason === 'NewReplicaSetAvailable';
    return done ? d : undefined;
  });
}

describe('Deployment controller', { concurrency: false }, () => {
  let tc: TestCluster;
  let informers: InformerFactory;
  let rsc: ReplicaSetController;
  let dc: DeploymentController;
  let ready: ReadyPods;

  before(async () => {
    tc = await startTestCluster();
    informers = new InformerFactory(tc.cluster, silentLogger());
    rsc = new ReplicaSetController({ cluster: tc.cluster, informers, logger: silentLogger() });
    dc = new DeploymentController({ cluster: tc.cluster, informers, logger: silentLogger() });
    informers.start();
    rsc.start();
    dc.start();
    ready = startReadyPods(tc.cluster, { bindTo: 'node-a' });
  });

  after(async () => {
    await ready.stop();
    await dc.stop();
    await rsc.stop();
    await informers.stop();
    await tc.close();
  });

  it('creates <name>-<hash> ReplicaSet and pods with pod-template-hash, and completes', async () => {
    const d = await tc.cluster.create(Resources.deployments, NS, deployment('web', 'nginx:1'));
    const done = await rolledOut(tc, 'web');
    assert.equal(done.metadata.annotations?.['deployment.kubernetes.io/revision'], '1');
    const available = done.status?.conditions?.find((c) => c.type === 'Available');
    assert.equal(available?.status, 'True');
    const sets = ownedBy(d, (await tc.cluster.list(Resources.replicasets, { namespace: NS })).items);
    assert.equal(sets.length, 1);
    const rs = sets[0]!;
    const hash = rs.metadata.labels?.['pod-template-hash'] ?? '';
    assert.match(hash, /^[bcdfghjklmnpqrstvwxz2456789]+$/);
    assert.equal(rs.metadata.name, `web-${hash}`);
    assert.deepEqual(rsSpec(rs).selector, { matchLabels: { app: 'web', 'pod-template-hash': hash } });
    assert.equal(rsSpec(rs).template?.metadata?.labels?.['pod-template-hash'], hash);
    assert.equal(rs.metadata.annotations?.['deployment.kubernetes.io/revision'], '1');
    const pods = ownedBy(rs, (await tc.cluster.list(Resources.pods, { namespace: NS })).items);
    assert.equal(pods.length, 3);
    for (const p of pods) assert.deepEqual(p.metadata.labels, { app: 'web', 'pod-template-hash': hash });
    const events = (await tc.cluster.list(Resources.events, { namespace: NS })).items.filter(
      (e) => e['reason'] === 'ScalingReplicaSet',
    );
    assert.ok(events.some((e) => e['message'] === `Scaled up replica set web-${hash} to 3 from 0`));
  });

  it('rolls out a new template within maxSurge, keeps history and reuses the old set on undo', async () => {
    const d = await tc.cluster.get<Deployment>(Resources.deployments, NS, 'web');
    const first = ownedBy(d, (await tc.cluster.list(Resources.replicasets, { namespace: NS })).items)[0]!;
    // Watch the sets during the rollout: desired pods never exceed replicas + maxSurge (3 + 1).
    const watch = new Informer<ReplicaSet>(tc.cluster, Resources.replicasets, silentLogger());
    let maxTotal = 0;
    const check = (): void => {
      const total = ownedBy(d, watch.list()).reduce((n, rs) => n + (rsSpec(rs).replicas ?? 0), 0);
      maxTotal = Math.max(maxTotal, total);
    };
    watch.onAdd(check);
    watch.onUpdate(check);
    watch.start();
    await watch.hasSynced();
    await tc.cluster.patch(Resources.deployments, NS, 'web', 'strategic', {
      spec: { template: { spec: { containers: [{ name: 'c', image: 'nginx:2' }] } } },
    });
    const done = await rolledOut(tc, 'web');
    await watch.stop();
    assert.ok(maxTotal <= 4, `at most 4 desired pods during the rollout, saw ${maxTotal}`);
    assert.equal(done.metadata.annotations?.['deployment.kubernetes.io/revision'], '2');
    const sets = ownedBy(d, (await tc.cluster.list(Resources.replicasets, { namespace: NS })).items);
    assert.equal(sets.length, 2);
    const old = sets.find((s) => s.metadata.uid === first.metadata.uid)!;
    assert.equal(rsSpec(old).replicas, 0);

    // kubectl rollout undo: the template of revision 1 goes back into the Deployment.
    const template = structuredClone(rsSpec(old).template!);
    delete template.metadata?.labels?.['pod-template-hash'];
    await tc.cluster.patch(Resources.deployments, NS, 'web', 'json', [
      { op: 'replace', path: '/spec/template', value: template },
    ]);
    const undone = await rolledOut(tc, 'web');
    assert.equal(undone.metadata.annotations?.['deployment.kubernetes.io/revision'], '3');
    const after = ownedBy(d, (await tc.cluster.list(Resources.replicasets, { namespace: NS })).items);
    assert.equal(after.length, 2, 'no third ReplicaSet: the old one is reused');
    const reused = after.find((s) => s.metadata.uid === first.metadata.uid)!;
    assert.equal(rsSpec(reused).replicas, 3);
    assert.equal(reused.metadata.annotations?.['deployment.kubernetes.io/revision'], '3');
    assert.equal(reused.metadata.annotations?.['deployment.kubernetes.io/revision-history'], '1');
  });

  it('scales the current ReplicaSet', async () => {
    await tc.cluster.patch(Resources.deployments, NS, 'web', 'merge', { spec: { replicas: 5 } });
    const done = await rolledOut(tc, 'web');
    assert.equal(done.status?.availableReplicas, 5);
    await tc.cluster.patch(Resources.deployments, NS, 'web', 'merge', { spec: { replicas: 1 } });
    const down = await rolledOut(tc, 'web');
    assert.equal(down.status?.replicas, 1);
  });

  it('Recreate scales old pods to zero before creating the new set', async () => {
    const d = await tc.cluster.create(
      Resources.deployments,
      NS,
      deployment('rec', 'nginx:1', { replicas: 2, strategy: { type: 'Recreate' } }),
    );
    await rolledOut(tc, 'rec');
    const watch = new Informer<ReplicaSet>(tc.cluster, Resources.replicasets, silentLogger());
    const oldAtCreate: number[] = [];
    watch.start();
    await watch.hasSynced();
    const existing = new Set(watch.list().map((rs) => rs.metadata.uid));
    watch.onAdd((rs) => {
      if (existing.has(rs.metadata.uid) || !ownedBy(d, [rs]).length) return;
      oldAtCreate.push(
        ownedBy(d, watch.list())
          .filter((s) => s.metadata.uid !== rs.metadata.uid)
          .reduce((n, s) => n + ((s as ReplicaSet).status?.replicas ?? 0) + (rsSpec(s).replicas ?? 0), 0),
      );
    });
    await tc.cluster.patch(Resources.deployments, NS, 'rec', 'strategic', {
      spec: { template: { spec: { containers: [{ name: 'c', image: 'nginx:2' }] } } },
    });
    await rolledOut(tc, 'rec');
    await watch.stop();
    assert.deepEqual(oldAtCreate, [0]);
  });

  it('a paused Deployment does not roll out until resumed', async () => {
    const d = await tc.cluster.create(
      Resources.deployments,
      NS,
      deployment('paused', 'nginx:1', { replicas: 1 }),
    );
    await rolledOut(tc, 'paused');
    await tc.cluster.patch(Resources.deployments, NS, 'paused', 'merge', { spec: { paused: true } });
    await waitUntil(tc.cluster, Resources.deployments, NS, (items) => {
      const s = (items.find((i) => i.metadata.name === 'paused') as Deployment).status;
      return s?.conditions?.some((c) => c.reason === 'DeploymentPaused') ? true : undefined;
    });
    await tc.cluster.patch(Resources.deployments, NS, 'paused', 'strategic', {
      spec: { template: { spec: { containers: [{ name: 'c', image: 'nginx:2' }] } } },
    });
    const paused = await waitUntil(tc.cluster, Resources.deployments, NS, (items) => {
      const x = items.find((i) => i.metadata.name === 'paused') as Deployment;
      return (x.status?.observedGeneration ?? 0) >= (x.metadata.generation ?? 1) ? x : undefined;
    });
    assert.equal(
      ownedBy(d, (await tc.cluster.list(Resources.replicasets, { namespace: NS })).items).length,
      1,
    );
    assert.equal(paused.metadata.annotations?.['deployment.kubernetes.io/revision'], '1');
    await tc.cluster.patch(Resources.deployments, NS, 'paused', 'merge', { spec: { paused: false } });
    const resumed = await rolledOut(tc, 'paused');
    assert.equal(resumed.metadata.annotations?.['deployment.kubernetes.io/revision'], '2');
  });

  it('reports ProgressDeadlineExceeded when new pods never become ready', async () => {
    ready.setShouldMarkReady((pod) => !(pod.metadata.name ?? '').startsWith('stuck-'));
    try {
      await tc.cluster.create(
        Resources.deployments,
        NS,
        deployment('stuck', 'nginx:1', { replicas: 1, progressDeadlineSeconds: 1 }),
      );
      const cond = await waitUntil(tc.cluster, Resources.deployments, NS, (items) => {
        const s = (items.find((i) => i.metadata.name === 'stuck') as Deployment).status;
        return s?.conditions?.find(
          (c) => c.type === 'Progressing' && c.reason === 'ProgressDeadlineExceeded',
        );
      });
      assert.equal(cond.status, 'False');
      assert.match(cond.message ?? '', /has timed out progressing/);
    } finally {
      ready.setShouldMarkReady(() => true);
    }
    // Once pods are ready the rollout completes after all.
    await rolledOut(tc, 'stuck');
  });

  it('keeps at most revisionHistoryLimit old ReplicaSets', async () => {
    const d = await tc.cluster.create(
      Resources.deployments,
      NS,
      deployment('hist', 'nginx:1', { replicas: 1, revisionHistoryLimit: 1 }),
    );
    for (const image of ['nginx:2', 'nginx:3', 'nginx:4']) {
      await rolledOut(tc, 'hist');
      await tc.cluster.patch(Resources.deployments, NS, 'hist', 'strategic', {
        spec: { template: { spec: { containers: [{ name: 'c', image }] } } },
      });
    }
    await rolledOut(tc, 'hist');
    const sets = await waitUntil(tc.cluster, Resources.replicasets, NS, (items) => {
      const mine = ownedBy(d, items);
      return mine.length === 2 ? mine : undefined;
    });
    const revisions = sets.map((s) => s.metadata.annotations?.['deployment.kubernetes.io/revision']).sort();
    assert.deepEqual(revisions, ['3', '4']);
  });
});
