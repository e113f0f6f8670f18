/**
 * `kedge agent`: wiring only. Order matters for autonomy: credentials (stored ones need no network), local
 * store, pod manager (runs every pod the store holds, before any connection), node status, local API, and
 * only then the hub session, which may take hours to connect.
 */
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CriRuntime } from '../agent/cri/runtime.ts';
import { DeviceManager } from '../agent/devices/manager.ts';
import { type EmbeddedBroker, startEmbeddedBroker, TwinBus } from '../agent/devices/mqtt-bus.ts';
import { TwinManager } from '../agent/devices/twins.ts';
import { podEvent } from '../agent/events.ts';
import { FakeRuntime } from '../agent/fake-runtime.ts';
import { CertificateKeeper, loadOrJoin, nodeNameError } from '../agent/join.ts';
import { LocalApi } from '../agent/local-api.ts';
import { LocalStore } from '../agent/local-store.ts';
import { builtinMappers } from '../agent/mappers/index.ts';
import type { Mapper } from '../agent/mappers/types.ts';
import { type AgentMetrics, createAgentMetrics } from '../agent/metrics.ts';
import { defaultHostIP, NodeStatusReporter } from '../agent/node-status.ts';
import { Outbox } from '../agent/outbox.ts';
import { PodManager } from '../agent/pods.ts';
import type { PodRuntime } from '../agent/runtime.ts';
import { Session } from '../agent/session.ts';
import { AgentStreams } from '../agent/streams.ts';
import { labelValueErrors, qualifiedNameErrors } from '../api/selectors.ts';
import { KedgeError } from '../lib/errors.ts';
import { createRootLogger, type Logger } from '../lib/log.ts';
import { parseJoinToken } from '../lib/tokens.ts';

export const AGENT_VERSION = 'kedge-agent/0.1.0';

export interface AgentOptions {
  /** `https://HOST:PORT` (env KEDGE_SERVER). */
  readonly server?: string;
  /** Join token, needed on first start only (env KEDGE_TOKEN). */
  readonly token?: string;
  /** Default: the host name (env KEDGE_NODE_NAME). */
  readonly nodeName?: string;
  /** Default ./.kedge/agent (env KEDGE_AGENT_DATA_DIR). */
  readonly dataDir?: string;
  /** `k=v,k2=v2`: labels of the Node the server creates on first join. */
  readonly nodeLabels?: string;
  /** 'cri' (containerd or CRI-O) or 'fake' (the default for now: runs nothing). */
  readonly runtime?: string;
  /** The CRI socket (env KEDGE_CRI_ENDPOINT); default unix:///run/containerd/containerd.sock. */
  readonly criEndpoint?: string;
  /** HOST:PORT of the node-local read-only API; '' or 'off' turns it off. Default 127.0.0.1:10550. */
  readonly localApi?: string;
  /**
   * HOST:PORT of the embedded MQTT broker; 'off' (the default here) serves no MQTT. `kedge agent` and
   * `kedge up` default to 127.0.0.1:1883 (env KEDGE_MQTT_LISTEN); in-process users (tests, sim) opt in.
   */
  readonly mqttListen?: string;
  /** `mqtt://HOST:PORT` of an external broker to use instead of the embedded one. */
  readonly mqttBroker?: string;
  /** Mappers by protocol name (the built-in ones when not given). */
  readonly mappers?: ReadonlyMap<string, Mapper>;
  /** Host IP reported in node and pod status (default: first non-internal IPv4). */
  readonly hostIP?: string;
  readonly logger: Logger;
  /** A runtime object instead of `runtime` (tests: a test double that serves logs and exec). */
  readonly runtimeInstance?: PodRuntime;
}

export interface ResolvedAgentOptions {
  readonly server: string;
  readonly token: string | undefined;
  readonly nodeName: string;
  readonly dataDir: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly runtime: 'fake' | 'cri';
  readonly criEndpoint: string;
  readonly localApi: { readonly host: string; readonly port: number } | undefined;
  readonly mqtt:
    | { readonly type: 'embedded'; readonly host: string; readonly port: number }
    | { readonly type: 'external'; readonly url: string }
    | undefined;
  readonly hostIP: string;
}

function parseLabels(text: string, errors: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq < 0) {
      errors.push(`--node-labels entry ${JSON.stringify(part)} is not key=value`);
      continue;
    }
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    const problems = [...qualifiedNameErrors(k), ...labelValueErrors(v)];
    if (problems.length > 0) errors.push(`--node-labels ${JSON.stringify(part)}: ${problems.join('; ')}`);
    else labels[k] = v;
  }
  return labels;
}

/** `--server` (an https URL) and `--token` (a join token), from flags or KEDGE_SERVER/KEDGE_TOKEN. */
export function checkServerAndToken(
  options: { readonly server?: string; readonly token?: string },
  errors: string[],
): { server: string; serverHost: string; token: string | undefined } {
  const server = options.server ?? process.env['KEDGE_SERVER'] ?? '';
  let serverHost = '';
  if (server === '') errors.push('--server https://HOST:PORT is required');
  else {
    try {
      const u = new URL(server);
      serverHost = u.hostname;
      if (u.protocol !== 'https:') errors.push(`--server ${JSON.stringify(server)} must start with https://`);
    } catch {
      errors.push(`--server ${JSON.stringify(server)} is not a URL`);
    }
  }
  const token = options.token ?? process.env['KEDGE_TOKEN'];
  if (token !== undefined) {
    try {
      parseJoinToken(token);
    } catch (err) {
      errors.push(`--token: ${(err as Error).message}`);
    }
  }
  return { server, serverHost, token };
}

/** Checks every option once and reports all problems together. */
export function resolveAgentOptions(
  options: Omit<AgentOptions, 'logger' | 'runtimeInstance'>,
): ResolvedAgentOptions {
  const env = process.env;
  const errors: string[] = [];
  const { server, token } = checkServerAndToken(options, errors);
  const nodeName = options.nodeName ?? env['KEDGE_NODE_NAME'] ?? hostname().toLowerCase();
  const nameErr = nodeNameError(nodeName);
  if (nameErr !== undefined) errors.push(`--node-name: ${nameErr}`);
  const runtime = options.runtime ?? env['KEDGE_RUNTIME'] ?? 'fake';
  if (runtime !== 'fake' && runtime !== 'cri')
    errors.push(`--runtime ${JSON.stringify(runtime)} must be fake or cri`);
  const criEndpoint =
    options.criEndpoint ?? env['KEDGE_CRI_ENDPOINT'] ?? 'unix:///run/containerd/containerd.sock';
  if (!/^(unix:\/\/)?\//.test(criEndpoint) && !criEndpoint.startsWith('unix:/')) {
    errors.push(`--cri-endpoint ${JSON.stringify(criEndpoint)} must be a unix socket (unix:///path)`);
  }
  let mqtt: ResolvedAgentOptions['mqtt'];
  if (options.mqttListen !== undefined && options.mqttBroker !== undefined) {
    errors.push(
      '--mqtt-listen and --mqtt-broker exclude each other (the embedded broker or an external one)',
    );
  } else if (options.mqttBroker !== undefined) {
    try {
      const u = new URL(options.mqttBroker);
      if (u.protocol !== 'mqtt:' || u.hostname === '')
        errors.push(`--mqtt-broker ${JSON.stringify(options.mqttBroker)} must be mqtt://HOST:PORT`);
      else mqtt = { type: 'external', url: options.mqttBroker };
    } catch {
      errors.push(`--mqtt-broker ${JSON.stringify(options.mqttBroker)} is not a URL`);
    }
  } else {
    const ml = options.mqttListen ?? 'off';
    if (ml !== 'off') {
      const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d+)$/.exec(ml);
      if (m === null || Number(m[2]) > 65535)
        errors.push(`--mqtt-listen ${JSON.stringify(ml)} is not HOST:PORT (or off)`);
      else mqtt = { type: 'embedded', host: (m[1] ?? '').replace(/^\[|\]$/g, ''), port: Number(m[2]) };
    }
  }
  let localApi: ResolvedAgentOptions['localApi'];
  const la = options.localApi ?? '127.0.0.1:10550';
  if (la !== '' && la !== 'off') {
    const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d+)$/.exec(la);
    if (m === null || Number(m[2]) > 65535) errors.push(`--local-api ${JSON.stringify(la)} is not HOST:PORT`);
    else localApi = { host: (m[1] ?? '').replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  }
  const labels = parseLabels(options.nodeLabels ?? '', errors);
  if (errors.length > 0) {
    throw new KedgeError('KEDGE_CONFIG_INVALID', `Invalid agent options: ${errors.join('; ')}`, {
      context: { errors },
    });
  }
  return {
    server,
    token,
    nodeName,
    dataDir: resolve(options.dataDir ?? env['KEDGE_AGENT_DATA_DIR'] ?? '.kedge/agent'),
    labels,
    runtime: runtime === 'cri' ? 'cri' : 'fake',
    criEndpoint,
    localApi,
    mqtt,
    hostIP: options.hostIP ?? defaultHostIP(),
  };
}

export interface RunningAgent {
  readonly nodeName: string;
  readonly dataDir: string;
  /** `http://HOST:PORT` of the local API, or undefined when it is off. */
  readonly localApiUrl: string | undefined;
  readonly session: Session;
  readonly pods: PodManager;
  readonly runtime: PodRuntime;
  readonly store: LocalStore;
  readonly metrics: AgentMetrics;
  readonly twins: TwinManager;
  readonly devices: DeviceManager;
  /** `mqtt://HOST:PORT` of the broker the twins are served on, or undefined when MQTT is off. */
  readonly mqttUrl: string | undefined;
  close(): Promise<void>;
}

/** Starts `kedge agent`: join (or stored credentials), local store, pods, node status, local API, hub session. */
export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const o = resolveAgentOptions(options);
  const log = options.logger;
  const tls = await loadOrJoin({
    server: o.server,
    ...(o.token === undefined ? {} : { token: o.token }),
    nodeName: o.nodeName,
    dataDir: o.dataDir,
    labels: o.labels,
    logger: log.child({ component: 'join' }),
  });
  // The embedded broker starts before the store is opened: a port already taken then fails the start
  // with nothing else open (`kedge up` retries on a free port, which needs the store's lock free).
  const broker: EmbeddedBroker | undefined =
    o.mqtt?.type === 'embedded'
      ? await startEmbeddedBroker({
          host: o.mqtt.host,
          port: o.mqtt.port,
          logger: log.child({ component: 'mqtt-broker' }),
        })
      : undefined;
  const metrics = createAgentMetrics();
  const store = new LocalStore(join(o.dataDir, 'agent.db'));
  const outbox = new Outbox(store, { onEventsDropped: (n) => metrics.droppedEvents.inc(n) });
  metrics.sources.outboxDepth = () => outbox.depth();
  const runtimeLog = log.child({ component: 'runtime' });
  const runtime: PodRuntime =
    options.runtimeInstance ??
    (o.runtime === 'cri'
      ? await CriRuntime.connect({
          endpoint: o.criEndpoint,
          dataDir: o.dataDir,
          logger: runtimeLog,
          recordEvent: (pod, type, reason, message, fieldPath) =>
            outbox.enqueue({
              kind: 'Event',
              namespace: pod.namespace,
              event: podEvent(o.nodeName, pod, type, reason, message, fieldPath),
            }),
        })
      : new FakeRuntime({ logger: runtimeLog }));
  const pods = new PodManager({
    nodeName: o.nodeName,
    hostIP: o.hostIP,
    store,
    runtime,
    outbox,
    logger: log.child({ component: 'pods' }),
  });
  await pods.start();
  // Devices, like pods, run from the local store before any connection to the server.
  const twins = new TwinManager({
    nodeName: o.nodeName,
    store,
    outbox,
    logger: log.child({ component: 'twins' }),
    onHandled: (action, code) => metrics.twinMessages.inc({ action, code: String(code) }),
  });
  metrics.sources.devices = () => twins.deviceIds().length;
  const devices = new DeviceManager({
    twins,
    mappers: options.mappers ?? builtinMappers(),
    logger: log.child({ component: 'devices' }),
  });
  twins.start();
  devices.start();
  let bus: TwinBus | undefined;
  if (o.mqtt !== undefined) {
    const url = o.mqtt.type === 'external' ? o.mqtt.url : (broker?.url ?? '');
    bus = new TwinBus({ url, nodeName: o.nodeName, twins, logger: log.child({ component: 'mqtt' }) });
    await bus.start();
  }
  let localApi: LocalApi | undefined;
  if (o.localApi !== undefined) {
    localApi = new LocalApi({
      store,
      dataDir: o.dataDir,
      host: o.localApi.host,
      port: o.localApi.port,
      logger: log.child({ component: 'local-api' }),
      metrics: metrics.registry,
    });
    await localApi.start();
  }
  const nodeStatus = new NodeStatusReporter({
    nodeName: o.nodeName,
    dataDir: o.dataDir,
    runtimeVersion: runtime.version,
    hostIP: o.hostIP,
    outbox,
    logger: log.child({ component: 'node-status' }),
    localApiPort: localApi === undefined ? 0 : Number(new URL(localApi.url).port),
  });
  nodeStatus.start();
  const keeper = new CertificateKeeper(tls, {
    server: o.server,
    nodeName: o.nodeName,
    dataDir: o.dataDir,
    logger: log.child({ component: 'certificates' }),
  });
  const session = new Session({
    server: o.server,
    nodeName: o.nodeName,
    store,
    outbox,
    credentials: () => keeper.current(),
    logger: log.child({ component: 'session' }),
    metrics,
    agentVersion: AGENT_VERSION,
    // kubectl logs / exec / cp of this node's pods, carried over the hub session.
    streams: new AgentStreams({
      nodeName: o.nodeName,
      store,
      runtime,
      logger: log.child({ component: 'streams' }),
    }),
  });
  keeper.start();
  session.start();
  log.info(
    {
      node: o.nodeName,
      server: o.server,
      dataDir: o.dataDir,
      localApi: localApi?.url,
      runtime: runtime.name,
      pods: store.list('core/pods/').length,
      devices: twins.deviceIds().length,
      mqtt: o.mqtt === undefined ? undefined : o.mqtt.type === 'external' ? o.mqtt.url : broker?.url,
    },
    'kedge agent ready',
  );
  let closed: Promise<void> | undefined;
  return {
    nodeName: o.nodeName,
    dataDir: o.dataDir,
    localApiUrl: localApi?.url,
    session,
    pods,
    runtime,
    store,
    metrics,
    twins,
    devices,
    mqttUrl: o.mqtt === undefined ? undefined : o.mqtt.type === 'external' ? o.mqtt.url : broker?.url,
    close() {
      closed ??= (async () => {
        await session.stop();
        await bus?.close();
        await broker?.close();
        await devices.stop();
        twins.stop();
        await keeper.stop();
        nodeStatus.stop();
        await pods.stop();
        await localApi?.close();
        await runtime.close();
        store.close();
      })();
      return closed;
    },
  };
}

/** `kedge agent [flags]`: runs until SIGINT/SIGTERM. */
export async function runAgentCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      server: { type: 'string' },
      token: { type: 'string' },
      'node-name': { type: 'string' },
      'data-dir': { type: 'string' },
      'node-labels': { type: 'string' },
      runtime: { type: 'string' },
      'cri-endpoint': { type: 'string' },
      'local-api': { type: 'string' },
      'mqtt-listen': { type: 'string' },
      'mqtt-broker': { type: 'string' },
      'host-ip': { type: 'string' },
    },
    strict: true,
  });
  const logger = createRootLogger();
  const pick = <K extends string>(key: K, flag: keyof typeof values): { [P in K]?: string } => {
    const v = values[flag];
    return (typeof v === 'string' ? { [key]: v } : {}) as { [P in K]?: string };
  };
  const agent = await startAgent({
    logger,
    ...pick('server', 'server'),
    ...pick('token', 'token'),
    ...pick('nodeName', 'node-name'),
    ...pick('dataDir', 'data-dir'),
    ...pick('nodeLabels', 'node-labels'),
    ...pick('runtime', 'runtime'),
    ...pick('criEndpoint', 'cri-endpoint'),
    ...pick('localApi', 'local-api'),
    ...(values['mqtt-listen'] === undefined && values['mqtt-broker'] === undefined
      ? { mqttListen: process.env['KEDGE_MQTT_LISTEN'] ?? '127.0.0.1:1883' }
      : pick('mqttListen', 'mqtt-listen')),
    ...pick('mqttBroker', 'mqtt-broker'),
    ...pick('hostIP', 'host-ip'),
  });
  const stop = Promise.withResolvers<void>();
  process.once('SIGINT', () => stop.resolve());
  process.once('SIGTERM', () => stop.resolve());
  await stop.promise;
  logger.info('shutting down');
  await agent.close();
  logger.info('stopped');
  return 0;
}
