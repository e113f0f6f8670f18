/**
 * `node bench/pki.ts [N]`: what a join costs in certificate work. signCsr is the server's share of a join
 * (parse and verify the CSR, issue and sign the node certificate), createCsr the node's (new P-256 key and
 * a signed PKCS#10 request). Reports joins per second and CPU milliseconds per call, plus the RSS and the
 * modules loaded by a fresh process that only creates one CSR (what an agent pays to join).
 */
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createCA, createCsr, signCsr } from '../src/lib/pki.ts';

const n = Number(process.argv[2] ?? 500);
if (!Number.isInteger(n) || n < 1) throw new Error(`N must be a positive integer, got ${process.argv[2]}`);

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

const rows = {
  n,
  signCsr: sign,
  createCsr: create,
  agentOneCsr: agent,
};
console.log(
  `signCsr   ${sign.perSecond.toFixed(0).padStart(6)}/s  ${sign.cpuMs.toFixed(2)} ms CPU each (N=${n})`,
);
console.log(`createCsr ${create.perSecond.toFixed(0).padStart(6)}/s  ${create.cpuMs.toFixed(2)} ms CPU each`);
console.log(
  `fresh process, RSS growth from its first createCsr: +${agent.rssMiB.toFixed(1)} MiB, @peculiar/x509 loaded: ${agent.peculiar}, asn1js loaded: ${agent.asn1js}`,
);
await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
await writeFile(join(import.meta.dirname, 'results', 'pki.json'), `${JSON.stringify(rows, null, 2)}\n`);
