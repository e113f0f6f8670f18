// The real kubectl deleting with each propagation policy and deleting a namespace, against a kedge server
// that runs its controllers (garbage collector, namespace controller) in process.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type RunningServer, startServer } from '../src/cli/server.ts';
import { silentLogger } from '../src/lib/log.ts';
import { kubectl, kubectlOk } from './harness/kubectl.ts';
import { removeDir } from './harness/server.ts';

const deployment = (ns: string): string => `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ${ns}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
`;

const owned = (kind: string, apiVersion: string, name: string, uid: string): string =>
  `ownerReferences: [{apiVersion: ${apiVersion}, kind: ${kind}, name: ${name}, uid: ${uid}, controller: true, blockOwnerDeletion: true}]`;

describe('kubectl delete with the lifecycle controllers', { concurrency: false }, () => {
  let server: RunningServer;
  let kc: string;
  const k = (...args: string[]): Promise<string> => kubectlOk(kc, args);
  const kIn = (input: string, ...args: string[]): Promise<string> => kubectlOk(kc, args, { input });

  /** Deployment → ReplicaSet → Pod, linked by ownerReferences by hand, in a new namespace. */
  async function chain(ns: string): Promise<void> {
    await k('create', 'namespace', ns);
    await kIn(deployment(ns), 'apply', '-f', '-');
    const dUid = await k('get', 'deploy', 'web', '-n', ns, '-o', 'jsonpath={.metadata.uid}');
    await kIn(
      `apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-1, namespace: ${ns}, labels: {app: web}, ${owned('Deployment', 'apps/v1', 'web', dUid)}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
`,
      'apply',
      '-f',
      '-',
    );
    const rsUid = await k('get', 'rs', 'web-1', '-n', ns, '-o', 'jsonpath={.metadata.uid}');
    await kIn(
      `apiVersion: v1
kind: Pod
metadata: {name: web-1-a, namespace: ${ns}, labels: {app: web}, ${owned('ReplicaSet', 'apps/v1', 'web-1', rsUid)}}
spec:
  containers: [{name: web, image: nginx}]
`,
      'apply',
      '-f',
      '-',
    );
  }

  const gone = async (...args: string[]): Promise<boolean> => {
    const r = await kubectl(kc, ['get', ...args]);
    return r.code !== 0 && /NotFound|not found/.test(r.stderr);
  };

  before(async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kedge-lifecycle-'));
    server = await startServer({
      dataDir,
      listen: '127.0.0.1:0',
      logger: silentLogger(),
      startControllers: true,
    });
    kc = server.kubeconfigPath;
  });
  after(async () => {
    await server.close();
    await removeDir(server.dataDir);
  });

  it('--cascade=background (the default) deletes the ReplicaSet and its Pod after the Deployment', async () => {
    await chain('bg');
    await k('delete', 'deployment', 'web', '-n', 'bg');
    await k('wait', '--for=delete', 'rs/web-1', '-n', 'bg', '--timeout=30s');
    await k('wait', '--for=delete', 'pod/web-1-a', '-n', 'bg', '--timeout=30s');
    assert.ok(await gone('deploy', 'web', '-n', 'bg'));
  });

  it('--cascade=foreground returns once the Deployment is gone, its dependents already gone', async () => {
    await chain('fg');
    await k('delete', 'deployment', 'web', '-n', 'fg', '--cascade=foreground', '--timeout=60s');
    assert.ok(await gone('deploy', 'web', '-n', 'fg'));
    assert.ok(await gone('rs', 'web-1', '-n', 'fg'), 'the ReplicaSet went before its Deployment');
    assert.ok(await gone('pod', 'web-1-a', '-n', 'fg'), 'the Pod went before its ReplicaSet');
  });

  it('--cascade=orphan returns and leaves the ReplicaSet without an ownerReference', async () => {
    await chain('orphan');
    await k('delete', 'deployment', 'web', '-n', 'orphan', '--cascade=orphan', '--timeout=60s');
    assert.ok(await gone('deploy', 'web', '-n', 'orphan'));
    const rs = JSON.parse(await k('get', 'rs', 'web-1', '-n', 'orphan', '-o', 'json'));
    assert.equal(rs.metadata.ownerReferences, undefined);
    assert.equal(rs.metadata.finalizers, undefined);
    const pod = JSON.parse(await k('get', 'pod', 'web-1-a', '-n', 'orphan', '-o', 'json'));
    assert.equal(pod.metadata.ownerReferences[0].name, 'web-1');
  });

  it('delete namespace returns once the namespace and everything in it is gone', async () => {
    await chain('team');
    await k('create', 'configmap', 'settings', '-n', 'team', '--from-literal=a=1');
    const out = await k('delete', 'namespace', 'team', '--timeout=60s');
    assert.match(out, /namespace "team" deleted/);
    assert.ok(await gone('namespace', 'team'));
    const r = await kubectl(kc, ['get', 'configmaps,pods,rs,deploy', '-n', 'team', '-o', 'name']);
    assert.equal(r.stdout.trim(), '');
  });
});
