// The real kubectl (1.32 via Debian's dispatcher) drives Deployments and DaemonSets on an in-process
// kedge server (HTTPS, real PKI) with the workload controllers running on a LocalCluster beside it.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalCluster } from '../src/apiserver/local-cluster.ts';
import { type RunningServer, startServer } from '../src/cli/server.ts';
import { InformerFactory } from '../src/client/informer.ts';
import { Resources } from '../src/client/types.ts';
import { startWorkloadControllers } from '../src/controllers/workloads/index.ts';
import { silentLogger } from '../src/lib/log.ts';
import { kubectlOk } from './harness/kubectl.ts';
import { type ReadyPods, startReadyPods, waitUntil } from './harness/ready-pods.ts';
import { removeDir } from './harness/server.ts';

const deployment = (image: string): string => `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: ${image}}
`;

const daemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {kedge.io/edge: "true"}
      containers:
      - {name: agent, image: agent:1}
`;

const node = (name: string): string => `apiVersion: v1
kind: Node
metadata: {name: ${name}, labels: {kedge.io/edge: "true"}}
`;

describe('kubectl drives workloads', { concurrency: false }, () => {
  let dir: string;
  let server: RunningServer;
  let cluster: LocalCluster;
  let informers: InformerFactory;
  let controllers: { stop(): Promise<void> };
  let ready: ReadyPods;
  const k = (...args: string[]): Promise<string> => kubectlOk(server.kubeconfigPath, args);
  const kIn = (input: string, ...args: string[]): Promise<string> =>
    kubectlOk(server.kubeconfigPath, args, { input });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kedge-workloads-'));
    // The server's own controllers stay off: this test runs the workload controllers itself (two sets
    // would fight over the same ReplicaSets: pods created and deleted in a loop).
    server = await startServer({
      dataDir: dir,
      listen: '127.0.0.1:0',
      logger: silentLogger(),
      startControllers: false,
    });
    cluster = new LocalCluster(server.api.storage);
    informers = new InformerFactory(cluster, silentLogger());
    controllers = startWorkloadControllers({ cluster, informers, logger: silentLogger() });
    ready = startReadyPods(cluster, { bindTo: 'edge-1' });
  });

  after(async () => {
    await ready?.stop();
    await controllers?.stop();
    await informers?.stop();
    await server?.close();
    await removeDir(dir);
  });

  const podsOf = async (selector: string): Promise<Array<Record<string, unknown>>> =>
    (
      JSON.parse(await k('get', 'pods', '-l', selector, '-o', 'json')) as {
        items: Array<Record<string, unknown>>;
      }
    ).items;

  it('apply creates the ReplicaSet and pods; rollout status returns', async () => {
    await kIn(deployment('nginx:1.27'), 'apply', '-f', '-');
    const out = await k('rollout', 'status', 'deployment/web', '--timeout=60s');
    assert.match(out, /successfully rolled out/);
    const pods = await podsOf('app=web');
    assert.equal(pods.length, 3);
    const rs = JSON.parse(await k('get', 'rs', '-l', 'app=web', '-o', 'json')) as {
      items: Array<{ metadata: { name: string; labels: Record<string, string> } }>;
    };
    assert.equal(rs.items.length, 1);
    const rsName = rs.items[0]!.metadata.name;
    assert.equal(rsName, `web-${rs.items[0]!.metadata.labels['pod-template-hash']}`);
    for (const p of pods) {
      const meta = p['metadata'] as {
        labels: Record<string, string>;
        ownerReferences: Array<Record<string, unknown>>;
      };
      assert.equal(meta.labels['app'], 'web');
      assert.equal(meta.ownerReferences[0]?.['name'], rsName);
      assert.equal(meta.ownerReferences[0]?.['controller'], true);
    }
    const wide = await k('get', 'deploy', 'web');
    assert.match(wide, /web\s+3\/3\s+3\s+3/);
    const described = await k('describe', 'deployment', 'web');
    assert.match(described, /ScalingReplicaSet/);
    assert.match(described, /NewReplicaSetAvailable/);
  });

  it('set image rolls out a new ReplicaSet; rollout undo goes back to the first one', async () => {
    const firstRs = (
      await k('get', 'rs', '-l', 'app=web', '-o', 'jsonpath={.items[0].metadata.name}')
    ).trim();
    await k('set', 'image', 'deployment/web', 'web=nginx:1.28');
    assert.match(await k('rollout', 'status', 'deployment/web', '--timeout=60s'), /successfully rolled out/);
    const images = (await podsOf('app=web')).map(
      (p) => (p['spec'] as { containers: Array<{ image: string }> }).containers[0]?.image ?? '',
    );
    assert.deepEqual(images, ['nginx:1.28', 'nginx:1.28', 'nginx:1.28']);
    const history = await k('rollout', 'history', 'deployment/web');
    assert.match(history, /^1\s/m);
    assert.match(history, /^2\s/m);

    await k('rollout', 'undo', 'deployment/web');
    assert.match(await k('rollout', 'status', 'deployment/web', '--timeout=60s'), /successfully rolled out/);
    const sets = JSON.parse(await k('get', 'rs', '-l', 'app=web', '-o', 'json')) as {
      items: Array<{
        metadata: { name: string; annotations: Record<string, string> };
        spec: { replicas: number };
      }>;
    };
    assert.equal(sets.items.length, 2);
    const active = sets.items.find((s) => s.spec.replicas === 3)!;
    assert.equal(active.metadata.name, firstRs);
    assert.equal(active.metadata.annotations['deployment.kubernetes.io/revision'], '3');
    const after = (await podsOf('app=web')).map(
      (p) => (p['spec'] as { containers: Array<{ image: string }> }).containers[0]?.image ?? '',
    );
    assert.deepEqual(after, ['nginx:1.27', 'nginx:1.27', 'nginx:1.27']);
  });

  it('rollout restart makes a new ReplicaSet; scale changes the pod count', async () => {
    await k('rollout', 'restart', 'deployment/web');
    assert.match(await k('rollout', 'status', 'deployment/web', '--timeout=60s'), /successfully rolled out/);
    const sets = (await k('get', 'rs', '-l', 'app=web', '-o', 'name')).trim().split('\n');
    assert.equal(sets.length, 3);
    await k('scale', 'deployment/web', '--replicas=5');
    assert.match(await k('rollout', 'status', 'deployment/web', '--timeout=60s'), /successfully rolled out/);
    await waitUntil(cluster, Resources.pods, 'default', (items) =>
      items.filter((p) => p.metadata.labels?.['app'] === 'web').length === 5 ? true : undefined,
    );
    await k('scale', 'deployment/web', '--replicas=1');
    await waitUntil(cluster, Resources.pods, 'default', (items) =>
      items.filter((p) => p.metadata.labels?.['app'] === 'web').length === 1 ? true : undefined,
    );
  });

  it('DaemonSet pods follow nodes joining and leaving; rollout status returns', async () => {
    await kIn(node('edge-1') + '---\n' + node('edge-2'), 'apply', '-f', '-');
    await kIn(daemonSet, 'apply', '-f', '-');
    assert.match(await k('rollout', 'status', 'ds/agent', '--timeout=60s'), /successfully rolled out/);
    const onNodes = async (): Promise<string> =>
      (await k('get', 'pods', '-l', 'app=agent', '-o', 'jsonpath={.items[*].spec.nodeName}'))
        .trim()
        .split(/\s+/)
        .sort()
        .join(' ');
    assert.equal(await onNodes(), 'edge-1 edge-2');
    await kIn(node('edge-3'), 'apply', '-f', '-');
    await waitUntil(cluster, Resources.pods, 'default', (items) =>
      items.filter((p) => p.metadata.labels?.['app'] === 'agent').length === 3 ? true : undefined,
    );
    assert.equal(await onNodes(), 'edge-1 edge-2 edge-3');
    await k('delete', 'node', 'edge-2');
    await waitUntil(cluster, Resources.pods, 'default', (items) =>
      items.filter((p) => p.metadata.labels?.['app'] === 'agent').length === 2 ? true : undefined,
    );
    assert.equal(await onNodes(), 'edge-1 edge-3');
    await k('set', 'image', 'ds/agent', 'agent=agent:2');
    assert.match(await k('rollout', 'status', 'ds/agent', '--timeout=60s'), /successfully rolled out/);
    assert.match(await k('rollout', 'history', 'ds/agent'), /^2\s/m);
    const ds = await k('get', 'ds', 'agent');
    assert.match(ds, /agent\s+2\s+2\s+2\s+2\s+2/);
  });
});
