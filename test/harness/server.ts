import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

export interface ServerProcess {
  readonly url: string;
  readonly dataDir: string;
  readonly kubeconfig: string;
  readonly child: ChildProcess;
  /** Log lines the server printed so far (parsed JSON). */
  readonly logs: Array<Record<string, unknown>>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
}

/** Start `kedge server` as a child process on a free loopback port and wait until it says it is ready. */
export async function startServerProcess(
  options: { dataDir?: string; listen?: string; nodeArgs?: readonly string[] } = {},
): Promise<ServerProcess> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'kedge-test-')));
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeArgs ?? []),
      MAIN,
      'server',
      '--data-dir',
      dataDir,
      '--listen',
      options.listen ?? '127.0.0.1:0',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KEDGE_LOG_LEVEL: process.env['KEDGE_LOG_LEVEL'] ?? 'info' },
    },
  );
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry['msg'] === 'kedge server ready') resolve(entry);
      } catch {
        logs.push({ raw: line });
      }
    });
    void exited.then((code) =>
      reject(new Error(`kedge server exited with ${code} before it was ready: ${stderr}`)),
    );
  });
  const entry = await ready;
  return {
    url: String(entry['url']),
    dataDir,
    kubeconfig: String(entry['kubeconfig']),
    child,
    logs,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
