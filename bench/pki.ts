/**
 * `node bench/pki.ts [N] [JOINS]`: what a join costs in certificate work. signCsr is the server's share of
 * a join (parse and verify the CSR, issue and sign the node certificate), createCsr the node's (new P-256
 * key and a signed PKCS#10 request). Reports joins per second and CPU milliseconds per call, plus the RSS
 * and the modules loaded by a fresh process that only creates one CSR (what an agent pays to join).
 * Then JOINS (default 200) whole joins against a real `kedge server` process through its join endpoint, 16
 * at once (each: TLS, token check, CSR, Node object): joins per second and the server's CPU per join.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createCA, createCsr, signCsr } from '../src/lib/pki.ts';
import { removeDir, startServerProcess } from '../test/harness/server.ts';
import { joinNodes } from './lib/node-swarm.ts';

const n = Number(process.argv[2] ?? 500);
if (!Number.isInteger(n) || n < 1) throw new Error(`N must be a positive integer, got ${process.argv[2]}`);
const joins = Number(process.argv[3] ?? 200);
if (!Number.isInteger(joins) || joins < 0)
  throw new Error(`JOINS must be an integer >= 0, got ${process.argv[3]}`);

async function measure(run: (i: number) => Promise<unknown>): Promise<{ perSecond: number; cpuMs: number }> {
  for (let i = 0; i < Math.min(20, n); i++) await run(i); // warm up (JIT, lazy loading)
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await run(i);
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  const used = process.cpuUsage(cpu);
  return { perSecond: (n * 1000) / wallMs, cpuMs: (used.user + used.system) / 1000 / n };
}

const ca = await createCA({ commonName: 'bench-ca' });
const csrs: string[] = [];
for (let i = 0; i < n; i++) {
  csrs.push((await createCsr({ commonName: `system:node:n${i}`, organizations: ['system:nodes'] })).csrPem);
}
const create = await measure((i) =>
  createCsr({ commonName: `system:node:n${i}`, organizations: ['system:nodes'] }),
);
const sign = await measure((i) =>
  signCsr(ca, csrs[i] ?? '', { commonName: `system:node:n${i}`, organizations: ['system:nodes'] }),
);

// A fresh process that creates one CSR: its RSS growth from the call (pki.ts already imported) and whether
// an ASN.1 library was loaded.
const pkiUrl = pathToFileURL(join(import.meta.dirname, '..', 'src', 'lib', 'pki.ts')).href;
const child = spawnSync(
  process.execPath,
  [
    '--input-type=module',
    '-e',
    `import { createRequire } from 'node:module';
     const { createCsr } = await import(${JSON.stringify(pkiUrl)});
     const before = process.memoryUsage().rss;
     await createCsr({ commonName: 'system:node:x', organizations: ['system:nodes'] });
     globalThis.gc?.();
     const cache = Object.keys(createRequire(import.meta.url).cache);
     console.log(JSON.stringify({ rssMiB: (process.memoryUsage().rss - before) / 1048576,
       peculiar: cache.some((p) => p.includes('@peculiar')), asn1js: cache.some((p) => p.includes('asn1js')) }));`,
  ],
  { encoding: 'utf8' },
);
if (child.status !== 0) throw new Error(`child failed: ${child.stderr}`);
const agent = JSON.parse(child.stdout) as { rssMiB: number; peculiar: boolean; asn1js: boolean };

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 1/100 s). */
async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

let endpoint: { joins: number; perSecond: number; serverCpuMs: number; clientCpuMs: number } | undefined;
if (joins > 0) {
  const dir = await mkdtemp(join(tmpdir(), 'kedge-bench-pki-'));
  const server = await startServerProcess({ dataDir: join(dir, 'server'), listen: '127.0.0.1:0' });
  try {
    const token = (await readFile(join(dir, 'server', 'node-token'), 'utf8')).trim();
    const pid = server.child.pid ?? 0;
    await joinNodes(server.url, token, ['warm-0', 'warm-1', 'warm-2', 'warm-3'], join(dir, 'warm'), 4);
    const names = Array.from({ length: joins }, (_, i) => `bench-${i}`);
    const serverCpu = await processCpuSeconds(pid);
    const clientCpu = process.cpuUsage();
    const start = performance.now();
    await joinNodes(server.url, token, names, join(dir, 'nodes'), 16);
    const seconds = (performance.now() - start) / 1000;
    const used = process.cpuUsage(clientCpu);
    endpoint = {
      joins,
      perSecond: joins / seconds,
      serverCpuMs: (((await processCpuSeconds(pid)) - serverCpu) * 1000) / joins,
      clientCpuMs: (used.user + used.system) / 1000 / joins,
    };
  } finally {
    await server.stop();
    await removeDir(dir);
  }
}

const rows = {
  n,
  signCsr: sign,
  createCsr: create,
  agentOneCsr: agent,
  endpoint,
};
console.log(
  `signCsr   ${sign.perSecond.toFixed(0).padStart(6)}/s  ${sign.cpuMs.toFixed(2)} ms CPU each (N=${n})`,
);
console.log(`createCsr ${create.perSecond.toFixed(0).padStart(6)}/s  ${create.cpuMs.toFixed(2)} ms CPU each`);
console.log(
  `fresh process, RSS growth from its first createCsr: +${agent.rssMiB.toFixed(1)} MiB, @peculiar/x509 loaded: ${agent.peculiar}, asn1js loaded: ${agent.asn1js}`,
);
if (endpoint !== undefined) {
  console.log(
    `join endpoint, real server process: ${endpoint.perSecond.toFixed(0)} joins/s (16 at once, ${joins} joins), server CPU ${endpoint.serverCpuMs.toFixed(1)} ms per join, joining side ${endpoint.clientCpuMs.toFixed(1)} ms`,
  );
}
await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
await writeFile(join(import.meta.dirname, 'results', 'pki.json'), `${JSON.stringify(rows, null, 2)}\n`);
