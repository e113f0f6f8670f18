// End to end in one process: the API server, the real hub and join endpoints on one HTTPS port (wired the
// way the server will wire them), and two real agents (fake runtime) that join with a token. Pods bound
// to each node run there and their status reaches the API; a deleted pod stops on its node.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../src/api/meta.ts';
import { certificateAuthenticator } from '../src/apiserver/auth.ts';
import { LocalCluster } from '../src/apiserver/local-cluster.ts';
import { ApiServer } from '../src/apiserver/server.ts';
import { type RunningAgent, startAgent } from '../src/cli/agent.ts';
import { InformerFactory } from '../src/client/informer.ts';
import { Resources } from '../src/client/types.ts';
import { createHub, type Hub } from '../src/hub/hub.ts';
import { joinHandlers } from '../src/hub/join.ts';
import { NodeRegistry } from '../src/hub/node-registry.ts';
import { silentLogger } from '../src/lib/log.ts';
import { caHash, createCA, issueCertificate } from '../src/lib/pki.ts';
import { TokenStore } from '../src/lib/tokens.ts';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.ts';

const logger = silentLogger();
let dir: string;
let store: SqliteStore;
let api: ApiServer;
let cluster: LocalCluster;
let informers: InformerFactory;
let hub: Hub;
let https: Server;
let tokens: TokenStore;
let registry: NodeRegistry;
let url: string;
let token: string;
const agents: RunningAgent[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-edge-e2e-'));
  store = openSqliteStore({ path: join(dir, 'state.db') });
  api = new ApiServer({ store, logger, authenticate: certificateAuthenticator });
  await api.start();
  cluster = new LocalCluster(api.storage);
  informers = new InformerFactory(cluster, logger);
  const ca = await createCA({ commonName: 'e2e-ca' });
  const serving = await issueCertificate(ca, {
    commonName: 'kedge',
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  tokens = new TokenStore({ path: ':memory:', caHash: caHash(ca.certPem) });
  token = tokens.create().token;
  registry = new NodeRegistry({ path: ':memory:' });
  hub = createHub({ cluster, informers, logger, registry, heartbeatSeconds: 1 });
  const joinHandler = joinHandlers({ ca, tokens, registry, cluster, logger });
  https = createServer(
    {
      key: serving.keyPem,
      cert: serving.certPem,
      ca: ca.certPem,
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => {
      if (!joinHandler(req, res)) api.handle(req, res);
    },
  );
  https.on('upgrade', (req, socket, head) => {
    if (!hub.handleUpgrade(req, socket, head)) socket.destroy();
  });
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(https.address() as AddressInfo).port}`;
  informers.start();
  await informers.waitForSync();
});

after(async () => {
  for (const a of agents) await a.close();
  await hub.close();
  https.closeAllConnections();
  await new Promise((resolve) => https.close(resolve));
  await informers.stop();
  await api.close();
  await store.close();
  tokens.close();
  registry.close();
  await rm(dir, { recursive: true, force: true });
});

/** Resolves with the first object of the collection matching the predicate (watching, no polling). */
async function waitFor(
  ref: (typeof Resources)[keyof typeof Resources],
  match: (o: KubeObject) => boolean,
  namespace?: string,
): Promise<KubeObject> {
  const controller = new AbortController();
  try {
    for await (const ev of cluster.watch(ref, {
      resourceVersion: '0',
      signal: controller.signal,
      ...(namespace ? { namespace } : {}),
    })) {
      if (ev.type !== 'DELETED' && ev.type !== 'BOOKMARK' && match(ev.object)) return ev.object;
    }
  } finally {
    controller.abort();
  }
  throw new Error('watch ended');
}

const podOn = (name: string, node: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'default' },
  spec: { nodeName: node, containers: [{ name: 'app', image: 'busybox' }] },
});

const phase = (o: KubeObject): unknown => (o['status'] as { phase?: string } | undefined)?.phase;

describe('edge end to end (in-process server wiring)', () => {
  it('two agents join, run the pods bound to them, report status, and stop deleted pods', async () => {
    for (const name of ['edge-a', 'edge-b']) {
      agents.push(
        await startAgent({
          server: url,
          token,
          nodeName: name,
          dataDir: join(dir, name),
          localApi: 'off',
          nodeLabels: `site=${name}`,
          hostIP: '127.0.0.1',
          logger,
        }),
      );
    }
    const node = await waitFor(
      Resources.nodes,
      (n) => n.metadata.name === 'edge-a' && n['status'] !== undefined,
    );
    assert.equal(node.metadata.labels?.['site'], 'edge-a');
    const info = (node['status'] as { nodeInfo: Record<string, string> }).nodeInfo;
    assert.equal(info['kubeletVersion'], 'v1.32.0-kedge');
    assert.equal(info['containerRuntimeVersion'], 'fake://0.1');

    await cluster.create(Resources.pods, 'default', podOn('p-a', 'edge-a'));
    await cluster.create(Resources.pods, 'default', podOn('p-b', 'edge-b'));
    const pa = await waitFor(
      Resources.pods,
      (p) => p.metadata.name === 'p-a' && phase(p) === 'Running',
      'default',
    );
    const pb = await waitFor(
      Resources.pods,
      (p) => p.metadata.name === 'p-b' && phase(p) === 'Running',
      'default',
    );
    assert.match(String((pa['status'] as Record<string, unknown>)['podIP']), /^10\.88\./);
    assert.notEqual(pa.metadata.uid, pb.metadata.uid);
    const [a, b] = agents as [RunningAgent, RunningAgent];
    assert.deepEqual(
      (await a.runtime.list()).map((p) => p.name),
      ['p-a'],
    );
    assert.deepEqual(
      (await b.runtime.list()).map((p) => p.name),
      ['p-b'],
    );

    await cluster.delete(Resources.pods, 'default', 'p-a');
    const stopped = new Promise<void>((resolve) => {
      const check = async (): Promise<void> => {
        if ((await a.runtime.list()).length === 0) resolve();
      };
      a.store.onChange(() => void a.pods.idle().then(check));
      void check();
    });
    await stopped;
    assert.deepEqual(
      (await b.runtime.list()).map((p) => p.name),
      ['p-b'],
    );
  });
});
