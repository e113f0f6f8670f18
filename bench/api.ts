// API benchmark: a real `kedge server` process, pods created over HTTPS, then list latency (full and
// paged, as kubectl pages with limit=500), watch event latency through the API, and the server's RSS.
// Usage: node bench/api.ts [PODS=10000] [WATCHERS=200]
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { KubeObject } from '../src/api/meta.ts';
import { RemoteCluster } from '../src/client/remote-cluster.ts';
import { Resources } from '../src/client/types.ts';
import { type ResolvedKubeconfig, readKubeconfig, resolveKubeconfig } from '../src/lib/kubeconfig.ts';

const PODS = Number(process.argv[2] ?? 10_000);
const WATCHERS = Number(process.argv[3] ?? 200);
const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

function pod(i: number): KubeObject {
  return {
    metadata: { name: `pod-${String(i).padStart(6, '0')}`, labels: { app: `app-${i % 100}`, tier: 'bench' } },
    spec: {
      nodeName: `node-${i % 1000}`,
      containers: [
        {
          name: 'app',
          image: 'registry.local/app:1.0',
          ports: [{ containerPort: 8080 }],
          env: [{ name: 'MODE', value: 'bench' }],
          resources: { requests: { cpu: '100m', memory: '64Mi' } },
        },
      ],
    },
  };
}

/**
 * One watch as its own HTTPS connection, read as raw lines: the bench needs only each event's name and
 * arrival time, so the figure is the server's fan-out, not the client's JSON parsing. (RemoteCluster
 * is not used here: its 64-socket pool would park the 65th long-running watch and every request after.)
 */
function rawWatch(
  config: ResolvedKubeconfig,
  path: string,
  onEvent: (name: string, at: number) => void,
  signal: AbortSignal,
): Promise<void> {
  const server = new URL(config.cluster.server);
  return new Promise<void>((resolve, reject) => {
    const req = httpsRequest(
      {
        hostname: server.hostname,
        port: server.port,
        path,
        agent: false,
        signal,
        ...(config.cluster.caPem === undefined ? {} : { ca: config.cluster.caPem }),
        ...(config.user.clientCertPem === undefined ? {} : { cert: config.user.clientCertPem }),
        ...(config.user.clientKeyPem === undefined ? {} : { key: config.user.clientKeyPem }),
      },
      (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`watch ${path}: HTTP ${res.statusCode}`));
          res.resume();
          return;
        }
        let rest = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const at = performance.now();
          const lines = (rest + chunk).split('\n');
          rest = lines.pop() ?? '';
          for (const line of lines) {
            const name = /"metadata":\{"name":"([^"]+)"/.exec(line)?.[1];
            if (name !== undefined) onEvent(name, at);
          }
        });
        res.on('end', resolve);
        res.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
      },
    );
    req.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
    req.end();
  });
}

const dir = await mkdtemp(join(tmpdir(), 'kedge-bench-api-'));
const child = spawn(process.execPath, [MAIN, 'server', '--data-dir', dir, '--listen', '127.0.0.1:0'], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, KEDGE_LOG_LEVEL: 'info' },
});
const ready = await new Promise<{ kubeconfig: string }>((resolve, reject) => {
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    const entry = JSON.parse(line) as { msg?: string; kubeconfig?: string };
    if (entry.msg === 'kedge server ready') resolve({ kubeconfig: entry.kubeconfig ?? '' });
  });
  child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
});
const kubeconfig = resolveKubeconfig(await readKubeconfig(ready.kubeconfig));
const cluster = new RemoteCluster(kubeconfig);
const rows: Array<[string, string]> = [];
try {
  const rssIdle = await rssMb(child.pid!);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (;;) {
        const i = next++;
        if (i >= PODS) return;
        await cluster.create(Resources.pods, 'default', pod(i));
      }
    }),
  );
  const createSec = (performance.now() - t0) / 1000;
  rows.push([`create ${PODS} pods over HTTPS (16 clients)`, `${(PODS / createSec).toFixed(0)} pods/s`]);

  const times = async (fn: () => Promise<unknown>, n: number): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = performance.now();
      await fn();
      out.push(performance.now() - s);
    }
    return out.sort((a, b) => a - b);
  };
  const count = (await cluster.list(Resources.pods, { namespace: 'default' })).items.length;
  if (count !== PODS) throw new Error(`expected ${PODS} pods listed, got ${count}`);
  const full = await times(() => cluster.list(Resources.pods, { namespace: 'default' }), 5);
  rows.push([`list ${PODS} pods, full`, `p50 ${pct(full, 50).toFixed(0)} ms`]);
  const first = await times(() => cluster.list(Resources.pods, { namespace: 'default', limit: 500 }), 20);
  rows.push([
    `list ${PODS} pods, first page of 500`,
    `p50 ${pct(first, 50).toFixed(1)} ms, p99 ${pct(first, 99).toFixed(1)} ms`,
  ]);
  const paged = await times(async () => {
    let cont: string | undefined;
    do {
      const page = await cluster.list(Resources.pods, {
        namespace: 'default',
        limit: 500,
        ...(cont ? { continue: cont } : {}),
      });
      cont = page.metadata.continue;
    } while (cont);
  }, 3);
  rows.push([`list ${PODS} pods, all pages of 500`, `p50 ${pct(paged, 50).toFixed(0)} ms`]);
  const selected = await times(
    () => cluster.list(Resources.pods, { namespace: 'default', labelSelector: 'app=app-7' }),
    5,
  );
  rows.push([`list with a label selector (1% match)`, `p50 ${pct(selected, 50).toFixed(0)} ms`]);

  // Watch latency through the API: WATCHERS concurrent HTTPS watches on configmaps, one write at a time;
  // latency is from the start of the write to each watcher receiving its event.
  const rv =
    (await cluster.list(Resources.configmaps, { namespace: 'default' })).metadata.resourceVersion ?? '0';
  const ctrl = new AbortController();
  const seen = new Map<string, number>();
  const started = new Map<string, number>();
  const latencies: number[] = [];
  let waiting: { name: string; resolve: () => void } | undefined;
  const onEvent = (name: string, at: number): void => {
    const s = started.get(name);
    if (s !== undefined) latencies.push(at - s);
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    if (n === WATCHERS && waiting?.name === name) waiting.resolve();
  };
  const watchPath = `/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=${rv}`;
  const watchers = Array.from({ length: WATCHERS }, () =>
    rawWatch(kubeconfig, watchPath, onEvent, ctrl.signal),
  );
  let failure: unknown;
  for (const w of watchers) w.catch((err: unknown) => (failure ??= err));
  // Every watcher has its event for one write, or the benchmark fails with the count instead of hanging.
  const delivered = async (name: string, write: () => Promise<unknown>): Promise<void> => {
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`${name}: ${seen.get(name) ?? 0} of ${WATCHERS} watchers got the event in 60 s`)),
        60_000,
      );
      waiting = {
        name,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
    });
    await write();
    if ((seen.get(name) ?? 0) < WATCHERS) await done;
    waiting = undefined;
    if (failure !== undefined) throw failure;
  };
  // A first write that every watcher must see: afterwards all watches are established.
  await delivered('warmup', () =>
    cluster.create(Resources.configmaps, 'default', { metadata: { name: 'warmup' } }),
  );
  const WRITES = 50;
  for (let i = 0; i < WRITES; i++) {
    const name = `w${i}`;
    await delivered(name, async () => {
      started.set(name, performance.now());
      await cluster.create(Resources.configmaps, 'default', { metadata: { name } });
    });
  }
  ctrl.abort();
  await Promise.allSettled(watchers);
  latencies.sort((a, b) => a - b);
  rows.push([
    `watch event latency, ${WATCHERS} HTTPS watchers`,
    `p50 ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms, max ${pct(latencies, 100).toFixed(1)} ms`,
  ]);
  rows.push(['server RSS idle (empty store)', `${rssIdle.toFixed(0)} MB`]);
  rows.push([
    `server RSS with ${PODS} pods stored (after lists)`,
    `${(await rssMb(child.pid!)).toFixed(0)} MB`,
  ]);
} finally {
  cluster.close();
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await rm(dir, { recursive: true, force: true });
}

const width = Math.max(...rows.map((r) => r[0].length));
console.log(`\nAPI benchmark (${PODS} pods), node ${process.version}`);
for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
await mkdir(new URL('./results/', import.meta.url), { recursive: true });
await writeFile(
  new URL(`./results/api-${PODS}.json`, import.meta.url),
  JSON.stringify(Object.fromEntries(rows), null, 2),
);
