// The agent's join and renewal against the hub's real join endpoints (token store, node registry, Node
// creation through the in-process cluster) on a real HTTPS port.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  AGENT_FILES,
  CertificateKeeper,
  loadOrJoin,
  needsRenewal,
  renewCertificate,
} from '../src/agent/join.ts';
import { LocalCluster } from '../src/apiserver/local-cluster.ts';
import { ApiServer } from '../src/apiserver/server.ts';
import { Resources } from '../src/client/types.ts';
import { joinHandlers } from '../src/hub/join.ts';
import { NodeRegistry } from '../src/hub/node-registry.ts';
import { isKedgeError } from '../src/lib/errors.ts';
import { silentLogger } from '../src/lib/log.ts';
import { caHash, certInfo, createCA, issueCertificate } from '../src/lib/pki.ts';
import { formatJoinToken, TokenStore } from '../src/lib/tokens.ts';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.ts';

let dir: string;
let https: Server;
let server: string;
let token: string;
let tokens: TokenStore;
let registry: NodeRegistry;
let store: SqliteStore;
let api: ApiServer;
let cluster: LocalCluster;
let caPem: string;
const logger = silentLogger();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-edge-join-'));
  const ca = await createCA({ commonName: 'join-test-ca' });
  caPem = ca.certPem;
  const serving = await issueCertificate(ca, {
    commonName: 'kedge-server',
    usage: 'server',
    ipAddresses: ['127.0.0.1'],
  });
  tokens = new TokenStore({ path: join(dir, 'tokens.db'), caHash: caHash(ca.certPem) });
  token = tokens.create().token;
  registry = new NodeRegistry({ path: ':memory:' });
  store = openSqliteStore({ path: join(dir, 'state.db') });
  api = new ApiServer({ store, logger, authenticate: () => undefined });
  await api.start();
  cluster = new LocalCluster(api.storage);
  const handle = joinHandlers({ ca, tokens, registry, cluster, logger, validityDays: 10 });
  https = createServer(
    {
      key: serving.keyPem,
      cert: serving.certPem,
      ca: ca.certPem,
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => {
      if (!handle(req, res)) {
        res.writeHead(404);
        res.end();
      }
    },
  );
  https.listen(0, '127.0.0.1');
  await once(https, 'listening');
  server = `https://127.0.0.1:${(https.address() as AddressInfo).port}`;
});

after(async () => {
  https.closeAllConnections();
  https.close();
  await api.close();
  await store.close();
  tokens.close();
  await rm(dir, { recursive: true, force: true });
});

const dataDir = async (): Promise<string> => mkdtemp(join(dir, 'agent-'));

describe('edge join', () => {
  it('joins with the token, stores ca.crt, node.key (0600) and node.crt, and the server creates the Node', async () => {
    const d = await dataDir();
    const tls = await loadOrJoin({
      server,
      token,
      nodeName: 'edge-a',
      dataDir: d,
      labels: { zone: 'north' },
      logger,
    });
    const info = certInfo(tls.certPem);
    assert.equal(info.commonName, 'system:node:edge-a');
    assert.deepEqual(info.organizations, ['system:nodes']);
    assert.equal(tls.caPem, caPem);
    assert.equal(((await stat(join(d, AGENT_FILES.nodeKey))).mode & 0o777).toString(8), '600');
    const node = await cluster.get(Resources.nodes, undefined, 'edge-a');
    assert.equal(node.metadata.labels?.['zone'], 'north');

    // A later start needs no token and reuses the stored credentials.
    const again = await loadOrJoin({ server: 'https://127.0.0.1:1', nodeName: 'edge-a', dataDir: d, logger });
    assert.equal(again.certPem, tls.certPem);
    await assert.rejects(
      loadOrJoin({ server, nodeName: 'edge-b', dataDir: d, logger }),
      (err) => isKedgeError(err, 'KEDGE_AGENT_JOIN_FAILED') && /system:node:edge-a/.test(err.message),
    );
  });

  it('refuses a server whose CA does not match the token, and stores nothing', async () => {
    const d = await dataDir();
    const parts = token.slice(3).split('::');
    const forged = formatJoinToken({
      caHash: 'f'.repeat(64),
      id: parts[1]!.split('.')[0]!,
      secret: parts[1]!.split('.')[1]!,
    });
    await assert.rejects(
      loadOrJoin({ server, token: forged, nodeName: 'edge-c', dataDir: d, logger }),
      (err) => isKedgeError(err, 'KEDGE_AGENT_CA_MISMATCH') && /f{64}/.test(err.message),
    );
    assert.deepEqual(await readdir(d), []);
  });

  it('reports a refused token with the server message, and stores nothing', async () => {
    const d = await dataDir();
    const wrong = formatJoinToken({ caHash: caHash(caPem), id: 'abcdef', secret: 'x'.repeat(32) });
    await assert.rejects(
      loadOrJoin({ server, token: wrong, nodeName: 'edge-d', dataDir: d, logger }),
      (err) => isKedgeError(err, 'KEDGE_AGENT_JOIN_FAILED') && /401/.test(err.message),
    );
    assert.deepEqual(await readdir(d), []);
    await assert.rejects(
      loadOrJoin({ server, nodeName: 'edge-d', dataDir: d, logger }),
      (err) => isKedgeError(err, 'KEDGE_CONFIG_INVALID') && /--token/.test(err.message),
    );
  });

  it('renews with the current certificate: new key, new certificate, stored', async () => {
    const d = await dataDir();
    const first = await loadOrJoin({ server, token, nodeName: 'edge-e', dataDir: d, logger });
    const { notBefore, notAfter } = certInfo(first.certPem);
    const life = notAfter.getTime() - notBefore.getTime();
    assert.equal(needsRenewal(first.certPem, notBefore.getTime() + life * 0.5), false);
    assert.equal(needsRenewal(first.certPem, notBefore.getTime() + life * 0.75), true);

    const renewed = await renewCertificate({
      server,
      nodeName: 'edge-e',
      dataDir: d,
      current: first,
      logger,
    });
    assert.notEqual(renewed.keyPem, first.keyPem);
    const stored = await loadOrJoin({ server, nodeName: 'edge-e', dataDir: d, logger });
    assert.equal(stored.certPem, renewed.certPem);

    // The keeper renews when due and tells its listeners.
    const keeper = new CertificateKeeper(renewed, { server, nodeName: 'edge-e', dataDir: d, logger });
    let heard = 0;
    keeper.onRenewed(() => heard++);
    await keeper.check(notBefore.getTime() + life * 0.5);
    assert.equal(heard, 0);
    await keeper.check(notAfter.getTime());
    assert.equal(heard, 1);
    assert.notEqual(keeper.current().certPem, renewed.certPem);
    await keeper.stop();
  });
});
