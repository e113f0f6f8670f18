import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly dataDir: string;
  /** The local API URL the agent printed (undefined when off). */
  readonly localApi: string | undefined;
  /** The MQTT broker URL the agent serves twins on (undefined when off). */
  readonly mqtt: string | undefined;
  /** Log lines the agent printed so far (parsed JSON). */
  readonly logs: Array<Record<string, unknown>>;
  /** Resolves with the first log line (present or future) matching the predicate. */
  waitForLog(match: (entry: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

/** Starts `kedge agent` as a child process and waits for its 'kedge agent ready' line. */
export async function startAgentProcess(options: {
  server: string;
  dataDir: string;
  nodeName: string;
  token?: string;
  extraArgs?: readonly string[];
  /** Flags for node itself (V8 flags such as --max-semi-space-size). */
  nodeArgs?: readonly string[];
  /** The script to run instead of src/cli/main.ts, e.g. bin/kedge.js (the launcher users run). */
  main?: string;
}): Promise<AgentProcess> {
  const args = [
    ...(options.nodeArgs ?? []),
    options.main ?? MAIN,
    'agent',
    '--server',
    options.server,
    '--node-name',
    options.nodeName,
    '--data-dir',
    options.dataDir,
    '--local-api',
    '127.0.0.1:0',
    ...(options.token === undefined ? [] : ['--token', options.token]),
    // A free port for the embedded MQTT broker unless the test chooses (several agents run at once).
    ...((options.extraArgs ?? []).some((a) => a.startsWith('--mqtt-'))
      ? []
      : ['--mqtt-listen', '127.0.0.1:0']),
    ...(options.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KEDGE_LOG_LEVEL: process.env['KEDGE_LOG_LEVEL'] ?? 'info' },
  });
  const logs: Array<Record<string, unknown>> = [];
  const watchers = new Set<{
    match: (e: Record<string, unknown>) => boolean;
    resolve: (e: Record<string, unknown>) => void;
  }>();
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      entry = { raw: line };
    }
    logs.push(entry);
    for (const w of watchers) {
      if (w.match(entry)) {
        watchers.delete(w);
        w.resolve(entry);
      }
    }
  });
  const waitForLog = (match: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
    const found = logs.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      watchers.add({ match, resolve });
      void exited.then((code) => reject(new Error(`kedge agent exited with ${code}: ${stderr}`)));
    });
  };
  const ready = await waitForLog((e) => e['msg'] === 'kedge agent ready');
  return {
    child,
    dataDir: options.dataDir,
    localApi: typeof ready['localApi'] === 'string' ? ready['localApi'] : undefined,
    mqtt: typeof ready['mqtt'] === 'string' ? ready['mqtt'] : undefined,
    logs,
    waitForLog,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
