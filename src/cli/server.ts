import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { validateCrd } from '../api/crd/index.ts';
import { DEVICES_GROUP, DEVICES_VERSION, deviceCrd, deviceModelCrd } from '../api/devices.ts';
import type { KubeObject } from '../api/meta.ts';
import { isApiError } from '../api/status-error.ts';
import { bearerAuthenticator, certificateAuthenticator, unionAuthenticator } from '../apiserver/auth.ts';
import { LocalCluster } from '../apiserver/local-cluster.ts';
import { ApiServer } from '../apiserver/server.ts';
import { InformerFactory } from '../client/informer.ts';
import { Resources } from '../client/types.ts';
import { startControllers } from '../controllers/manager.ts';
import { createHub, type Hub } from '../hub/hub.ts';
import { joinHandlers } from '../hub/join.ts';
import { nodeAuthorizer } from '../hub/node-authorizer.ts';
import { NodeRegistry } from '../hub/node-registry.ts';
import { KedgeError } from '../lib/errors.ts';
import { writeKubeconfig } from '../lib/kubeconfig.ts';
import type { Logger } from '../lib/log.ts';
import { loadOrCreateServerPki } from '../lib/pki.ts';
import { TokenStore } from '../lib/tokens.ts';
import { openSqliteStore } from '../store/sqlite.ts';

export interface ServerOptions {
  /** Data directory (default ./.kedge/server). */
  readonly dataDir?: string;
  /** HOST:PORT to listen on (default 0.0.0.0:6443). Port 0 picks a free port. */
  readonly listen?: string;
  readonly logger: Logger;
  /** Run the controllers (scheduler, workloads, gc, namespaces, nodes) in process. */
  readonly startControllers?: boolean;
}

export interface ResolvedServerOptions {
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
}

/** Check the options once, reporting every problem together. */
export function resolveServerOptions(options: Omit<ServerOptions, 'logger'>): ResolvedServerOptions {
  const errors: string[] = [];
  const listen = options.listen ?? process.env['KEDGE_LISTEN'] ?? '0.0.0.0:6443';
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d+)$/.exec(listen);
  let host = '0.0.0.0';
  let port = 6443;
  if (m === null) errors.push(`--listen ${JSON.stringify(listen)} is not HOST:PORT`);
  else {
    host = (m[1] ?? '').replace(/^\[|\]$/g, '');
    port = Number(m[2]);
    if (port > 65535) errors.push(`--listen port ${port} is out of range`);
  }
  const dataDir = resolve(options.dataDir ?? process.env['KEDGE_DATA_DIR'] ?? '.kedge/server');
  if (errors.length > 0) {
    throw new KedgeError('KEDGE_CONFIG_INVALID', `Invalid server options: ${errors.join('; ')}`, {
      context: { errors },
    });
  }
  return { dataDir, host, port };
}

export interface RunningServer {
  readonly url: string;
  readonly dataDir: string;
  readonly kubeconfigPath: string;
  readonly nodeToken: string;
  readonly api: ApiServer;
  readonly tokens: TokenStore;
  close(): Promise<void>;
}

/** Start `kedge server`: PKI, store, tokens, the API on HTTPS, admin kubeconfig and node token files. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const resolved = resolveServerOptions(options);
  const log = options.logger;
  const { dataDir } = resolved;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const extraHosts = resolved.host === '0.0.0.0' || resolved.host === '::' ? [] : [resolved.host];
  const pki = await loadOrCreateServerPki(join(dataDir, 'tls'), { hosts: extraHosts });
  if (pki.issued.length > 0) log.info({ issued: pki.issued }, 'issued certificates');
  await mkdir(join(dataDir, 'db'), { recursive: true, mode: 0o700 });
  const store = openSqliteStore({
    path: join(dataDir, 'db', 'state.db'),
    logger: log.child({ component: 'store' }),
    // On unless KEDGE_STORE_GROUP_COMMIT=0 (see SqliteStoreOptions.groupCommit).
    groupCommit: process.env['KEDGE_STORE_GROUP_COMMIT'] !== '0',
  });
  const tokens = new TokenStore({ path: join(dataDir, 'tokens.db'), caHash: pki.caHash });
  const nodeToken = await ensureNodeToken(join(dataDir, 'node-token'), tokens, log);
  const metrics = new Registry();
  let hubInformers: InformerFactory | undefined;
  let hub: Hub | undefined;
  const api = new ApiServer({
    store,
    logger: log,
    metricsRegistry: metrics,
    // kubectl logs / exec / cp reach the pod's node through its hub session.
    podStreamer: () => hub?.streams,
    // Edge nodes (system:node:NAME) may read only what their pods use and write only their own status.
    authorizers: [nodeAuthorizer({ informers: () => hubInformers!, devices: true })],
    authenticate: unionAuthenticator([
      certificateAuthenticator,
      bearerAuthenticator((token) => {
        const user = tokens.authenticateToken(token);
        return user === undefined ? undefined : { name: user.user, groups: user.groups };
      }),
    ]),
  });
  await api.start();
  const local = new LocalCluster(api.storage);
  await installDeviceCrds(local, api, log);
  const controllers =
    options.startControllers === false
      ? undefined
      : await startControllers({ cluster: local, logger: log.child({ component: 'controllers' }) });
  hubInformers = new InformerFactory(local, log.child({ component: 'hub-informers' }));
  const nodes = new NodeRegistry({ path: join(dataDir, 'nodes.db') });
  hub = createHub({
    cluster: local,
    informers: hubInformers,
    logger: log.child({ component: 'hub' }),
    registry: nodes,
    metrics,
    devices: true,
  });
  hubInformers.start();
  await hubInformers.waitForSync();
  const handleJoin = joinHandlers({
    ca: pki.ca,
    tokens,
    registry: nodes,
    cluster: local,
    logger: log.child({ component: 'join' }),
  });
  const https: Server = createServer(
    {
      key: pki.server.keyPem,
      cert: pki.server.certPem,
      ca: pki.ca.certPem,
      requestCert: true,
      rejectUnauthorized: false,
      keepAliveTimeout: 120_000,
    },
    (req, res) => {
      if (!handleJoin(req, res)) api.handle(req, res);
    },
  );
  https.on('upgrade', (req, socket, head) => {
    if (!hub?.handleUpgrade(req, socket, head) && !api.handleUpgrade(req, socket, head)) socket.destroy();
  });
  https.on('clientError', (err, socket) => {
    log.debug({ err }, 'client connection error');
    socket.destroy();
  });
  await new Promise<void>((ok, fail) => {
    https.once('error', fail);
    https.listen(resolved.port, resolved.host, () => {
      https.off('error', fail);
      ok();
    });
  });
  const port = (https.address() as AddressInfo).port;
  const reachHost = resolved.host === '0.0.0.0' || resolved.host === '::' ? '127.0.0.1' : resolved.host;
  const url = `https://${reachHost.includes(':') ? `[${reachHost}]` : reachHost}:${port}`;
  const kubeconfigPath = join(dataDir, 'admin.kubeconfig');
  await writeKubeconfig(kubeconfigPath, {
    server: url,
    caPem: pki.ca.certPem,
    clientCertPem: pki.admin.certPem,
    clientKeyPem: pki.admin.keyPem,
    user: 'kedge-admin',
    cluster: 'kedge',
    context: 'kedge',
  });
  log.info(
    { url, kubeconfig: kubeconfigPath, nodeTokenFile: join(dataDir, 'node-token') },
    'kedge server ready',
  );
  let closed: Promise<void> | undefined;
  return {
    url,
    dataDir,
    kubeconfigPath,
    nodeToken,
    api,
    tokens,
    close() {
      closed ??= (async () => {
        const done = new Promise<void>((ok) => https.close(() => ok()));
        await hub.close();
        await hubInformers?.stop();
        await controllers?.stop();
        await api.close();
        https.closeAllConnections();
        await done;
        await store.close();
        tokens.close();
        nodes.close();
      })();
      return closed;
    },
  };
}

/**
 * Installs (or upgrades) the devices.kubeedge.io CRDs and waits until the API serves them, so the hub's
 * device informers and the first `kubectl apply` find them.
 */
export async function installDeviceCrds(cluster: LocalCluster, api: ApiServer, log: Logger): Promise<void> {
  for (const crd of [deviceModelCrd(), deviceCrd()]) {
    const obj = crd as unknown as KubeObject;
    try {
      await cluster.create(Resources.customresourcedefinitions, undefined, obj);
    } catch (err) {
      if (!isApiError(err, 409)) throw err;
      const current = await cluster.get(
        Resources.customresourcedefinitions,
        undefined,
        crd.metadata.name ?? '',
      );
      // Compared as the API stores it (with the defaults CRD validation fills in).
      const wanted = validateCrd(structuredClone(crd)).crd.spec;
      if (JSON.stringify(current['spec']) !== JSON.stringify(wanted)) {
        await cluster.update(Resources.customresourcedefinitions, { ...current, spec: crd.spec });
        log.info({ crd: crd.metadata.name }, 'device CRD upgraded');
      }
    }
  }
  for (let i = 0; ; i++) {
    const served = ['devices', 'devicemodels'].every(
      (plural) => api.registry.lookup(DEVICES_GROUP, DEVICES_VERSION, plural) !== undefined,
    );
    if (served) return;
    if (i > 500) throw new KedgeError('KEDGE_DEVICE_CRD', 'The device CRDs were not served in time');
    await sleep(10);
  }
}

/** The server's own join token: created once, kept in DIR/node-token (0600), valid until revoked. */
async function ensureNodeToken(path: string, tokens: TokenStore, log: Logger): Promise<string> {
  if (existsSync(path)) {
    const token = (await readFile(path, 'utf8')).trim();
    if (tokens.verify(token) === undefined) {
      log.warn(
        { file: path },
        'the node token in the data dir is revoked or not valid: agents cannot join with it',
      );
    }
    return token;
  }
  const created = tokens.create({ description: 'server node-token' });
  await writeFile(path, `${created.token}\n`, { mode: 0o600 });
  return created.token;
}
