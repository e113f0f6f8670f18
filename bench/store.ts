/**
 * SQLite store benchmark: `node bench/store.ts [N]` (N writes per write benchmark, default 20,000).
 * Prints a table and writes bench/results/store.json. Values are ~1 KB Pod-like JSON.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.ts';
import { createRecorder, percentile } from './lib/measure.ts';

const N = Number(process.argv[2] ?? 20_000);
const WATCHERS = 1000;
const WATCHED_WRITES = 500;
const dir = await mkdtemp(join(tmpdir(), 'kedge-bench-store-'));
let seq = 0;
const open = () => openSqliteStore({ path: join(dir, `bench-${++seq}.db`), compaction: false });

function podValue(ns: string, name: string, i: number): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: ns,
      uid: `0000-${i.toString(16).padStart(8, '0')}`,
      labels: { app: `app-${i % 50}`, tier: 'backend' },
      annotations: { 'kedge.io/note': 'x'.repeat(300) },
    },
    spec: {
      nodeName: `edge-${i % 100}`,
      containers: [
        {
          name: 'main',
          image: 'registry.local/app:1.2.3',
          args: ['--port=8080', '--verbose'],
          env: [{ name: 'MODE', value: 'edge' }],
          resources: { requests: { cpu: '100m', memory: '64Mi' } },
        },
      ],
    },
    status: {
      phase: 'Running',
      podIP: `10.0.${i % 250}.${i % 200}`,
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  });
}

const { rows, record } = createRecorder(44);
const ms = (start: number) => performance.now() - start;
const rssMb = () => process.memoryUsage().rss / 2 ** 20;

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const out = await fn();
  return [out, ms(start)];
}

async function writes(store: SqliteStore): Promise<void> {
  const [, single] = await timed(async () => {
    for (let i = 0; i < N; i++)
      await store.create(`/registry/pods/single/p-${i}`, podValue('single', `p-${i}`, i));
  });
  record('writes/s, single create (awaited)', (N / single) * 1000, 'ops/s');
  const [, batched] = await timed(async () => {
    for (let b = 0; b < N; b += 100) {
      const ops = Array.from({ length: 100 }, (_, j) => ({
        type: 'create' as const,
        key: `/registry/pods/batch/p-${b + j}`,
        value: podValue('batch', `p-${b + j}`, b + j),
      }));
      await store.batch(ops);
    }
  });
  record('writes/s, batches of 100', (N / batched) * 1000, 'ops/s');
  const [, updates] = await timed(async () => {
    for (let i = 0; i < N; i++)
      await store.update(`/registry/pods/single/p-${i}`, podValue('single', `p-${i}`, i + 1));
  });
  record('writes/s, single update (awaited)', (N / updates) * 1000, 'ops/s');
  const [, gets] = await timed(async () => {
    for (let i = 0; i < N; i++) await store.get(`/registry/pods/single/p-${(i * 7919) % N}`);
  });
  record('get/s', (N / gets) * 1000, 'ops/s');
}

async function lists(store: SqliteStore): Promise<void> {
  // 100,000 keys in 10 namespaces of 10,000 each.
  for (let ns = 0; ns < 10; ns++) {
    for (let b = 0; b < 10_000; b += 1000) {
      await store.batch(
        Array.from({ length: 1000 }, (_, j) => ({
          type: 'create' as const,
          key: `/registry/pods/ns-${ns}/p-${String(b + j).padStart(5, '0')}`,
          value: podValue(`ns-${ns}`, `p-${b + j}`, b + j),
        })),
      );
    }
  }
  for (const [label, prefix, expected] of [
    ['10,000', '/registry/pods/ns-3/', 10_000],
    ['100,000', '/registry/pods/ns-', 100_000],
  ] as const) {
    const [full, fullMs] = await timed(() => store.list(prefix));
    if (full.entries.length !== expected) throw new Error(`listed ${full.entries.length}, not ${expected}`);
    record(`list ${label} keys, full`, fullMs, 'ms');
    for (const [mode, revision] of [
      ['latest', 0],
      ['past revision', store.currentRevision()],
    ] as const) {
      if (mode === 'past revision') await store.create('/registry/other/bump', 'x');
      const start = performance.now();
      let page = await store.list(prefix, { limit: 500, revision });
      record(`list ${label} keys, paged 500 (${mode}): first page`, ms(start), 'ms');
      let n = page.entries.length;
      while (page.more) {
        const startKey = `${page.entries.at(-1)!.key}\0`;
        page = await store.list(prefix, { limit: 500, revision: page.revision, startKey });
        n += page.entries.length;
      }
      if (n !== expected) throw new Error(`paged ${n}, not ${expected}`);
      record(`list ${label} keys, paged 500 (${mode}): all pages`, ms(start), 'ms');
      await store.delete('/registry/other/bump').catch(() => undefined);
    }
  }
  const [count, countMs] = await timed(() => store.count('/registry/pods/ns-'));
  if (count !== 100_000) throw new Error(`counted ${count}`);
  record('count 100,000 keys', countMs, 'ms');
}

async function watchLatency(store: SqliteStore): Promise<void> {
  let started = 0;
  let received = 0;
  let allReceived: () => void = () => {};
  const latencies: number[] = [];
  const watches = Array.from({ length: WATCHERS }, () =>
    store.watch('/registry/pods/watched/', { afterRevision: store.currentRevision() }),
  );
  const consumers = watches.map(async (watch) => {
    for await (const _event of watch) {
      latencies.push(performance.now() - started);
      if (++received === WATCHERS) allReceived();
    }
  });
  for (let i = 0; i < WATCHED_WRITES; i++) {
    const done = new Promise<void>((resolve) => {
      allReceived = resolve;
    });
    received = 0;
    started = performance.now();
    await store.create(`/registry/pods/watched/p-${i}`, podValue('watched', `p-${i}`, i));
    await done;
  }
  for (const watch of watches) watch.close();
  await Promise.all(consumers);
  latencies.sort((a, b) => a - b);
  record(`watch latency p50 (${WATCHERS} watchers)`, percentile(latencies, 50), 'ms');
  record(`watch latency p99 (${WATCHERS} watchers)`, percentile(latencies, 99), 'ms');
  record(`watch latency max (${WATCHERS} watchers)`, latencies.at(-1)!, 'ms');
}

try {
  console.log(
    `kedge store benchmark: N=${N}, node ${process.version}, ${cpus().length} x ${cpus()[0]?.model}`,
  );
  const warm = open(); // JIT warm-up, so small N measures the store rather than the compiler
  for (let i = 0; i < 3000; i++) await warm.create(`/warm/${i}`, podValue('warm', `p-${i}`, i));
  await warm.list('/warm/', { limit: 500 });
  await warm.close();
  const a = open();
  await writes(a);
  await a.close();
  const b = open();
  await lists(b);
  record('RSS after lists', rssMb(), 'MB');
  await watchLatency(b);
  await b.close();
  record('RSS at end', rssMb(), 'MB');
  const results = join(import.meta.dirname, 'results');
  await mkdir(results, { recursive: true });
  const machine = {
    node: process.version,
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    platform: process.platform,
  };
  await writeFile(
    join(results, 'store.json'),
    `${JSON.stringify({ bench: 'store', date: new Date().toISOString(), n: N, machine, rows }, null, 2)}\n`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
