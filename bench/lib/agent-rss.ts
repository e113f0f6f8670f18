/**
 * `node bench/lib/agent-rss.ts [NODE_FLAGS...]`: the RSS of one idle `kedge agent` process (fake runtime,
 * local API on) joined to a fresh server, 20 s after it connected, and again after a restart on its stored
 * credentials. Node flags given as arguments go to the agent process, to compare memory settings;
 * RSS_MAIN=ts starts src/cli/main.ts instead of bin/kedge.js; RSS_AGENT_ARGS adds agent flags.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServerProcess } from '../../test/harness/server.ts';

/** The two ways to start kedge: the launcher users run, and the TypeScript entry tests spawn. */
export const LAUNCHER = new URL('../../bin/kedge.js', import.meta.url).pathname;
export const TS_MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

export async function idleAgentRss(
  main: string,
  nodeFlags: readonly string[],
  settleMs = 20_000,
): Promise<{ joined: number; restarted: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'kedge-agent-rss-'));
  const server = await startServerProcess({ dataDir: join(dir, 'server') });
  try {
    const token = (await readFile(join(dir, 'server', 'node-token'), 'utf8')).trim();
    const run = async (withToken: boolean): Promise<number> => {
      const child = spawn(
        process.execPath,
        [
          ...nodeFlags,
          main,
          'agent',
          '--server',
          server.url,
          ...(withToken ? ['--token', token] : []),
          '--node-name',
          'rss-node',
          '--data-dir',
          join(dir, 'agent'),
          ...(process.env['RSS_AGENT_ARGS'] ?? '').split(' ').filter(Boolean),
        ],
        { stdio: ['ignore', 'pipe', 'ignore'], env: process.env },
      );
      const exited = once(child, 'exit');
      try {
        await new Promise<void>((resolve, reject) => {
          createInterface({ input: child.stdout }).on('line', (line) => {
            if (line.includes('"msg":"connected to hub"')) resolve();
          });
          void exited.then(([code]) => reject(new Error(`agent exited with ${code}`)));
        });
        await sleep(settleMs);
        const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
        return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]) / 1024;
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
    };
    return { joined: await run(true), restarted: await run(false) };
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const flags = process.argv.slice(2);
  const rss = await idleAgentRss(process.env['RSS_MAIN'] === 'ts' ? TS_MAIN : LAUNCHER, flags);
  console.log(
    `agent RSS ${flags.join(' ') || '(no flags)'}: ${rss.joined.toFixed(1)} MiB after joining, ${rss.restarted.toFixed(1)} MiB after a restart`,
  );
}
