/**
 * Scheduler benchmark: `node bench/scheduler.ts [PODS]` (default 10,000).
 *
 * End to end: an in-process API (LocalCluster on a temporary SQLite store) with 1,000 and 10,000 Ready
 * nodes; PODS pending pods are created at once and the time until every one is bound is measured
 * (bindings, Scheduled events and the watch included). Decision only: the scheduling algorithm on the
 * cache with 10,000 nodes and 100,000 placed pods, without the API. Prints a table and writes
 * bench/results/scheduler.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeObject } from '../src/api/meta.ts';
import { LocalCluster } from '../src/apiserver/local-cluster.ts';
import { ApiServer } from '../src/apiserver/server.ts';
import { InformerFactory } from '../src/client/informer.ts';
import { Resources } from '../src/client/types.ts';
import {
  parseNode,
  parsePod,
  SchedulerCache,
  schedulePod,
  seededRandom,
  startScheduler,
} from '../src/controllers/scheduler/index.ts';
import { silentLogger } from '../src/lib/log.ts';
import { openSqliteStore } from '../src/store/sqlite.ts';
import { nodeObject } from './lib/fixtures.ts';
import { createRecorder } from './lib/measure.ts';

const PODS = Number(process.argv[2] ?? 10_000);
const dir = await mkdtemp(join(tmpdir(), 'kedge-bench-scheduler-'));

const { rows, record } = createRecorder(58);

function podObject(i: number, nodeName = ''): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `app-${i}`,
      namespace: 'default',
      labels: { app: `app-${i % 100}` },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: `rs-${i % 100}`,
          uid: `rs-uid-${i % 100}`,
          controller: true,
        },
      ],
    },
    spec: {
      ...(nodeName === '' ? {} : { nodeName }),
      containers: [
        {
          name: 'main',
          image: 'registry.local/app:1',
          resources: { requests: { cpu: '50m', memory: '64Mi' } },
        },
      ],
    },
  };
}

/**
 * Create in parallel (at most `width` in flight), yielding to the event loop between chunks as clients
 * over a network would. Without the yields the in-process API starves the informers' watches, which
 * then overflow the store's 10,000-event watch buffer (see the scheduler report).
 */
async function createAll(
  count: number,
  make: (i: number) => Promise<unknown>,
  width = 64,
  chunk = 1000,
): Promise<void> {
  for (let base = 0; base < count; base += chunk) {
    const end = Math.min(count, base + chunk);
    let next = base;
    await Promise.all(
      Array.from({ length: width }, async () => {
        while (next < end) await make(next++);
      }),
    );
    await new Promise((r) => setImmediate(r));
  }
}

async function endToEnd(nodes: number, pods: number, scheduledEvents: boolean): Promise<void> {
  const store = openSqliteStore({ path: join(dir, `e2e-${nodes}-${scheduledEvents}.db`), compaction: false });
  const logger = silentLogger();
  const api = new ApiServer({ store, logger, authenticate: () => undefined });
  await api.start();
  const cluster = new LocalCluster(api.storage);
  await createAll(nodes, (i) => cluster.create(Resources.nodes, undefined, nodeObject(i)));
  const informers = new InformerFactory(cluster, logger);
  const scheduler = startScheduler({ cluster, informers, logger, seed: 1, scheduledEvents });
  informers.start();
  await informers.waitForSync();
  while (scheduler.cache.nodeCount < nodes) await new Promise((r) => setImmediate(r));

  const start = performance.now();
  await createAll(pods, (i) => cluster.create(Resources.pods, 'default', podObject(i)));
  const created = performance.now() - start;
  while (scheduler.stats().bound < pods) await new Promise((r) => setTimeout(r, 5));
  const total = performance.now() - start;
  const stats = scheduler.stats();
  const label = `${nodes} nodes, ${pods} pods${scheduledEvents ? '' : ', no Scheduled events'}`;
  record(`e2e ${label}: create all pods`, created, 'ms');
  record(`e2e ${label}: all bound after first create`, total, 'ms');
  record(`e2e ${label}: throughput`, (pods * 1000) / total, 'pods/s');
  record(
    `e2e ${label}: process RSS (API, store, informers, scheduler)`,
    process.memoryUsage().rss / 2 ** 20,
    'MB',
  );
  if (stats.unschedulable > 0 || stats.bindErrors > 0) {
    console.log(`  (unschedulable attempts ${stats.unschedulable}, bind errors ${stats.bindErrors})`);
  }
  await scheduler.stop();
  await informers.stop();
  await api.close();
  await store.close();
}

/** The algorithm alone on a large cache: microseconds per decision. */
function decisionsOnly(nodes: number, placedPods: number, decisions: number, pct: number): void {
  const cache = new SchedulerCache();
  for (let i = 0; i < nodes; i++) cache.upsertNode(parseNode(nodeObject(i)));
  const t0 = performance.now();
  for (let i = 0; i < placedPods; i++) cache.setPod(parsePod(podObject(i, `edge-${i % nodes}`)));
  const fill = performance.now() - t0;
  const state = { nextStart: 0, random: seededRandom(1), percentageOfNodesToScore: pct };
  const pods = Array.from({ length: decisions }, (_, i) => parsePod(podObject(placedPods + i)));
  const start = performance.now();
  for (const p of pods) {
    const r = schedulePod(p, cache, state);
    if (r.fit) cache.assume(p, r.node);
  }
  const ms = performance.now() - start;
  const label = `${nodes} nodes, ${placedPods} placed pods${pct > 0 ? `, ${pct}% scored` : ''}`;
  if (pct === 0) record(`cache fill ${label}`, (fill * 1000) / placedPods, 'µs/pod');
  record(`decide ${label}`, (ms * 1000) / decisions, 'µs/pod');
  record(`decide ${label}: throughput`, (decisions * 1000) / ms, 'pods/s');
}

console.log(
  `kedge scheduler benchmark: ${PODS} pods, node ${process.version}, ${cpus().length} x ${cpus()[0]?.model}`,
);
try {
  decisionsOnly(1000, 10_000, 5000, 0);
  decisionsOnly(10_000, 100_000, 5000, 0);
  decisionsOnly(10_000, 100_000, 1000, 100);
  await endToEnd(1000, PODS, true);
  await endToEnd(10_000, PODS, true);
  await endToEnd(10_000, PODS, false);
  const results = join(import.meta.dirname, 'results');
  await mkdir(results, { recursive: true });
  await writeFile(
    join(results, 'scheduler.json'),
    `${JSON.stringify({ pods: PODS, node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, rows }, null, 2)}\n`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
