/**
 * Copies src/ to plain JavaScript (types stripped ahead of time, `.ts` import specifiers rewritten to
 * `.js`), to measure what running the agent without load-time type stripping costs. Test files are left
 * out; other files (e.g. .proto) are copied as they are.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { join } from 'node:path';

function copyTree(src: string, dst: string): void {
  mkdirSync(dst, { recursive: true });
  for (const name of readdirSync(src)) {
    const from = join(src, name);
    if (statSync(from).isDirectory()) copyTree(from, join(dst, name));
    else if (name.endsWith('.test.ts')) continue;
    else if (name.endsWith('.ts')) {
      const js = stripTypeScriptTypes(readFileSync(from, 'utf8')).replace(
        /((?:from|import)\s*\(?\s*'\.{1,2}\/[^']*)\.ts'/g,
        "$1.js'",
      );
      writeFileSync(join(dst, name.replace(/\.ts$/, '.js')), js);
    } else writeFileSync(join(dst, name), readFileSync(from));
  }
}

/** Writes outDir/src (JS), outDir/package.json and a node_modules link; returns the path of the CLI main. */
export function stripToJs(projectDir: string, outDir: string): string {
  copyTree(join(projectDir, 'src'), join(outDir, 'src'));
  writeFileSync(join(outDir, 'package.json'), readFileSync(join(projectDir, 'package.json')));
  symlinkSync(join(projectDir, 'node_modules'), join(outDir, 'node_modules'), 'dir');
  return join(outDir, 'src', 'cli', 'main.js');
}
