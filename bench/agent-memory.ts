/**
 * `node bench/agent-memory.ts`: RSS of an idle `kedge agent` (fake runtime, local API on), started the way
 * users start it (bin/kedge.js: cached JavaScript, V8 lite mode, small young generation) and the way tests
 * start it (src/cli/main.ts: load-time type stripping, V8 defaults), each after joining and after a restart.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { idleAgentRss, LAUNCHER, TS_MAIN } from './lib/agent-rss.ts';

const rows: Array<{ name: string; joined: number; restarted: number }> = [];
for (const [name, main] of [
  ['bin/kedge.js (launcher)', LAUNCHER],
  ['src/cli/main.ts (type stripping, V8 defaults)', TS_MAIN],
] as const) {
  const rss = await idleAgentRss(main, []);
  rows.push({ name, ...rss });
  console.log(
    `agent RSS, ${name.padEnd(48)} ${rss.joined.toFixed(1).padStart(7)} MiB after joining ${rss.restarted.toFixed(1).padStart(7)} MiB after a restart`,
  );
}
await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
await writeFile(
  join(import.meta.dirname, 'results', 'agent-memory.json'),
  `${JSON.stringify(rows, null, 2)}\n`,
);
