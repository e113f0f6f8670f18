// The real kubectl deleting with each propagation policy and deleting a namespace, against a kedge server
// that runs its controllers (garbage collector, namespace controller) in process.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type RunningServer, startServer } from '../src/cli/server.ts';
import { silentLogger } from '../src/lib/log.ts';
import { kubectl, kubectlOk } from './harness/kubectl.ts';
import { removeDir } from './harness/server.ts';

const deployment = (ns: string): string => `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ${ns}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
`;

describe('kubectl delete with the lifecycle controllers', { concurrency: false }, () => {
  let server: RunningServer;
  let kc: string;
  const k = (...args: string[]): Promise<string> => kubectlOk(kc, args);
  const kIn = (input: string, ...args: string[]): Promise<string> => kubectlOk(kc, args, { input });

  /** A Deployment whose ReplicaSet and Pods the workload controllers made, in a new namespace; returns the ReplicaSet's name. */
  async function chain(ns: string): Promise<string> {
    await k('create', 'namespace', ns);
    await kIn(deployment(ns), 'apply', '-f', '-');
    for (let i = 0; ; i++) {
      const pods = await k('get', 'pods', '-n', ns, '-l', 'app=web', '-o', 'name');
      if (pods.trim().split('\n').filter(Boolean).length === 2) break;
      assert.ok(i < 300, 'the workload controllers did not create the pods');
      await delay(50);
    }
    return (await k('get', 'rs', '-n', ns, '-o', 'jsonpath={.items[0].metadata.name}')).trim();
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
    const rs = await chain('bg');
    await k('delete', 'deployment', 'web', '-n', 'bg');
    await k('wait', '--for=delete', `rs/${rs}`, '-n', 'bg', '--timeout=30s');
    await k('wait', '--for=delete', 'pods', '-l', 'app=web', '-n', 'bg', '--timeout=30s');
    assert.ok(await gone('deploy', 'web', '-n', 'bg'));
  });

  it('--cascade=foreground returns once the Deployment is gone, its dependents already gone', async () => {
    const rs = await chain('fg');
    await k('delete', 'deployment', 'web', '-n', 'fg', '--cascade=foreground', '--timeout=60s');
    assert.ok(await gone('deploy', 'web', '-n', 'fg'));
    assert.ok(await gone('rs', rs, '-n', 'fg'), 'the ReplicaSet went before its Deployment');
    assert.equal(
      (await k('get', 'pods', '-n', 'fg', '-o', 'name')).trim(),
      '',
      'the Pods went before their ReplicaSet',
    );
  });

  it('--cascade=orphan returns and leaves the ReplicaSet without an ownerReference', async () => {
    const name = await chain('orphan');
    await k('delete', 'deployment', 'web', '-n', 'orphan', '--cascade=orphan', '--timeout=60s');
    assert.ok(await gone('deploy', 'web', '-n', 'orphan'));
    const rs = JSON.parse(await k('get', 'rs', name, '-n', 'orphan', '-o', 'json'));
    assert.equal(rs.metadata.ownerReferences, undefined);
    assert.equal(rs.metadata.finalizers, undefined);
    const pods = JSON.parse(await k('get', 'pods', '-n', 'orphan', '-l', 'app=web', '-o', 'json'));
    assert.equal(pods.items.length, 2);
    for (const pod of pods.items) assert.equal(pod.metadata.ownerReferences[0].name, name);
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
