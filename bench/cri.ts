/**
 * CRI benchmark: `node bench/cri.ts [PODS]` (default 100). Env KEDGE_BENCH_IDLE_SECONDS (default 60) sets
 * the idle CPU window, KEDGE_BENCH_LATENCY_PODS (default 30) the pods timed one by one.
 *
 * A real `kedge server`, a private containerd (test/harness/containerd.ts, local busybox image) and
 * `kedge agent --runtime cri`:
 * 1. pod start latency, create (API) → Running and Ready seen on a watch (what `kubectl get -w` shows),
 *    one pod at a time, p50/p99, for host-network pods and for pods on the default bridge network;
 * 2. agent RSS (VmRSS) idle with 0, 10 and PODS running pods (each pod a pause and a busybox container);
 * 3. agent CPU while idle with PODS pods (relist every second, resync every 10 s, no probes);
 * 4. the agent restarted on the same data dir: time to adopt PODS running pods, and its RSS then, from
 *    `.ts` sources, with V8's young generation capped (--max-semi-space-size=1, which NODE_OPTIONS
 *    accepts), and from sources pre-stripped to `.js`.
 * Prints a table and writes bench/results/cri.json.
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
import { Resources } from '../src/client/types.ts';
import { readKubeconfig, resolveKubeconfig } from '../src/lib/kubeconfig.ts';
import { type AgentProcess, startAgentProcess } from '../test/harness/agent.ts';
import {
  BUSYBOX_IMAGE,
  type Containerd,
  containerdMissing,
  startContainerd,
} from '../test/harness/containerd.ts';
import { type ServerProcess, startServerProcess } from '../test/harness/server.ts';
import { LAUNCHER } from './lib/agent-rss.ts';
import { cpuSeconds, createRecorder, percentile, rssMiB } from './lib/measure.ts';

const PODS = Number(process.argv[2] ?? 100);
const IDLE_SECONDS = Number(process.env['KEDGE_BENCH_IDLE_SECONDS'] ?? 60);
const LATENCY_PODS = Number(process.env['KEDGE_BENCH_LATENCY_PODS'] ?? 30);
const NS = 'default';
const NODE = 'bench-cri';
if (!Number.isSafeInteger(PODS) || PODS < 10)
  throw new TypeError(`PODS must be an integer >= 10, got ${process.argv[2]}`);

const { rows, record } = createRecorder(72);

const isReady = (o: KubeObject): boolean => {
  const st = o['status'] as
    | { phase?: string; conditions?: Array<{ type: string; status: string }> }
    | undefined;
  return (
    st?.phase === 'Running' && st.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true
  );
};

function podObject(name: string, hostNetwork: boolean): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { bench: 'cri' } },
    spec: {
      nodeName: NODE,
      hostNetwork,
      terminationGracePeriodSeconds: 0,
      containers: [{ name: 'app', image: BUSYBOX_IMAGE, command: ['sleep', '100000000'] }],
    },
  };
}

/** Pod names that are Running and Ready, kept current by one watch. */
function readyWatch(api: RemoteCluster): {
  ready: Set<string>;
  waitFor(names: readonly string[]): Promise<void>;
  close(): void;
} {
  const ready = new Set<string>();
  const abort = new AbortController();
  let wake: (() => void) | undefined;
  void (async () => {
    while (!abort.signal.aborted) {
      try {
        for await (const e of api.watch(Resources.pods, {
          namespace: NS,
          resourceVersion: '0',
          signal: abort.signal,
        })) {
          if (e.type === 'BOOKMARK') continue;
          const name = e.object.metadata.name ?? '';
          if (e.type !== 'DELETED' && isReady(e.object)) ready.add(name);
          else ready.delete(name);
          wake?.();
        }
      } catch {
        if (!abort.signal.aborted) await sleep(100);
      }
    }
  })();
  return {
    ready,
    async waitFor(names) {
      while (!names.every((n) => ready.has(n))) await new Promise<void>((r) => (wake = r));
    },
    close: () => abort.abort(),
  };
}

let containerd: Containerd | undefined;
let server: ServerProcess | undefined;
let agent: AgentProcess | undefined;
const dir = await mkdtemp(join(tmpdir(), 'kedge-bench-cri-'));

async function main(): Promise<void> {
  const missing = containerdMissing();
  if (missing !== undefined) throw new Error(`The CRI benchmark needs containerd: ${missing}`);
  containerd = await startContainerd();
  server = await startServerProcess({ dataDir: join(dir, 'server') });
  const api = new RemoteCluster(resolveKubeconfig(await readKubeconfig(server.kubeconfig)));
  const token = (await readFile(join(server.dataDir, 'node-token'), 'utf8')).trim();
  const agentDir = join(dir, 'agent');
  const agentArgs = ['--runtime', 'cri', '--cri-endpoint', containerd.endpoint, '--host-ip', '127.0.0.1'];
  agent = await startAgentProcess({
    main: LAUNCHER,
    server: server.url,
    token,
    nodeName: NODE,
    dataDir: agentDir,
    extraArgs: agentArgs,
  });
  await agent.waitForLog((e) => e['msg'] === 'connected to hub');
  const watch = readyWatch(api);
  await sleep(5_000);
  record('agent RSS idle, 0 pods', await rssMiB(agent.child.pid!), 'MiB');

  // ---- 1. start latency, one pod at a time ----
  for (const hostNetwork of [true, false]) {
    const times: number[] = [];
    for (let i = 0; i < LATENCY_PODS; i++) {
      const name = `lat-${hostNetwork ? 'host' : 'bridge'}-${i}`;
      const t = performance.now();
      await api.create(Resources.pods, NS, podObject(name, hostNetwork));
      await watch.waitFor([name]);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const what = hostNetwork ? 'host network' : 'bridge network (CNI)';
    record(`pod start, create → Running+Ready on a watch, ${what}, p50`, percentile(times, 50), 'ms');
    record(`pod start, create → Running+Ready on a watch, ${what}, p99`, percentile(times, 99), 'ms');
  }
  for (const p of (await api.list(Resources.pods, { namespace: NS })).items) {
    await api.delete(Resources.pods, NS, p.metadata.name ?? '', { gracePeriodSeconds: 0 });
  }
  for (;;) {
    // Wait until the agent removed every sandbox (the API deletes at once, the node stops after).
    const left = (await containerd.ctr(['containers', 'ls', '-q']))
      .split('\n')
      .filter((l) => l !== '').length;
    if (left === 0) break;
    await sleep(500);
  }

  // ---- 2. RSS with 10 and PODS pods ----
  const names = Array.from({ length: PODS }, (_, i) => `pod-${String(i).padStart(4, '0')}`);
  let t = performance.now();
  for (const n of names.slice(0, 10)) await api.create(Resources.pods, NS, podObject(n, true));
  await watch.waitFor(names.slice(0, 10));
  await sleep(10_000);
  record('agent RSS idle, 10 pods', await rssMiB(agent.child.pid!), 'MiB');
  t = performance.now();
  for (const n of names.slice(10)) await api.create(Resources.pods, NS, podObject(n, true));
  await watch.waitFor(names);
  record(`${PODS - 10} more pods created at once → all Running+Ready`, (performance.now() - t) / 1000, 's');
  await sleep(15_000);
  record(`agent RSS idle, ${PODS} pods`, await rssMiB(agent.child.pid!), 'MiB');

  // ---- 3. idle CPU with PODS pods ----
  const c0 = await cpuSeconds(agent.child.pid!);
  const w0 = performance.now();
  await sleep(IDLE_SECONDS * 1000);
  const used = (await cpuSeconds(agent.child.pid!)) - c0;
  record(
    `agent CPU idle with ${PODS} pods (${IDLE_SECONDS} s window)`,
    (100 * used) / ((performance.now() - w0) / 1000),
    '% of one core',
  );
  record(`containerd RSS with ${PODS} pods (shims not counted)`, await rssMiB(containerd.pid), 'MiB');

  // ---- 4. restart on the same data dir: adopt PODS pods ----
  watch.close();
  await agent.stop();
  const tsMain = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
  for (const [label, mainFile, nodeArgs] of [
    ['bin/kedge.js, what users run', LAUNCHER, []],
    ['src/cli/main.ts, what tests run', tsMain, []],
  ] as const) {
    const started = performance.now();
    const child = spawn(
      process.execPath,
      [
        ...nodeArgs,
        mainFile,
        'agent',
        '--server',
        server.url,
        '--node-name',
        NODE,
        '--data-dir',
        agentDir,
        '--local-api',
        '127.0.0.1:0',
        ...agentArgs,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = once(child, 'exit');
    const podsStarted = new Set<string>();
    let containersStarted = 0;
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const e = JSON.parse(line) as Record<string, unknown>;
        if (e['msg'] === 'pod started') podsStarted.add(String(e['pod']));
        if (e['msg'] === 'container started') containersStarted++;
        if (podsStarted.size === PODS) resolve();
      });
      void exited.then(([code]) => reject(new Error(`agent exited with ${code}`)));
    });
    record(
      `agent restart (${label}): start → all ${PODS} pods adopted`,
      (performance.now() - started) / 1000,
      's',
    );
    record(`containers started again by the restarted agent (${label})`, containersStarted, 'containers');
    await sleep(15_000);
    record(`agent RSS idle, ${PODS} pods, after restart (${label})`, await rssMiB(child.pid!), 'MiB');
    const cpu0 = await cpuSeconds(child.pid!);
    const at0 = performance.now();
    await sleep(IDLE_SECONDS * 1000);
    record(
      `agent CPU idle, ${PODS} pods, after restart (${label})`,
      (100 * ((await cpuSeconds(child.pid!)) - cpu0)) / ((performance.now() - at0) / 1000),
      '% of one core',
    );
    child.kill('SIGTERM');
    await exited;
  }
  api.close();
}

try {
  console.log(
    `CRI benchmark: ${PODS} pods, ${cpus().length} cpus, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`,
  );
  await main();
  await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
  await writeFile(
    join(import.meta.dirname, 'results', 'cri.json'),
    `${JSON.stringify({ date: new Date().toISOString(), pods: PODS, rows }, null, 2)}\n`,
  );
} finally {
  await agent?.stop();
  await server?.stop();
  await containerd?.stop();
  await rm(dir, { recursive: true, force: true });
}
