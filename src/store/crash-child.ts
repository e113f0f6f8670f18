/**
 * Helper process for the kill -9 test: writes to the store at argv[2] in a loop (single creates and
 * batches of 10) and prints `<revision> <key>` on stdout for each acknowledged write, until killed.
 */
import { once } from 'node:events';
import { openSqliteStore } from './sqlite.ts';

/** Writes a line; when the pipe is full, waits for it to drain (the loop below never yields otherwise). */
async function report(line: string): Promise<void> {
  if (!process.stdout.write(line)) await once(process.stdout, 'drain');
}

const path = process.argv[2];
if (path === undefined) throw new Error('Usage: crash-child.ts <store path>');
const store = openSqliteStore({ path, compaction: false });
await report('ready\n');
for (let i = 0; ; i++) {
  if (i % 10 === 9) {
    const keys = Array.from({ length: 10 }, (_, j) => `/crash/${i}-${j}`);
    const entries = await store.batch(keys.map((key) => ({ type: 'create', key, value: `{"i":${i}}` })));
    await report(entries.map((e) => `${e.revision} ${e.key}\n`).join(''));
  } else {
    const entry = await store.create(`/crash/${i}`, `{"i":${i}}`);
    await report(`${entry.revision} ${entry.key}\n`);
  }
}
