/**
 * Stream benchmark: `node bench/stream.ts [MIB]` (default 64). A `kedge server` and an agent in this
 * process on real sockets (HTTPS API, mTLS hub WebSocket), the agent's runtime a test double that serves
 * logs from memory and echoes exec stdin to stdout, so the figures are the API + tunnel + agent handler,
 * not containerd. Measures:
 * 1. `GET pods/NAME/log` of MIB MiB (what `kubectl logs` reads), MiB/s;
 * 2. exec over WebSocket v5.channel.k8s.io (what `kubectl exec -i` speaks): MIB MiB to stdin, echoed
 *    back, MiB/s each way;
 * 3. the process RSS growth during each (everything in flight is bounded by the stream window).
 * Prints a table and writes bench/results/stream.json.
 */
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { FakeRuntime } from '../src/agent/fake-runtime.ts';
import type { ExecIO, ExecOptions, LogOptions, PodRef, StreamingRuntime } from '../src/agent/runtime.ts';
import { startAgent } from '../src/cli/agent.ts';
import { startServer } from '../src/cli/server.ts';
import { silentLogger } from '../src/lib/log.ts';

const MIB = Number(process.argv[2] ?? 64);
if (!Number.isSafeInteger(MIB) || MIB < 1)
  throw new TypeError(`MIB must be a positive integer, got ${process.argv[2]}`);
const TOTAL = MIB * 1024 * 1024;

class MemoryRuntime extends FakeRuntime implements StreamingRuntime {
  async logs(_p: PodRef, _o: LogOptions, out: NodeJS.WritableStream, signal: AbortSignal): Promise<void> {
    const chunk = Buffer.alloc(64 * 1024, 'l');
    for (let sent = 0; sent < TOTAL && !signal.aborted; sent += chunk.byteLength) {
      if (!out.write(chunk)) await once(out as NodeJS.EventEmitter, 'drain');
    }
  }
  async exec(_p: PodRef, _o: ExecOptions, io: ExecIO): Promise<{ exitCode: number }> {
    if (io.stdin === undefined || io.stdout === undefined) return { exitCode: 1 };
    for await (const c of io.stdin as AsyncIterable<Buffer>) {
      if (!io.stdout.write(c)) await once(io.stdout as NodeJS.EventEmitter, 'drain');
    }
    return { exitCode: 0 };
  }
}

const rss = (): number => process.memoryUsage.rss() / 1024 / 1024;
/** Samples the RSS every 20 ms until stopped; resolves with the peak. */
function samplePeak(): { stop(): number } {
  let peak = rss();
  const t = setInterval(() => {
    peak = Math.max(peak, rss());
  }, 20);
  return {
    stop() {
      clearInterval(t);
      return Math.max(peak, rss());
    },
  };
}
const dir = await mkdtemp(join(tmpdir(), 'kedge-bench-stream-'));
const server = await startServer({
  dataDir: join(dir, 'server'),
  listen: '127.0.0.1:0',
  logger: silentLogger(),
});
const agent = await startAgent({
  server: server.url,
  token: server.nodeToken,
  nodeName: 'bench-stream',
  dataDir: join(dir, 'agent'),
  localApi: 'off',
  logger: silentLogger(),
  runtimeInstance: new MemoryRuntime({ logger: silentLogger() }),
});
const kubeconfig = await readFile(server.kubeconfigPath, 'utf8');
const field = (name: string): string =>
  Buffer.from(new RegExp(`${name}: (\\S+)`).exec(kubeconfig)?.[1] ?? '', 'base64').toString();
const tls = {
  cert: field('client-certificate-data'),
  key: field('client-key-data'),
  ca: field('certificate-authority-data'),
};
await server.api.storage.create(server.api.registry.lookup('', 'v1', 'pods')!, 'default', {
  metadata: { name: 'p', namespace: 'default' },
  spec: { nodeName: 'bench-stream', containers: [{ name: 'c', image: 'x' }] },
});
// The pod reaches the agent's store through the hub: wait until it holds it.
while (agent.store.get('core/pods/default/p') === undefined) await new Promise((ok) => setTimeout(ok, 50));

const rows: Array<{ name: string; value: number; unit: string }> = [];
const record = (name: string, value: number, unit: string): void => {
  rows.push({ name, value: Math.round(value * 10) / 10, unit });
};

// 1. logs
{
  const before = rss();
  const sampler = samplePeak();
  const started = performance.now();
  const got = await new Promise<number>((ok, fail) => {
    const req = request(`${server.url}/api/v1/namespaces/default/pods/p/log`, tls, (res) => {
      let n = 0;
      res.on('data', (d: Buffer) => {
        n += d.byteLength;
      });
      res.on('end', () => ok(n));
    });
    req.on('error', fail);
    req.end();
  });
  const seconds = (performance.now() - started) / 1000;
  if (got !== TOTAL) throw new Error(`log: got ${got} bytes, expected ${TOTAL}`);
  record(`kubectl logs (GET pods/p/log), ${MIB} MiB`, MIB / seconds, 'MiB/s');
  record('  RSS growth during the log (peak)', sampler.stop() - before, 'MiB');
}

// 2. exec echo over WebSocket v5
{
  const before = rss();
  const sampler = samplePeak();
  const started = performance.now();
  const ws = new WebSocket(
    `${server.url.replace('https', 'wss')}/api/v1/namespaces/default/pods/p/exec?command=cat&stdin=true&stdout=true`,
    ['v5.channel.k8s.io'],
    tls,
  );
  await once(ws, 'open');
  let received = 0;
  let status = '';
  ws.on('message', (d: Buffer) => {
    if (d[0] === 1) received += d.byteLength - 1;
    if (d[0] === 3) status = d.subarray(1).toString();
  });
  const closed = once(ws, 'close');
  const chunk = Buffer.alloc(32 * 1024 + 1, 's');
  chunk[0] = 0;
  for (let sent = 0; sent < TOTAL; sent += chunk.byteLength - 1) {
    await new Promise<void>((ok) => ws.send(chunk, () => ok()));
  }
  ws.send(Buffer.of(255, 0));
  await closed;
  const seconds = (performance.now() - started) / 1000;
  const expected = Math.ceil(TOTAL / (chunk.byteLength - 1)) * (chunk.byteLength - 1);
  if (received !== expected || !status.includes('Success'))
    throw new Error(`exec: got ${received} bytes, status ${status}`);
  record(`kubectl exec -i cat (WebSocket v5), ${MIB} MiB in and back`, MIB / seconds, 'MiB/s');
  record('  RSS growth during the exec (peak)', sampler.stop() - before, 'MiB');
}

await agent.close();
await server.close();
await rm(dir, { recursive: true, force: true });

console.log(
  `stream benchmark: ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
);
for (const r of rows) console.log(`${r.name.padEnd(58)} ${String(r.value).padStart(8)} ${r.unit}`);
await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
await writeFile(
  join(import.meta.dirname, 'results', 'stream.json'),
  `${JSON.stringify({ mib: MIB, rows }, null, 2)}\n`,
);
