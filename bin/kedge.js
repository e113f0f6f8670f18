#!/usr/bin/env node
// The kedge command. Runs the TypeScript sources of src/ without a build step, but without paying for
// Node's load-time type stripping in the long-running process either: that loads a WebAssembly TypeScript
// parser that stays in memory (~20 MiB of a ~120 MiB agent). Instead, the sources are stripped once per
// content into a cache (by a short-lived child process, so the parser never enters this one) and a module
// hook serves the cached JavaScript. A file without a cache entry falls back to Node's own stripping, so a
// failed or read-only cache costs memory, never correctness. KEDGE_JS_CACHE=off turns the cache off;
// KEDGE_JS_CACHE=DIR moves it (default $XDG_CACHE_HOME/kedge/js or ~/.cache/kedge/js).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
const setting = process.env.KEDGE_JS_CACHE;
const cacheDir =
  setting === undefined || setting === ''
    ? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kedge', 'js')
    : setting;

const hashOf = (text) => createHash('sha256').update(text).digest('hex').slice(0, 32);

/** Every non-test .ts file under dir. */
function sources(dir, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) sources(path, out);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

let cacheReady = false;
if (setting !== 'off') {
  try {
    // One read and hash per source file per start: the hook below looks files up in this map.
    const cached = new Map(
      sources(src).map((file) => [
        pathToFileURL(file).href,
        join(cacheDir, `${hashOf(readFileSync(file))}.js`),
      ]),
    );
    const missing = [...cached].filter(([, js]) => !existsSync(js)).map(([url]) => fileURLToPath(url));
    if (missing.length > 0) {
      mkdirSync(cacheDir, { recursive: true });
      spawnSync(process.execPath, [join(root, 'scripts', 'strip-cache.js'), cacheDir, ...missing], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, NODE_NO_WARNINGS: '1' },
      });
    }
    for (const [url, js] of cached) if (!existsSync(js)) cached.delete(url);
    cacheReady = missing.every((file) => cached.has(pathToFileURL(file).href));
    registerHooks({
      load(url, context, nextLoad) {
        const js = cached.get(url);
        if (js !== undefined)
          return { format: 'module', source: readFileSync(js, 'utf8'), shortCircuit: true };
        return nextLoad(url, context);
      },
    });
  } catch (err) {
    process.emitWarning(
      `kedge: running without the JavaScript cache (${err instanceof Error ? err.message : err})`,
    );
  }
}

// An edge agent is mostly idle and I/O-bound, and edge machines are short of memory: it runs with V8's lite
// mode (no optimizing compiler: ~13 MiB less, ~3x the idle CPU; see BENCHMARKS.md) and a 1 MiB young
// generation (~5 MiB less). Both must be set when the process starts, so the agent command re-executes
// itself with them (same pid). Lite mode has no WebAssembly, so no load-time type stripping either: only
// with a complete cache. KEDGE_AGENT_V8=default keeps V8's defaults.
const AGENT_FLAGS = ['--lite-mode', '--max-semi-space-size=1'];
if (
  cacheReady &&
  process.argv[2] === 'agent' &&
  process.env.KEDGE_AGENT_V8 !== 'default' &&
  !AGENT_FLAGS.every((flag) => process.execArgv.includes(flag)) &&
  typeof process.execve === 'function'
) {
  process.removeAllListeners('warning');
  process.execve(process.execPath, [
    process.execPath,
    ...process.execArgv,
    ...AGENT_FLAGS,
    ...process.argv.slice(1),
  ]);
}
await import('../src/cli/main.ts');
