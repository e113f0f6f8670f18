// `kedge sim` as a real process against a real `kedge server`: 20 simulated nodes join, connect and are
// Ready in kubectl; a Deployment of 40 replicas is spread over them and every pod goes Running (fake
// runtime, status through the real hub protocol); a restart without --token reuses the stored credentials.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../src/api/meta.ts';
import { parseSourceAddresses, resolveSimOptions } from '../src/cli/sim.ts';
import { RemoteCluster } from '../src/client/remote-cluster.ts';
import { Resources } from '../src/client/types.ts';
import { isKedgeError } from '../src/lib/errors.ts';
import { readKubeconfig, resolveKubeconfig } from '../src/lib/kubeconfig.ts';
import { kubectlOk } from './harness/kubectl.ts';
import { waitUntil } from './harness/ready-pods.ts';
import { removeDir, type ServerProcess, startServerProcess } from './harness/server.ts';

const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;
const NODES = 20;
const REPLICAS = 40;

interface SimProcess {
  readonly child: ChildProcess;
  /** The 'kedge sim ready' log line. */
  readonly ready: Record<string, unknown>;
  stop(): Promise<number | null>;
}

async function startSimProcess(args: readonly string[]): Promise<SimProcess> {
  const child = spawn(process.execPath, [MAIN, 'sim', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KEDGE_LOG_LEVEL: 'info' },
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (entry['msg'] === 'kedge sim ready') resolve(entry);
      } catch {}
    });
    void exited.then((code) =>
      reject(new Error(`kedge sim exited with ${code} before it was ready: ${stderr}`)),
    );
  });
  return {
    child,
    ready,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

function readyOf(node: KubeObject): string | undefined {
  const status = node['status'] as { conditions?: Array<{ type: string; status: string }> } | undefined;
  return status?.conditions?.find((c) => c.type === 'Ready')?.status;
}

const isSim = (o: KubeObject): boolean => (o.metadata.name ?? '').startsWith('sim-');

describe('kedge sim options', () => {
  it('parses source address ranges, short ranges and lists', () => {
    assert.deepEqual(parseSourceAddresses('127.0.0.1-127.0.0.3'), ['127.0.0.1', '127.0.0.2', '127.0.0.3']);
    assert.deepEqual(parseSourceAddresses('127.0.0.254-127.0.1.1'), [
      '127.0.0.254',
      '127.0.0.255',
      '127.0.1.0',
      '127.0.1.1',
    ]);
    assert.deepEqual(parseSourceAddresses('10.0.0.7-8, ::1'), ['10.0.0.7', '10.0.0.8', '::1']);
  });

  it('rejects bad source addresses, naming them', () => {
    for (const bad of ['127.0.0.9-127.0.0.1', 'localhost', '127.0.0.1-x', '', '10.0.0.0-10.2.0.0']) {
      assert.throws(
        () => parseSourceAddresses(bad),
        (err: unknown) =>
          isKedgeError(err, 'KEDGE_CONFIG_INVALID') && err.message.includes('--source-addresses'),
        bad,
      );
    }
  });

  it('reports every bad option at once', () => {
    assert.throws(
      () => resolveSimOptions({ server: 'http://x', nodes: '0', concurrency: 'many', store: 'disk' }),
      (err: unknown) =>
        isKedgeError(err, 'KEDGE_CONFIG_INVALID') &&
        ['https://', '--nodes', '--concurrency', '--store'].every((w) => err.message.includes(w)),
    );
  });

  it('spreads over 127.0.0.1-8 by default only for a 127.x server', () => {
    assert.equal(resolveSimOptions({ server: 'https://127.0.0.1:6443', nodes: 3 }).sourceAddresses.length, 8);
    assert.deepEqual(resolveSimOptions({ server: 'https://example.com:6443', nodes: 3 }).sourceAddresses, []);
  });
});

describe('kedge sim process', () => {
  let server: ServerProcess;
  let cluster: RemoteCluster;
  let sim: SimProcess | undefined;
  let simArgs: string[];

  before(async () => {
    server = await startServerProcess();
    cluster = new RemoteCluster(resolveKubeconfig(await readKubeconfig(server.kubeconfig)));
    const token = (await readFile(join(server.dataDir, 'node-token'), 'utf8')).trim();
    simArgs = ['--server', server.url, '--nodes', String(NODES), '--data-dir', join(server.dataDir, 'sim')];
    sim = await startSimProcess([...simArgs, '--token', token, '--concurrency', '8']);
  });

  after(async () => {
    await sim?.stop();
    cluster?.close();
    await server?.stop();
    if (server !== undefined) await removeDir(server.dataDir);
  });

  it('says ready once every node joined and connected', () => {
    assert.equal(sim?.ready['joined'], NODES);
    assert.equal(sim?.ready['connected'], NODES);
    assert.ok(Number(sim?.ready['rssBytes']) > 0);
  });

  it('shows every simulated node Ready in kubectl', async () => {
    await waitUntil(cluster, Resources.nodes, undefined, (nodes) =>
      nodes.filter((n) => isSim(n) && readyOf(n) === 'True').length === NODES ? true : undefined,
    );
    const out = await kubectlOk(server.kubeconfig, ['get', 'nodes', '--no-headers']);
    const ready = out.split('\n').filter((l) => /^sim-\d+\s+Ready\s/.test(l));
    assert.equal(ready.length, NODES, out);
  });

  it('runs a Deployment of 40 replicas spread over the nodes, every pod Running', async () => {
    await kubectlOk(server.kubeconfig, [
      'create',
      'deployment',
      'web',
      '--image=nginx',
      `--replicas=${REPLICAS}`,
    ]);
    await waitUntil(
      cluster,
      Resources.pods,
      'default',
      (pods) => {
        const web = pods.filter((p) => p.metadata.labels?.['app'] === 'web');
        const running = web.filter(
          (p) => (p['status'] as { phase?: string } | undefined)?.phase === 'Running',
        );
        return web.length === REPLICAS && running.length === REPLICAS ? true : undefined;
      },
      60_000,
    );
    const pods = JSON.parse(
      await kubectlOk(server.kubeconfig, ['get', 'pods', '-l', 'app=web', '-o', 'json']),
    ) as { items: KubeObject[] };
    const nodeOf = (p: KubeObject): string => String((p['spec'] as { nodeName?: string }).nodeName);
    const perNode = new Map<string, number>();
    for (const p of pods.items) perNode.set(nodeOf(p), (perNode.get(nodeOf(p)) ?? 0) + 1);
    assert.ok(
      [...perNode.keys()].every((n) => n.startsWith('sim-')),
      JSON.stringify([...perNode]),
    );
    assert.ok(
      perNode.size >= NODES / 2,
      `pods on only ${perNode.size} nodes: ${JSON.stringify([...perNode])}`,
    );
    for (const p of pods.items) {
      const status = p['status'] as { podIP?: string; hostIP?: string };
      assert.match(String(status.podIP), /^10\.88\./);
      assert.match(String(status.hostIP), /^127\.0\.0\.[1-8]$/);
    }
  });

  it('stops on SIGTERM and restarts without a token on the stored credentials', async () => {
    assert.equal(await sim?.stop(), 0);
    sim = await startSimProcess(simArgs);
    assert.equal(sim.ready['connected'], NODES);
    const nodes = await cluster.list(Resources.nodes, {});
    assert.equal(nodes.items.filter(isSim).length, NODES);
  });
});
