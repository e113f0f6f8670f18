/**
 * Scale benchmark (issue "Scale"): one real `kedge server` process and one `kedge sim` process holding N
 * simulated edge nodes (real joins, mTLS sessions, sync, acks, status, heartbeats, fake runtime).
 *
 *   node bench/scale.ts [NODES=1000] [PODS_PER_NODE=10] [SCENARIOS=join,density,idle,reconnect,churn]
 *
 * Env: KEDGE_BENCH_IDLE_SECONDS (default 60), KEDGE_BENCH_CREATE_CONCURRENCY (pod creates in flight,
 * default 32), KEDGE_BENCH_CREATE_RATE (pods per second, paced like ClusterLoader2's density test; 0, the
 * default, creates as fast as the concurrency allows), KEDGE_BENCH_SERVER_NODE_ARGS (extra `node` flags for
 * the server, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`), KEDGE_BENCH_KEEP=1 keeps the data directory.
 *
 * Scenarios, in order (each needs the ones before it that it names):
 * 1. join: N nodes join and connect (`kedge sim` says ready), then all are Ready in the API: join rate, server
 *    RSS and CPU per connected node, sim RSS per node.
 * 2. density: PODS_PER_NODE × N pods created through the API (no nodeName: the scheduler binds them), like
 *    ClusterLoader2's density test: pod startup latency (create call → Running seen on a watch)
 *    p50/p90/p99, create call latency p50/p99, pods per second.
 * 3. idle: wire bytes per node per hour (the hub's byte counters, both directions) and server CPU at idle.
 * 4. reconnect: SIGTERM the server, start it again on the same data dir and port: time until every node is
 *    connected and Ready, bytes the hub sent per node after the restart, peak server RSS.
 * 5. churn: a DaemonSet on every node (maxUnavailable 10%), then a rolling update of its template: time
 *    until every node runs the new pod.
 * Prints a table and writes bench/results/scale-N.json.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import type { KubeObject } from '../src/api/meta.ts';
import { RemoteCluster } from '../src/client/remote-cluster.ts';
import { Resources } from '../src/client/types.ts';
import { type ResolvedKubeconfig, readKubeconfig, resolveKubeconfig } from '../src/lib/kubeconfig.ts';
import { type ServerProcess, startServerProcess } from '../test/harness/server.ts';
import { listAll } from './lib/list-all.ts';
import { cpuSeconds, createRecorder, percentile, rssMiB } from './lib/measure.ts';
import { inParallel } from './lib/node-swarm.ts';

const NODES = Number(process.argv[2] ?? 1000);
const PODS_PER_NODE = Number(process.argv[3] ?? 10);
const SCENARIOS = new Set((process.argv[4] ?? 'join,density,idle,reconnect,churn').split(','));
const IDLE_SECONDS = Number(process.env['KEDGE_BENCH_IDLE_SECONDS'] ?? 60);
const CREATE_CONCURRENCY = Number(process.env['KEDGE_BENCH_CREATE_CONCURRENCY'] ?? 32);
const CREATE_RATE = Number(process.env['KEDGE_BENCH_CREATE_RATE'] ?? 0);
const SERVER_NODE_ARGS = (process.env['KEDGE_BENCH_SERVER_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
const NS = 'default';
const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;
if (!Number.isSafeInteger(NODES) || NODES < 1)
  throw new TypeError(`NODES must be a positive integer: ${NODES}`);
if (!Number.isSafeInteger(PODS_PER_NODE) || PODS_PER_NODE < 0)
  throw new TypeError(`PODS_PER_NODE must be a non-negative integer: ${PODS_PER_NODE}`);

const { rows, record } = createRecorder(66);
const note = (text: string): void => console.log(`# ${text}`);
/** Milliseconds since the epoch at sub-millisecond resolution, comparable with the watch worker's clock. */
const epochMs = (): number => performance.timeOrigin + performance.now();

/**
 * Sums the pauses that `node --trace-gc` printed (one line per collection, kept raw in the server's logs);
 * undefined when the server ran without it.
 */
function gcPauses(logs: ReadonlyArray<Record<string, unknown>>): string | undefined {
  const by = new Map<string, { count: number; total: number; max: number }>();
  for (const entry of logs) {
    const line = entry['raw'];
    if (typeof line !== 'string') continue;
    const m =
      /(Scavenge|Mark-Compact|Minor Mark-Sweep)\b.*? MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/.exec(
        line,
      );
    if (m === null) continue;
    const kind = by.get(m[1]!) ?? { count: 0, total: 0, max: 0 };
    const pause = Number(m[2]);
    kind.count++;
    kind.total += pause;
    kind.max = Math.max(kind.max, pause);
    by.set(m[1]!, kind);
  }
  if (by.size === 0) return undefined;
  return [...by]
    .map(
      ([k, v]) =>
        `${k}: ${v.count} pauses, ${(v.total / 1000).toFixed(1)} s in all, longest ${v.max.toFixed(0)} ms`,
    )
    .join('; ');
}

/** Samples a process's RSS every 200 ms until stopped; returns the peak in MiB. */
function rssPeak(pid: () => number | undefined): { stop(): number } {
  let peak = 0;
  const timer = setInterval(() => {
    const p = pid();
    if (p !== undefined)
      void rssMiB(p).then(
        (v) => {
          if (v > peak) peak = v;
        },
        () => {},
      );
  }, 200);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

/** GET /metrics with the admin credentials; returns the text. */
function scrape(config: ResolvedKubeconfig): Promise<string> {
  const url = new URL('/metrics', config.cluster.server);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ...(config.cluster.caPem === undefined ? {} : { ca: config.cluster.caPem }),
        ...(config.user.clientCertPem === undefined ? {} : { cert: config.user.clientCertPem }),
        ...(config.user.clientKeyPem === undefined ? {} : { key: config.user.clientKeyPem }),
        ...(config.user.token === undefined
          ? {}
          : { headers: { authorization: `Bearer ${config.user.token}` } }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Sum of every sample of a metric whose labels contain `labelPart` (all samples when empty). */
function sumMetric(text: string, name: string, labelPart = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labelPart !== '' && !line.includes(labelPart)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

const isReadyNode = (o: KubeObject): boolean =>
  (
    (o['status'] as { conditions?: Array<{ type?: string; status?: string }> } | undefined)?.conditions ?? []
  ).some((c) => c.type === 'Ready' && c.status === 'True');
const phaseOf = (o: KubeObject): unknown => (o['status'] as { phase?: unknown } | undefined)?.phase;

/** Polls until `done()` or the timeout; throws with `what` on timeout. */
async function until(
  what: string,
  timeoutMs: number,
  done: () => Promise<boolean>,
  everyMs = 500,
): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await done())) {
    if (performance.now() > end) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

const nodeNameOf = (p: KubeObject): string | undefined =>
  (p['spec'] as { nodeName?: string } | undefined)?.nodeName;
const densityPods = { namespace: NS, labelSelector: 'bench=density' };

async function readyNodeCount(api: RemoteCluster): Promise<number> {
  return (await listAll(api, Resources.nodes)).filter(isReadyNode).length;
}

/** Counts the density pods by what is missing: unscheduled, scheduled but not Running, Running. */
async function podCensus(api: RemoteCluster): Promise<string> {
  const counts = new Map<string, number>();
  for (const p of await listAll(api, Resources.pods, densityPods)) {
    const key = nodeNameOf(p) === undefined ? 'unscheduled' : String(phaseOf(p) ?? 'no phase');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, v]) => `${k} ${v}`).join(', ');
}

interface SimProcess {
  readonly child: ChildProcess;
  readonly readyMs: number;
}

async function startSim(server: string, token: string, dir: string): Promise<SimProcess> {
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [
      '--max-old-space-size=16384',
      MAIN,
      'sim',
      '--server',
      server,
      '--token',
      token,
      '--nodes',
      String(NODES),
      '--data-dir',
      dir,
      '--concurrency',
      '64',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KEDGE_LOG_LEVEL: 'info' } },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = once(child, 'exit');
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('"msg":"kedge sim ready"')) resolve();
    });
    void exited.then(([code]) => reject(new Error(`kedge sim exited with ${code}: ${stderr}`)));
  });
  return { child, readyMs: performance.now() - t0 };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

const dir = await mkdtemp(join(tmpdir(), 'kedge-bench-scale-'));
const serverDir = join(dir, 'server');
let server: ServerProcess | undefined;
let sim: SimProcess | undefined;
let api: RemoteCluster | undefined;
console.log(
  `scale benchmark: ${NODES} nodes, ${PODS_PER_NODE} pods per node, scenarios ${[...SCENARIOS].join(',')}`,
);
console.log(
  `machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`,
);
try {
  server = await startServerProcess({
    dataDir: serverDir,
    listen: '127.0.0.1:0',
    nodeArgs: SERVER_NODE_ARGS,
  });
  const port = new URL(server.url).port;
  const token = (await readFile(join(serverDir, 'node-token'), 'utf8')).trim();
  const config = resolveKubeconfig(await readKubeconfig(server.kubeconfig));
  api = new RemoteCluster(config);
  const serverPid = (): number | undefined => server?.child.pid;
  const idleCpu0 = await cpuSeconds(server.child.pid!);
  const rss0 = await rssMiB(server.child.pid!);
  record('server RSS with no nodes', rss0, 'MiB');

  // ---- 1. join ----
  const cpuBeforeJoin = await cpuSeconds(server.child.pid!);
  sim = await startSim(server.url, token, join(dir, 'sim'));
  record('join: sim start → every node joined and connected', sim.readyMs / 1000, 's');
  record('join: rate', NODES / (sim.readyMs / 1000), 'nodes/s');
  const tReady = performance.now();
  await until(`${NODES} Ready nodes`, 600_000, async () => (await readyNodeCount(api!)) >= NODES, 2000);
  record('join: connected → all Ready in the API', (performance.now() - tReady) / 1000, 's');
  record(
    'join: server CPU per joined node',
    (((await cpuSeconds(server.child.pid!)) - cpuBeforeJoin) * 1000) / NODES,
    'ms',
  );
  await sleep(10_000);
  const rssJoined = await rssMiB(server.child.pid!);
  record('join: server RSS with all nodes connected', rssJoined, 'MiB');
  record('join: server RSS per connected node', ((rssJoined - rss0) * 1024) / NODES, 'KiB');
  record('join: sim RSS per node', ((await rssMiB(sim.child.pid!)) * 1024) / NODES, 'KiB');
  void idleCpu0;

  // ---- 2. density ----
  if (SCENARIOS.has('density') && PODS_PER_NODE > 0) {
    const total = NODES * PODS_PER_NODE;
    const created = new Map<string, number>();
    const running = new Map<string, number>();
    const scheduled = new Map<string, number>();
    let watchRestarts = 0;
    const createLatency: number[] = [];
    // The watch runs in its own thread, so the creates in flight here do not make it fall behind.
    const watcher = new Worker(new URL('./lib/pod-watch-worker.ts', import.meta.url), {
      workerData: { kubeconfig: server.kubeconfig, namespace: NS, labelSelector: 'bench=density', total },
    });
    watcher.on(
      'message',
      (m: { scheduled: [string, number][]; running: [string, number][]; restarts: number }) => {
        for (const [name, at] of m.scheduled) scheduled.set(name, at);
        for (const [name, at] of m.running) running.set(name, at);
        watchRestarts = m.restarts;
      },
    );
    const watcherExited = once(watcher, 'exit');
    await once(watcher, 'online');
    await sleep(1000); // let it list and start watching before the first create
    const cpu0 = await cpuSeconds(server.child.pid!);
    const peak = rssPeak(serverPid);
    const logsBefore = server.logs.length;
    const t0 = performance.now();
    await inParallel(total, CREATE_CONCURRENCY, async (i) => {
      const name = `density-${i}`;
      if (CREATE_RATE > 0) {
        const due = t0 + (i * 1000) / CREATE_RATE - performance.now();
        if (due > 0) await sleep(due);
      }
      const start = performance.now();
      created.set(name, epochMs());
      await api!.create(Resources.pods, NS, {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: NS, labels: { bench: 'density', group: String(i % 100) } },
        spec: { containers: [{ name: 'app', image: 'registry.k8s.io/pause:3.9' }] },
      });
      createLatency.push(performance.now() - start);
    });
    const createSeconds = (performance.now() - t0) / 1000;
    try {
      await until(`${total} Running pods`, 900_000, async () => running.size >= total, 500);
    } catch (err) {
      note(
        `${running.size} of ${total} pods seen Running on the watch; the API says: ${await podCensus(api)}`,
      );
      await watcher.terminate();
      throw err;
    }
    const allSeconds = (performance.now() - t0) / 1000;
    watcher.postMessage('stop');
    await watcherExited;
    const startup = [...running].map(([name, at]) => at - (created.get(name) ?? at)).sort((a, b) => a - b);
    createLatency.sort((a, b) => a - b);
    const toBound = [...scheduled].map(([name, at]) => at - (created.get(name) ?? at)).sort((a, b) => a - b);
    const boundToRunning = [...running]
      .map(([name, at]) => at - (scheduled.get(name) ?? at))
      .sort((a, b) => a - b);
    record(
      `density: ${total} pods created (${CREATE_CONCURRENCY} in flight${CREATE_RATE > 0 ? `, paced at ${CREATE_RATE}/s` : ''})`,
      createSeconds,
      's',
    );
    record('density: create rate', total / createSeconds, 'pods/s');
    record('density: all Running after the first create', allSeconds, 's');
    record('density: pod startup latency p50', percentile(startup, 50), 'ms');
    record('density: pod startup latency p90', percentile(startup, 90), 'ms');
    record('density: pod startup latency p99', percentile(startup, 99), 'ms');
    record('density: create → bound seen, p50', percentile(toBound, 50), 'ms');
    record('density: create → bound seen, p99', percentile(toBound, 99), 'ms');
    record('density: bound → Running seen, p50', percentile(boundToRunning, 50), 'ms');
    record('density: bound → Running seen, p99', percentile(boundToRunning, 99), 'ms');
    record('density: create call latency p50', percentile(createLatency, 50), 'ms');
    record('density: create call latency p99', percentile(createLatency, 99), 'ms');
    record(
      'density: server CPU per pod',
      (((await cpuSeconds(server.child.pid!)) - cpu0) * 1000) / total,
      'ms',
    );
    record('density: server peak RSS', peak.stop(), 'MiB');
    record('density: watch re-lists (times after one are upper bounds)', watchRestarts, '');
    // How the tail moves as pods pile up: startup p99 of each tenth of the pods, in creation order.
    const tenths = Array.from({ length: 10 }, (_, t) => {
      const part: number[] = [];
      for (let i = Math.floor((t * total) / 10); i < Math.floor(((t + 1) * total) / 10); i++) {
        const name = `density-${i}`;
        const at = running.get(name);
        if (at !== undefined) part.push(at - (created.get(name) ?? at));
      }
      return Math.round(
        percentile(
          part.sort((a, b) => a - b),
          99,
        ),
      );
    });
    note(`density: startup p99 (ms) of each tenth of the pods, in creation order: ${tenths.join(' / ')}`);
    const gc = gcPauses(server.logs.slice(logsBefore));
    if (gc !== undefined) note(`density: server GC (--trace-gc) ${gc}`);
    await sleep(5000);
    record('density: server RSS after', await rssMiB(server.child.pid!), 'MiB');
    record('density: sim RSS', await rssMiB(sim.child.pid!), 'MiB');
  }

  // ---- 3. idle ----
  if (SCENARIOS.has('idle')) {
    await sleep(10_000);
    const m0 = await scrape(config);
    const cpu0 = await cpuSeconds(server.child.pid!);
    const t0 = performance.now();
    await sleep(IDLE_SECONDS * 1000);
    const m1 = await scrape(config);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = (await cpuSeconds(server.child.pid!)) - cpu0;
    const bytes =
      sumMetric(m1, 'kedge_edge_bytes_sent_total') +
      sumMetric(m1, 'kedge_edge_bytes_received_total') -
      sumMetric(m0, 'kedge_edge_bytes_sent_total') -
      sumMetric(m0, 'kedge_edge_bytes_received_total');
    record(
      `idle: WebSocket payload bytes per node per hour (${IDLE_SECONDS} s window)`,
      (bytes * 3600) / seconds / NODES,
      'B/h',
    );
    record('idle: server CPU', (cpu / seconds) * 100, '% of one core');
  }

  // ---- 4. reconnect storm ----
  if (SCENARIOS.has('reconnect')) {
    const peak = rssPeak(serverPid);
    const t0 = performance.now();
    await server.stop();
    server = await startServerProcess({
      dataDir: serverDir,
      listen: `127.0.0.1:${port}`,
      nodeArgs: SERVER_NODE_ARGS,
    });
    const restartedMs = performance.now() - t0;
    const sent0 = sumMetric(await scrape(config), 'kedge_edge_bytes_sent_total');
    await until(
      `${NODES} nodes connected`,
      600_000,
      async () => {
        const m = await scrape(config);
        return sumMetric(m, 'kedge_edge_node_status', 'state="connected"') >= NODES;
      },
      500,
    );
    const connectedMs = performance.now() - t0;
    await until(`${NODES} Ready nodes`, 600_000, async () => (await readyNodeCount(api!)) >= NODES, 1000);
    const readyMs = performance.now() - t0;
    await sleep(5000);
    const sent = sumMetric(await scrape(config), 'kedge_edge_bytes_sent_total') - sent0;
    record('reconnect: new server ready after SIGTERM', restartedMs / 1000, 's');
    record('reconnect: SIGTERM → every node connected', connectedMs / 1000, 's');
    record('reconnect: SIGTERM → every node Ready', readyMs / 1000, 's');
    record('reconnect: hub bytes sent per node after the restart', sent / NODES, 'B');
    record('reconnect: server peak RSS (both processes)', peak.stop(), 'MiB');
  }

  // ---- 5. DaemonSet churn ----
  if (SCENARIOS.has('churn')) {
    const ds = (image: string): KubeObject => ({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'churn', namespace: NS },
      spec: {
        selector: { matchLabels: { app: 'churn' } },
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '10%' } },
        template: {
          metadata: { labels: { app: 'churn' } },
          spec: { containers: [{ name: 'agent', image }] },
        },
      },
    });
    const rolledOut = async (generation: number): Promise<boolean> => {
      const o = await api!.get(Resources.daemonsets, NS, 'churn');
      const s = (o['status'] ?? {}) as Record<string, number>;
      return (
        (s['observedGeneration'] ?? 0) >= generation &&
        s['updatedNumberScheduled'] === NODES &&
        s['numberAvailable'] === NODES &&
        s['desiredNumberScheduled'] === NODES
      );
    };
    let t0 = performance.now();
    await api.create(Resources.daemonsets, NS, ds('edge/agent:1'));
    await until('DaemonSet pods on every node', 900_000, () => rolledOut(1), 1000);
    record(
      `churn: DaemonSet created → a pod Running on each of ${NODES} nodes`,
      (performance.now() - t0) / 1000,
      's',
    );
    t0 = performance.now();
    const current = await api.get(Resources.daemonsets, NS, 'churn');
    const next = ds('edge/agent:2');
    await api.update(Resources.daemonsets, { ...next, metadata: current.metadata });
    await until('DaemonSet rolled out', 1_800_000, () => rolledOut(2), 1000);
    record(
      'churn: rolling update (maxUnavailable 10%) → every node on the new pod',
      (performance.now() - t0) / 1000,
      's',
    );
  }

  await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
  await writeFile(
    join(import.meta.dirname, 'results', `scale-${NODES}.json`),
    `${JSON.stringify({ nodes: NODES, podsPerNode: PODS_PER_NODE, date: new Date().toISOString(), cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: totalmem() / 2 ** 30, node: process.version, rows }, null, 2)}\n`,
  );
} finally {
  api?.close();
  if (sim !== undefined) await stopChild(sim.child);
  if (server !== undefined) await server.stop();
  if (process.env['KEDGE_BENCH_KEEP'] !== '1') await rm(dir, { recursive: true, force: true });
  else console.log(`kept ${dir}`);
}
