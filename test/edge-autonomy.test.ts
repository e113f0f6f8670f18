// Edge autonomy at the process level: an agent that already joined restarts while the server is
// unreachable and runs every pod from its local store; its pending statuses survive a SIGKILL.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_FILES } from '../src/agent/join.ts';
import { LocalStore } from '../src/agent/local-store.ts';
import { Outbox } from '../src/agent/outbox.ts';
import { createTestPki } from '../src/agent/testing.ts';
import { startAgentProcess } from './harness/agent.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-edge-autonomy-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function pod(name: string, node: string, rev: number) {
  return {
    key: `core/pods/default/${name}`,
    revision: rev,
    object: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default', uid: `uid-${name}` },
      spec: { nodeName: node, containers: [{ name: 'app', image: 'busybox' }] },
    },
  };
}

describe('edge autonomy', () => {
  it('runs the stored pods with the server unreachable, across a SIGKILL, keeping pending statuses', async () => {
    const dataDir = join(dir, 'edge-1');
    const pki = await createTestPki();
    const tls = await pki.node('edge-1');
    const store = new LocalStore(join(dataDir, 'agent.db'));
    store.applyBatch(4, [
      pod('a', 'edge-1', 1),
      pod('b', 'edge-1', 2),
      pod('c', 'edge-1', 3),
      pod('x', 'other', 4),
    ]);
    store.close();
    await writeFile(join(dataDir, AGENT_FILES.caCert), tls.caPem);
    await writeFile(join(dataDir, AGENT_FILES.nodeKey), tls.keyPem, { mode: 0o600 });
    await writeFile(join(dataDir, AGENT_FILES.nodeCert), tls.certPem);
    const server = `https://127.0.0.1:${await closedPort()}`;

    const started = (agent: Awaited<ReturnType<typeof startAgentProcess>>) =>
      Promise.all(
        ['default/a', 'default/b', 'default/c'].map((p) =>
          agent.waitForLog((e) => e['msg'] === 'pod started' && e['pod'] === p),
        ),
      );

    const first = await startAgentProcess({ server, dataDir, nodeName: 'edge-1' });
    await started(first);
    assert.equal(
      first.logs.some((e) => e['msg'] === 'pod started' && e['pod'] === 'default/x'),
      false,
      'a pod bound to another node must not start',
    );
    // The node-local API serves the stored pods while offline.
    const list = (await (await fetch(`${first.localApi}/api/v1/namespaces/default/pods`)).json()) as {
      items: Array<{ metadata: { name: string } }>;
    };
    assert.deepEqual(
      list.items.map((i) => i.metadata.name),
      ['a', 'b', 'c', 'x'],
    );
    await first.waitForLog((e) => e['msg'] === 'hub connection ended');
    await first.kill();

    // Statuses produced while offline are still pending after SIGKILL.
    {
      const s = new LocalStore(join(dataDir, 'agent.db'));
      const kinds = new Outbox(s).pending(0, 100).map((p) => p.item.kind);
      s.close();
      assert.deepEqual(kinds.filter((k) => k === 'PodStatus').length, 3);
      assert.ok(kinds.includes('NodeStatus'));
    }

    const second = await startAgentProcess({ server, dataDir, nodeName: 'edge-1' });
    await started(second);
    assert.equal(await second.stop(), 0);
  });

  it('refuses a bad runtime, a CRI endpoint that is no unix socket and mqtt flags with a clear error', async () => {
    await assert.rejects(
      startAgentProcess({
        server: 'https://127.0.0.1:1',
        dataDir: join(dir, 'bad'),
        nodeName: 'edge-2',
        extraArgs: [
          '--runtime',
          'docker',
          '--cri-endpoint',
          'tcp://10.0.0.1:1',
          '--mqtt-listen',
          '127.0.0.1:1883',
        ],
      }),
      (err: Error) =>
        /--runtime "docker" must be fake or cri/.test(err.message) &&
        /--cri-endpoint "tcp:\/\/10\.0\.0\.1:1" must be a unix socket/.test(err.message) &&
        /--mqtt-listen/.test(err.message),
    );
  });
});
