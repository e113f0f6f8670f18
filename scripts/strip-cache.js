// `node scripts/strip-cache.js CACHE_DIR FILE.ts...`: writes each file with its TypeScript types stripped to
// CACHE_DIR/<hash of its content>.js (see bin/kedge.js). Import specifiers keep their .ts endings: the module
// hook that serves these files resolves them as usual. Writes go through a temporary name, so a reader never
// sees half a file.
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { join } from 'node:path';

const [cacheDir, ...files] = process.argv.slice(2);
for (const file of files) {
  const source = readFileSync(file);
  const target = join(cacheDir, `${createHash('sha256').update(source).digest('hex').slice(0, 32)}.js`);
  const js = stripTypeScriptTypes(source.toString('utf8'), { mode: 'strip', sourceUrl: file });
  const temp = `${target}.${process.pid}.tmp`;
  writeFileSync(temp, js);
  renameSync(temp, target);
}
