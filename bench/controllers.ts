/**
 * Controller benchmark: `node bench/controllers.ts [REPLICAS=2000] [PODS=20000] [NODES=1000]`.
 *
 * Rollout: an in-process API (LocalCluster on a temporary SQLite store) with NODES Ready nodes and the
 * controllers of `kedge server` (startControllers); one Deployment of REPLICAS is applied and the time
 * until every pod exists and until every pod has spec.nodeName is measured (Deployment → ReplicaSet →
 * pods → scheduler → bindings, events included).
 * Memory: PODS bound pods are stored first, then the controllers start; process RSS and V8 heap after
 * GC are measured before the controllers, right after their caches sync, and after 5 s of settling.
 * Prints a table and writes bench/results/controllers.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { KubeObject } from '../src/api/meta.ts';
import { LocalCluster } from '../src/apiserver/local-cluster.ts';
import { ApiServer } from '../src/apiserver/server.ts';
import { type Cluster, Resources } from '../src/client/types.ts';
import { type RunningControllers, startControllers } from '../src/controllers/manager.ts';
import { silentLogger } from '../src/lib/log.ts';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.ts';
import { nodeObject } from './lib/fixtures.ts';
import { createRecorder } from './lib/measure.ts';

const REPLICAS = Number(process.argv[2] ?? 2000);
const PODS = Number(process.argv[3] ?? 20_000);
const NODES = Number(process.argv[4] ?? 1000);
// Nodes here have no agent renewing their Lease: keep them Ready for the whole run.
const NODE_GRACE_MS = 24 * 3600 * 1000;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const dir = await mkdtemp(join(tmpdir(), 'kedge-bench-controllers-'));

const { rows, record } = createRecorder(62);
const mb = (bytes: number): number => bytes / 2 ** 20;

const container = {
  name: 'app',
  image: 'registry.local/app:1.0',
  ports: [{ containerPort: 8080 }],
  resources: { requests: { cpu: '10m', memory: '16Mi' } },
};

function boundPod(i: number, nodes: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `pod-${i}`, namespace: 'default', labels: { app: `app-${i % 100}` } },
    spec: { nodeName: `edge-${i % nodes}`, containers: [container] },
  };
}

/** At most `width` creates in flight, yielding between chunks so the informers' watches keep up. */
async function createAll(count: number, make: (i: number) => Promise<unknown>, width = 64): Promise<void> {
  for (let base = 0; base < count; base += 1000) {
    const end = Math.min(count, base + 1000);
    let next = base;
    await Promise.all(
      Array.from({ length: width }, async () => {
        while (next < end) await make(next++);
      }),
    );
    await new Promise((r) => setImmediate(r));
  }
}

async function openApi(name: string): Promise<{ store: SqliteStore; api: ApiServer; cluster: Cluster }> {
  const store = openSqliteStore({ path: join(dir, `${name}.db`), compaction: false });
  const api = new ApiServer({ store, logger: silentLogger(), authenticate: () => undefined });
  await api.start();
  return { store, api, cluster: new LocalCluster(api.storage) };
}

function start(cluster: Cluster): Promise<RunningControllers> {
  return startControllers({
    cluster,
    logger: silentLogger(),
    nodeLifecycle: { gracePeriodMs: NODE_GRACE_MS },
  });
}

/** Deployment of `replicas` on `nodes` nodes: time until all pods exist and until all are bound. */
async function rollout(replicas: number, nodes: number): Promise<void> {
  const { store, api, cluster } = await openApi('rollout');
  await createAll(nodes, (i) => cluster.create(Resources.nodes, undefined, nodeObject(i)));
  const controllers = await start(cluster);
  const pods = controllers.informers.informer(Resources.pods);
  const created = new Map<string, number>();
  const bound = new Map<string, number>();
  let createdAt = 0;
  let progressAt = performance.now();
  let finish: (() => void) | undefined;
  const done = new Promise<void>((r) => {
    finish = r;
  });
  const see = (pod: KubeObject): void => {
    if (pod.metadata.labels?.['app'] !== 'bench') return;
    const name = pod.metadata.name ?? '';
    progressAt = performance.now();
    if (!created.has(name)) {
      created.set(name, progressAt);
      if (created.size === replicas) createdAt = progressAt;
    }
    const spec = pod['spec'] as { nodeName?: string } | undefined;
    if (spec?.nodeName !== undefined && spec.nodeName !== '' && !bound.has(name)) bound.set(name, progressAt);
    if (bound.size === replicas) finish?.();
  };
  pods.onAdd(see);
  pods.onUpdate((_old, pod) => see(pod));
  // Fail with the counts when nothing moves for 2 minutes, instead of hanging.
  const stall = setInterval(() => {
    if (performance.now() - progressAt > 120_000) {
      console.error(`stalled: ${created.size} pods created, ${bound.size} bound of ${replicas}`);
      process.exit(1);
    }
  }, 5000);

  const t0 = performance.now();
  await cluster.create(Resources.deployments, 'default', {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'bench', namespace: 'default' },
    spec: {
      replicas,
      selector: { matchLabels: { app: 'bench' } },
      template: { metadata: { labels: { app: 'bench' } }, spec: { containers: [container] } },
    },
  });
  await done;
  const t1 = performance.now();
  clearInterval(stall);
  const label = `Deployment ${replicas} replicas, ${nodes} nodes`;
  record(`${label}: all pods created`, createdAt - t0, 'ms');
  record(`${label}: all pods bound`, t1 - t0, 'ms');
  record(`${label}: throughput (bound)`, (replicas * 1000) / (t1 - t0), 'pods/s');
  // Per pod: from the pod appearing in the informer to it carrying its node.
  const waits = [...bound].map(([name, at]) => at - (created.get(name) ?? at)).sort((a, b) => a - b);
  const pct = (p: number): number =>
    waits[Math.min(waits.length - 1, Math.floor((p / 100) * waits.length))] ?? 0;
  record(`${label}: pod created → bound p50`, pct(50), 'ms');
  record(`${label}: pod created → bound p90`, pct(90), 'ms');
  record(`${label}: pod created → bound p99`, pct(99), 'ms');
  record(`${label}: process RSS at the end`, mb(process.memoryUsage().rss), 'MB');
  await controllers.stop();
  await api.close();
  await store.close();
}

function measure(): { rss: number; heap: number } {
  gc();
  const m = process.memoryUsage();
  return { rss: mb(m.rss), heap: mb(m.heapUsed) };
}

/** Controllers' memory with `count` bound pods on `nodes` nodes already stored. */
async function memory(count: number, nodes: number): Promise<void> {
  const { store, api, cluster } = await openApi('memory');
  await createAll(nodes, (i) => cluster.create(Resources.nodes, undefined, nodeObject(i)));
  const t0 = performance.now();
  await createAll(count, (i) => cluster.create(Resources.pods, 'default', boundPod(i, nodes)));
  record(
    `store ${count} bound pods through LocalCluster`,
    (count * 1000) / (performance.now() - t0),
    'pods/s',
  );
  const before = measure();
  const t1 = performance.now();
  const controllers = await start(cluster);
  record(`controllers start and sync with ${count} pods`, performance.now() - t1, 'ms');
  const synced = measure();
  await new Promise((r) => setTimeout(r, 5000));
  const settled = measure();
  const remaining = (await cluster.list(Resources.pods, { namespace: 'default', limit: 1 })).metadata
    .remainingItemCount;
  if (remaining !== undefined && remaining + 1 !== count) {
    console.log(`  (pods stored after settling: ${remaining + 1} of ${count})`);
  }
  const label = `${count} pods, ${nodes} nodes`;
  record(`${label}: RSS before controllers (API + store)`, before.rss, 'MB');
  record(`${label}: RSS after controllers synced`, synced.rss, 'MB');
  record(`${label}: RSS after 5 s settled`, settled.rss, 'MB');
  record(`${label}: heap after GC before controllers`, before.heap, 'MB');
  record(`${label}: heap after GC, controllers synced`, synced.heap, 'MB');
  record(`${label}: heap after GC, settled`, settled.heap, 'MB');
  record(`${label}: controllers' heap per pod`, ((settled.heap - before.heap) * 2 ** 20) / count, 'bytes');
  await controllers.stop();
  await api.close();
  await store.close();
}

console.log(
  `kedge controllers benchmark: ${REPLICAS} replicas, ${PODS} stored pods, ${NODES} nodes, node ${process.version}, ${cpus().length} x ${cpus()[0]?.model}`,
);
try {
  await rollout(REPLICAS, NODES);
  await memory(PODS, NODES);
  const results = join(import.meta.dirname, 'results');
  await mkdir(results, { recursive: true });
  await writeFile(
    join(results, 'controllers.json'),
    `${JSON.stringify({ replicas: REPLICAS, pods: PODS, nodes: NODES, node: process.version, rows }, null, 2)}\n`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
