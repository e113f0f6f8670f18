// Edge sync with real processes on loopback: one `kedge server`, three `kedge agent`s (fake runtime), each
// reaching the server through its own fault proxy, and the real kubectl. Placement by node labels, a
// ConfigMap change reaching the node's local API, and a node cut off from the server: NotReady
// (Ready=Unknown) in the API but its pods kept (edge autonomy), deletes made meanwhile applied on the
// node after it reconnects, and Ready again.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../src/api/meta.ts';
import { RemoteCluster } from '../src/client/remote-cluster.ts';
import { Resources } from '../src/client/types.ts';
import { readKubeconfig, resolveKubeconfig } from '../src/lib/kubeconfig.ts';
import { type AgentProcess, startAgentProcess } from './harness/agent.ts';
import { FaultProxy } from './harness/fault-proxy.ts';
import { kubectlOk } from './harness/kubectl.ts';
import { waitUntil } from './harness/ready-pods.ts';
import { removeDir, type ServerProcess, startServerProcess } from './harness/server.ts';

const NODES = [
  { name: 'edge-a1', zone: 'a' },
  { name: 'edge-a2', zone: 'a' },
  { name: 'edge-b1', zone: 'b' },
] as const;

let server: ServerProcess;
let cluster: RemoteCluster;
const proxies = new Map<string, FaultProxy>();
const agents = new Map<string, AgentProcess>();

before(async () => {
  server = await startServerProcess();
  cluster = new RemoteCluster(resolveKubeconfig(await readKubeconfig(server.kubeconfig)));
  const token = (await readFile(join(server.dataDir, 'node-token'), 'utf8')).trim();
  const serverPort = Number(new URL(server.url).port);
  await Promise.all(
    NODES.map(async ({ name, zone }) => {
      const proxy = await FaultProxy.start({ targetPort: serverPort });
      proxies.set(name, proxy);
      agents.set(
        name,
        await startAgentProcess({
          server: proxy.url,
          token,
          nodeName: name,
          dataDir: join(server.dataDir, 'agents', name),
          extraArgs: ['--node-labels', `zone=${zone}`, '--runtime', 'fake', '--host-ip', '127.0.0.1'],
        }),
      );
    }),
  );
  await waitUntil(
    cluster,
    Resources.nodes,
    undefined,
    (nodes) =>
      NODES.every(({ name }) => readyOf(nodes.find((n) => n.metadata.name === name)) === 'True') || undefined,
  );
});

after(async () => {
  await Promise.all([...agents.values()].map((a) => a.stop()));
  for (const p of proxies.values()) await p.close();
  cluster?.close();
  await server?.stop();
  if (server !== undefined) await removeDir(server.dataDir);
});

function readyOf(node: KubeObject | undefined): string | undefined {
  const conditions = (node?.['status'] as { conditions?: Array<{ type: string; status: string }> })
    ?.conditions;
  return conditions?.find((c) => c.type === 'Ready')?.status;
}

const phaseOf = (pod: KubeObject): unknown => (pod['status'] as { phase?: unknown } | undefined)?.phase;
const nodeOf = (pod: KubeObject): unknown => (pod['spec'] as { nodeName?: unknown } | undefined)?.nodeName;

function localApi(node: string): string {
  const url = agents.get(node)?.localApi;
  assert.ok(url !== undefined, `agent ${node} serves no local API`);
  return url;
}

/**
 * Waits until `check` answers for the list at `path` on a node's local API: lists, checks, then waits
 * for the next watch event (no polling) and checks again. Fails with the last list after `timeoutMs`.
 */
async function untilLocal<T>(
  node: string,
  path: string,
  check: (items: KubeObject[]) => T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const signal = AbortSignal.timeout(timeoutMs);
  let last: KubeObject[] = [];
  while (!signal.aborted) {
    const list = (await (await fetch(`${localApi(node)}${path}`, { signal })).json()) as {
      items: KubeObject[];
      metadata: { resourceVersion: string };
    };
    last = list.items;
    const result = check(list.items);
    if (result !== undefined) return result;
    const rv = encodeURIComponent(list.metadata.resourceVersion);
    try {
      const res = await fetch(`${localApi(node)}${path}?watch=1&resourceVersion=${rv}`, { signal });
      const reader = res.body!.getReader();
      await reader.read(); // the first event (or the end of the watch)
      await reader.cancel();
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }
  const names = last.map((o) => `${o.metadata.name}@${o.metadata.deletionTimestamp ?? ''}`);
  throw new Error(`Timed out after ${timeoutMs} ms on ${node}${path}: ${JSON.stringify(names)}`);
}

async function kubectlJson(args: readonly string[]): Promise<{ items: KubeObject[] }> {
  return JSON.parse(await kubectlOk(server.kubeconfig, [...args, '-o', 'json'])) as { items: KubeObject[] };
}

const webManifest = (replicas: number, greeting: string): string => `
apiVersion: v1
kind: ConfigMap
metadata: { name: web-config, namespace: default }
data: { greeting: ${greeting} }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: default }
spec:
  replicas: ${replicas}
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      nodeSelector: { zone: a }
      containers:
        - name: web
          image: busybox
          envFrom: [{ configMapRef: { name: web-config } }]
      volumes:
        - name: config
          configMap: { name: web-config }
`;

describe('edge sync with real processes', () => {
  it('runs a Deployment with a nodeSelector only on matching nodes, Running as kubectl sees it', async () => {
    await kubectlOk(server.kubeconfig, ['apply', '-f', '-'], { input: webManifest(4, 'hello') });
    await waitUntil(
      cluster,
      Resources.pods,
      'default',
      (pods) => {
        const web = pods.filter((p) => p.metadata.labels?.['app'] === 'web');
        return web.length === 4 && web.every((p) => phaseOf(p) === 'Running') ? true : undefined;
      },
      60_000,
    );
    const pods = (await kubectlJson(['get', 'pods', '-l', 'app=web'])).items;
    assert.equal(pods.length, 4);
    for (const p of pods) {
      assert.equal(phaseOf(p), 'Running', `pod ${p.metadata.name}`);
      assert.ok(nodeOf(p) === 'edge-a1' || nodeOf(p) === 'edge-a2', `pod ${p.metadata.name} on ${nodeOf(p)}`);
    }
    // The zone=b node holds none of them, not even in its local store.
    const onB = await untilLocal('edge-b1', '/api/v1/namespaces/default/pods', (items) => items);
    assert.deepEqual(
      onB.map((p) => p.metadata.name),
      [],
    );
  });

  it('brings a changed ConfigMap a pod uses into the local store of the nodes that run it', async () => {
    const pods = (await kubectlJson(['get', 'pods', '-l', 'app=web'])).items;
    const nodes = [...new Set(pods.map((p) => String(nodeOf(p))))].sort();
    assert.ok(nodes.length > 0);
    await kubectlOk(server.kubeconfig, ['apply', '-f', '-'], { input: webManifest(4, 'changed') });
    for (const node of nodes) {
      await untilLocal(node, '/api/v1/namespaces/default/configmaps', (items) =>
        items.some(
          (c) =>
            c.metadata.name === 'web-config' &&
            (c['data'] as Record<string, string> | undefined)?.['greeting'] === 'changed',
        )
          ? true
          : undefined,
      );
    }
    // A node that runs no pod using it never gets it.
    const onB = await untilLocal('edge-b1', '/api/v1/namespaces/default/configmaps', (items) => items);
    assert.equal(
      onB.some((c) => c.metadata.name === 'web-config'),
      false,
    );
  });

  it('keeps a cut-off node and its pods (Ready=Unknown, not evicted), then applies the deletes made meanwhile and is Ready again', async () => {
    const node = 'edge-b1';
    const proxy = proxies.get(node)!;
    const manifest = ['keep', 'graceful', 'forced']
      .map(
        (name) => `
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: default }
spec:
  nodeName: ${node}
  containers: [{ name: app, image: busybox }]
`,
      )
      .join('---\n');
    await kubectlOk(server.kubeconfig, ['apply', '-f', '-'], { input: manifest });
    const names = ['forced', 'graceful', 'keep'];
    await waitUntil(
      cluster,
      Resources.pods,
      'default',
      (pods) =>
        names.every(
          (n) => phaseOf(pods.find((p) => p.metadata.name === n) ?? { metadata: {} }) === 'Running',
        ) || undefined,
    );
    await untilLocal(
      node,
      '/api/v1/namespaces/default/pods',
      (items) => items.filter((p) => names.includes(p.metadata.name ?? '')).length === 3 || undefined,
    );

    proxy.blackhole();
    await kubectlOk(server.kubeconfig, ['delete', 'pod', 'graceful', '--wait=false']);
    await kubectlOk(server.kubeconfig, ['delete', 'pod', 'forced', '--grace-period=0', '--force']);

    // The lease expires (40 s grace): Ready=Unknown, but nothing is evicted.
    await waitUntil(
      cluster,
      Resources.nodes,
      undefined,
      (nodes) => readyOf(nodes.find((n) => n.metadata.name === node)) === 'Unknown' || undefined,
      90_000,
    );
    const nodeView = await kubectlOk(server.kubeconfig, ['get', 'node', node]);
    assert.match(nodeView, /NotReady/);
    const during = (await cluster.list(Resources.pods, { namespace: 'default' })).items;
    const keep = during.find((p) => p.metadata.name === 'keep');
    assert.ok(keep !== undefined, 'the pod of an unreachable node must not be evicted');
    assert.equal(keep.metadata.deletionTimestamp, undefined);
    // kedge's API server has no graceful pod deletion yet: both deletes were immediate in the API.
    assert.deepEqual(
      during.filter((p) => p.metadata.name === 'graceful' || p.metadata.name === 'forced'),
      [],
    );
    // The node, cut off, still serves every pod from its local store.
    const offline = await untilLocal(node, '/api/v1/namespaces/default/pods', (items) => items);
    assert.deepEqual(offline.map((p) => p.metadata.name).sort(), names);

    proxy.lift();
    await untilLocal(node, '/api/v1/namespaces/default/pods', (items) => {
      const left = items.map((p) => p.metadata.name).sort();
      return left.length === 1 && left[0] === 'keep' ? true : undefined;
    });
    await waitUntil(
      cluster,
      Resources.nodes,
      undefined,
      (nodes) => readyOf(nodes.find((n) => n.metadata.name === node)) === 'True' || undefined,
      30_000,
    );
    const pods = (await kubectlJson(['get', 'pods'])).items;
    assert.equal(phaseOf(pods.find((p) => p.metadata.name === 'keep')!), 'Running');
    assert.ok(proxy.counters.up > 0 && proxy.counters.down > 0);
  });
});
