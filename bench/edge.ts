/**
 * Edge benchmark: `node bench/edge.ts [NODES]` (default 1,000). Env KEDGE_BENCH_IDLE_SECONDS (default 60)
 * sets the idle window.
 *
 * Against a real `kedge server` process (its own data dir and port):
 * 1. wire bytes of one idle `kedge agent` process (fake runtime) through a byte-counting TCP proxy, over
 *    an idle window after sync, extrapolated to an hour (TLS records both ways, TCP/IP headers not);
 * 2. wire bytes to deliver one pod with a ConfigMap and get its Running status back;
 * 3. change-to-edge latency: a ConfigMap the node's pod uses is patched 200 times, each time until the
 *    agent's node-local API delivers the change on a watch;
 * 4. the agent's RSS (/proc/PID/status VmRSS) idle with 0 and with 10 pods;
 * 5. NODES nodes joined through the join endpoint, each the real agent Session on its own SQLite store
 *    in this process, one pod each; the server is restarted (SIGTERM, same data dir and port) and the
 *    time until every node is connected and synced again and what was resent are measured.
 * Prints a table and writes bench/results/edge.json.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeObject } from '../src/api/meta.ts';
import { RemoteCluster } from '../src/client/remote-cluster.ts';
import { type ResourceRef, Resources } from '../src/client/types.ts';
import { readKubeconfig, resolveKubeconfig } from '../src/lib/kubeconfig.ts';
import { startAgentProcess } from '../test/harness/agent.ts';
import { type ServerProcess, startServerProcess } from '../test/harness/server.ts';
import { type ByteCounts, bytesBetween, startByteProxy } from './lib/byte-proxy.ts';
import { httpWatch } from './lib/http-watch.ts';
import { createRecorder, percentile, rssMiB } from './lib/measure.ts';
import { inParallel, joinNodes, type SwarmNode, startSwarm, stopSwarm } from './lib/node-swarm.ts';
import { stripToJs } from './lib/strip-to-js.ts';

const NODES = Number(process.argv[2] ?? 1000);
const IDLE_SECONDS = Number(process.env['KEDGE_BENCH_IDLE_SECONDS'] ?? 60);
const PATCHES = 200;
const NS = 'default';
const EDGE_NODE = 'bench-edge';
if (!Number.isSafeInteger(NODES) || NODES < 1)
  throw new TypeError(`NODES must be a positive integer, got ${process.argv[2]}`);

const { rows, record } = createRecorder(64);

/** Resolves with the first state of the named object (current or future) that satisfies `ok`. */
async function waitForObject(
  api: RemoteCluster,
  ref: ResourceRef,
  namespace: string | undefined,
  name: string,
  ok: (o: KubeObject) => boolean,
): Promise<KubeObject> {
  const abort = new AbortController();
  try {
    for (;;) {
      for await (const e of api.watch(ref, {
        ...(namespace === undefined ? {} : { namespace }),
        fieldSelector: `metadata.name=${name}`,
        resourceVersion: '0',
        signal: abort.signal,
      })) {
        if (e.type !== 'BOOKMARK' && e.type !== 'DELETED' && ok(e.object)) return e.object;
      }
    }
  } finally {
    abort.abort();
  }
}

/** Starts `kedge agent` from `main`, waits until it is connected, lets it settle 20 s, returns its VmRSS. */
async function freshAgentRss(main: string, nodeName: string, server: string, token: string): Promise<number> {
  const args = [main, 'agent', '--server', server, '--token', token, '--node-name', nodeName];
  const child = spawn(
    process.execPath,
    [
      ...args,
      '--data-dir',
      join(dir, nodeName),
      '--local-api',
      '127.0.0.1:0',
      '--mqtt-listen',
      '127.0.0.1:0',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let errors = '';
  child.stderr.on('data', (chunk: Buffer) => {
    errors = (errors + chunk.toString()).slice(-2000);
  });
  const exited = once(child, 'exit');
  try {
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (line.includes('"msg":"connected to hub"')) resolve();
        if (line.includes('"level":50') || line.includes('"level":60'))
          errors = `${errors}${line}\n`.slice(-2000);
      });
      void exited.then(([code]) => reject(new Error(`Agent ${nodeName} exited with ${code}: ${errors}`)));
    });
    await sleep(20_000);
    return await rssMiB(child.pid!);
  } finally {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  }
}

const phaseOf = (o: KubeObject): unknown => (o['status'] as { phase?: unknown } | undefined)?.phase;
const isRunning = (o: KubeObject): boolean => phaseOf(o) === 'Running';
const isReadyNode = (o: KubeObject): boolean =>
  (
    (o['status'] as { conditions?: Array<{ type?: string; status?: string }> } | undefined)?.conditions ?? []
  ).some((c) => c.type === 'Ready' && c.status === 'True');

function podObject(name: string, node: string, configMap: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { bench: 'edge' } },
    spec: {
      nodeName: node,
      containers: [
        {
          name: 'app',
          image: 'busybox:1.36',
          command: ['sh', '-c', 'sleep 3600'],
          volumeMounts: [{ name: 'config', mountPath: '/etc/app' }],
        },
      ],
      volumes: [{ name: 'config', configMap: { name: configMap } }],
    },
  };
}

const configMap = (name: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: NS },
  data: { seq: '0', 'app.conf': 'level=info\nmode=edge\n' },
});

const total = (b: ByteCounts): number => b.up + b.down;

const dir = await mkdtemp(join(tmpdir(), 'kedge-bench-edge-'));
const serverDir = join(dir, 'server');
let server: ServerProcess | undefined;
const cleanup: Array<() => Promise<void> | void> = [];
try {
  server = await startServerProcess({ dataDir: serverDir, listen: '127.0.0.1:0' });
  const port = Number(new URL(server.url).port);
  const token = (await readFile(join(serverDir, 'node-token'), 'utf8')).trim();
  const api = new RemoteCluster(resolveKubeconfig(await readKubeconfig(server.kubeconfig)));
  cleanup.push(() => api.close());

  // ---- 1. idle bytes of one agent process ----
  const proxy = await startByteProxy(port);
  cleanup.push(() => proxy.close());
  const agent = await startAgentProcess({
    server: `https://127.0.0.1:${proxy.port}`,
    dataDir: join(dir, 'agent'),
    nodeName: EDGE_NODE,
    token,
  });
  cleanup.push(async () => {
    await agent.stop();
  });
  await agent.waitForLog((e) => e['msg'] === 'connected to hub');
  await waitForObject(api, Resources.nodes, undefined, EDGE_NODE, isReadyNode);
  await sleep(3000);
  const idleStart = proxy.snapshot();
  const idleT0 = performance.now();
  await sleep(IDLE_SECONDS * 1000);
  const idle = bytesBetween(idleStart, proxy.snapshot());
  const idleSeconds = (performance.now() - idleT0) / 1000;
  const perHour = (n: number): number => (n * 3600) / idleSeconds;
  record('idle node: wire bytes per hour, both directions', perHour(total(idle)), 'B/h');
  record('idle node: agent → server per hour', perHour(idle.up), 'B/h');
  record('idle node: server → agent per hour', perHour(idle.down), 'B/h');
  record('idle node: average rate', (total(idle) * 8) / idleSeconds / 1000, 'kbit/s');
  record('agent RSS idle, 0 pods', await rssMiB(agent.child.pid!), 'MiB');

  // ---- 2. one pod with a ConfigMap, to Running ----
  const before = proxy.snapshot();
  const podT0 = performance.now();
  await api.create(Resources.configmaps, NS, configMap('bench-cm'));
  await api.create(Resources.pods, NS, podObject('bench-pod', EDGE_NODE, 'bench-cm'));
  await waitForObject(api, Resources.pods, NS, 'bench-pod', isRunning);
  const podMs = performance.now() - podT0;
  await sleep(1000); // let the last acks (status-ack, batch ack of the status echo) pass the proxy
  const podBytes = bytesBetween(before, proxy.snapshot());
  record('one pod + ConfigMap to Running: wire bytes, both directions', total(podBytes), 'B');
  record('one pod + ConfigMap to Running: server → agent', podBytes.down, 'B');
  record('one pod + ConfigMap to Running: agent → server', podBytes.up, 'B');
  record('one pod + ConfigMap: create → Running seen in the API', podMs, 'ms');

  // ---- 3. change-to-edge latency ----
  if (agent.localApi === undefined) throw new Error('The agent has no local API');
  let waiting: { want: string; resolve: (at: number) => void } | undefined;
  const watch = httpWatch(
    `${agent.localApi}/api/v1/namespaces/${NS}/configmaps?fieldSelector=metadata.name%3Dbench-cm`,
    (e) => {
      const seq = (e.object['data'] as Record<string, unknown> | undefined)?.['seq'];
      if (waiting !== undefined && seq === waiting.want) waiting.resolve(performance.now());
    },
  );
  cleanup.push(() => watch.close());
  await watch.started;
  const endToEnd: number[] = [];
  const afterCommit: number[] = [];
  const patchBefore = proxy.snapshot();
  for (let i = 1; i <= PATCHES; i++) {
    const seen = Promise.withResolvers<number>();
    waiting = { want: String(i), resolve: seen.resolve };
    const t0 = performance.now();
    await api.patch(Resources.configmaps, NS, 'bench-cm', 'merge', { data: { seq: String(i) } });
    const committed = performance.now();
    const at = await seen.promise;
    endToEnd.push(at - t0);
    afterCommit.push(Math.max(0, at - committed));
  }
  waiting = undefined;
  await sleep(500);
  const patchBytes = bytesBetween(patchBefore, proxy.snapshot());
  endToEnd.sort((a, b) => a - b);
  afterCommit.sort((a, b) => a - b);
  record('ConfigMap patch → agent local watch event, p50', percentile(endToEnd, 50), 'ms');
  record('ConfigMap patch → agent local watch event, p99', percentile(endToEnd, 99), 'ms');
  record('  of which after the API answered the patch, p50', percentile(afterCommit, 50), 'ms');
  record('  of which after the API answered the patch, p99', percentile(afterCommit, 99), 'ms');
  record('ConfigMap change: wire bytes per change, both directions', total(patchBytes) / PATCHES, 'B');

  // ---- 4. agent RSS with 10 pods ----
  await inParallel(9, 9, async (i) => {
    await api.create(Resources.pods, NS, podObject(`bench-pod-${i + 1}`, EDGE_NODE, 'bench-cm'));
  });
  for (let i = 1; i <= 9; i++) await waitForObject(api, Resources.pods, NS, `bench-pod-${i}`, isRunning);
  await sleep(5000);
  record('agent RSS idle, 10 pods (fake runtime)', await rssMiB(agent.child.pid!), 'MiB');
  watch.close();
  await agent.stop();
  await proxy.close();

  // What load-time type stripping costs: the same agent started fresh from .ts and from pre-stripped .js.
  const jsMain = stripToJs(join(import.meta.dirname, '..'), join(dir, 'js'));
  const tsMain = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
  // allSettled: when one agent fails, the other is still stopped before the error ends the benchmark.
  const settled = await Promise.allSettled([
    freshAgentRss(tsMain, 'bench-ts', server.url, token),
    freshAgentRss(jsMain, 'bench-js', server.url, token),
  ]);
  for (const r of settled) if (r.status === 'rejected') throw r.reason;
  const [tsRss, jsRss] = settled.map((r) => (r.status === 'fulfilled' ? r.value : 0)) as [number, number];
  record('agent RSS 20 s after connect, 0 pods, .ts sources (stripped at load)', tsRss, 'MiB');
  record('agent RSS 20 s after connect, 0 pods, sources pre-stripped to .js', jsRss, 'MiB');

  // ---- 5. N nodes: join, sync, server restart, reconnect ----
  const swarmDir = join(dir, 'swarm');
  await mkdir(swarmDir);
  const names = Array.from({ length: NODES }, (_, i) => `swarm-${String(i).padStart(5, '0')}`);
  let t = performance.now();
  const creds = await joinNodes(server.url, token, names, swarmDir, 16);
  const joinSeconds = (performance.now() - t) / 1000;
  record(`join ${NODES} nodes through the join endpoint (16 at once)`, NODES / joinSeconds, 'nodes/s');
  await api.create(Resources.configmaps, NS, configMap('swarm-config'));
  await inParallel(NODES, 32, async (i) => {
    await api.create(Resources.pods, NS, podObject(`swarm-pod-${i}`, names[i]!, 'swarm-config'));
  });
  const swarmProxy = await startByteProxy(port);
  cleanup.push(() => swarmProxy.close());
  t = performance.now();
  const nodes = startSwarm(`https://127.0.0.1:${swarmProxy.port}`, names, creds, swarmDir);
  cleanup.push(() => stopSwarm(nodes));
  const indexOf = new Map(names.map((n, i) => [n, i]));
  const podSynced = (n: SwarmNode): boolean =>
    n.session.connected &&
    n.store.get(`core/nodes//${n.name}`) !== undefined &&
    n.store.get(`core/configmaps/${NS}/swarm-config`) !== undefined &&
    n.store.get(`core/pods/${NS}/swarm-pod-${indexOf.get(n.name)}`) !== undefined;
  while (!nodes.every(podSynced)) await sleep(100);
  const firstSync = Math.max(...nodes.map((n) => Math.max(n.lastConnectedAt, n.lastBatchAt))) - t;
  record(`${NODES} nodes: first connect until all synced (Node, pod, ConfigMap)`, firstSync, 'ms');
  await sleep(3000);
  record(`${NODES} nodes connected: server RSS`, await rssMiB(server.child.pid!), 'MiB');
  record(
    `${NODES} nodes connected: bench process RSS (all sessions + stores)`,
    process.memoryUsage().rss / 2 ** 20,
    'MiB',
  );

  const items0 = nodes.reduce((s, n) => s + n.items, 0);
  const itemBytes0 = nodes.reduce((s, n) => s + n.itemBytes, 0);
  const connects0 = new Map(nodes.map((n) => [n.name, n.connects]));
  const wire0 = swarmProxy.snapshot();
  const restartT0 = performance.now();
  await server.stop();
  const stoppedAt = performance.now();
  server = await startServerProcess({ dataDir: serverDir, listen: `127.0.0.1:${port}` });
  const readyAt = performance.now();
  const reconnected = (n: SwarmNode): boolean =>
    n.connects > (connects0.get(n.name) ?? 0) && n.session.connected;
  while (!nodes.every(reconnected)) await sleep(50);
  // Synced: connected again and no batch for 3 s (the diff, if any, follows the welcome at once).
  for (;;) {
    const last = Math.max(...nodes.map((n) => n.lastBatchAt));
    if (performance.now() - last > 3000) break;
    await sleep(200);
  }
  const doneAt = Math.max(
    ...nodes.map((n) => Math.max(n.lastConnectedAt, n.lastBatchAt > restartT0 ? n.lastBatchAt : 0)),
  );
  const wire = bytesBetween(wire0, swarmProxy.snapshot());
  const resentItems = nodes.reduce((s, n) => s + n.items, 0) - items0;
  const resentBytes = nodes.reduce((s, n) => s + n.itemBytes, 0) - itemBytes0;
  record('server restart: SIGTERM → process exited', stoppedAt - restartT0, 'ms');
  record('server restart: exited → new server ready', readyAt - stoppedAt, 'ms');
  record(`server restart: SIGTERM → all ${NODES} nodes connected and synced`, doneAt - restartT0, 'ms');
  record(`server restart: new server ready → all ${NODES} connected and synced`, doneAt - readyAt, 'ms');
  const firstBack = Math.min(...nodes.map((n) => n.lastConnectedAt));
  record(
    `server restart: first node back → all ${NODES} back (spread: backoff jitter)`,
    doneAt - firstBack,
    'ms',
  );
  record('server restart: sync items resent (all nodes)', resentItems, 'items');
  record('server restart: sync item bytes resent (all nodes)', resentBytes, 'B');
  record(
    'server restart: wire bytes per node, both directions (TLS handshakes included)',
    total(wire) / NODES,
    'B',
  );
  record('server restart: wire bytes per node, server → agent', wire.down / NODES, 'B');
} finally {
  for (const c of cleanup.reverse()) {
    try {
      await c();
    } catch {}
  }
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
}

const machine = {
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  node: process.version,
};
console.log(`machine: ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}`);
await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
await writeFile(
  join(import.meta.dirname, 'results', 'edge.json'),
  `${JSON.stringify({ date: new Date().toISOString(), nodes: NODES, idleSeconds: IDLE_SECONDS, machine, rows }, null, 2)}\n`,
);
