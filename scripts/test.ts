// Runs every test file with node's test runner. Arguments narrow the run: `npm test -- store apiserver`
// runs only files whose path contains one of the words.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir: string, out: string[]): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, out);
    else if (entry.name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = [...walk('src', []), ...walk('test', [])]
  .filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)))
  .sort();
if (files.length === 0) {
  console.error(`No test files match ${filters.join(' ')}`);
  process.exit(1);
}
const concurrency = process.env['KEDGE_TEST_CONCURRENCY'] ?? '2';
// Files that start their own containerd run one at a time, after the others: two containerds setting up
// bridge networks (one bridge, one IP range, iptables) at once have left pods in ContainerCreating.
const ownsContainerd = (f: string): boolean => readFileSync(f, 'utf8').includes('startContainerd(');
const run = (group: string[], n: string): number => {
  if (group.length === 0) return 0;
  const result = spawnSync(
    process.execPath,
    ['--test', `--test-concurrency=${n}`, '--test-timeout=300000', ...group],
    { stdio: 'inherit' },
  );
  return result.status ?? 1;
};
const first = run(
  files.filter((f) => !ownsContainerd(f)),
  concurrency,
);
const second = run(files.filter(ownsContainerd), '1');
process.exit(first !== 0 ? first : second);
