/**
 * `kedge sim`: N simulated edge nodes in one process, each a real protocol client: its own join (key and
 * certificate, stored and reused on restart), its own mTLS hub session (hello, batches, acks, status,
 * heartbeats), a pod manager on the fake runtime (bound pods go Running) and node status (Ready).
 *
 * Memory: each node has its own LocalStore. `--store memory` (the default) keeps it in an in-memory SQLite
 * database, so nothing but the credentials is written per node and a restart starts from an empty
 * inventory (the hub resends what the node should hold); `--store file` keeps one SQLite file per node, as
 * the real agent does. Connections are spread over several local source addresses, so one process can hold
 * more than the ~64k connections one source address allows towards one server port.
 */
import { isIP, isIPv4 } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FakeRuntime } from '../agent/fake-runtime.ts';
import { CertificateKeeper, loadOrJoin, nodeNameError } from '../agent/join.ts';
import { LocalStore } from '../agent/local-store.ts';
import { defaultHostIP, NodeStatusReporter } from '../agent/node-status.ts';
import { Outbox } from '../agent/outbox.ts';
import { PodManager } from '../agent/pods.ts';
import { Session } from '../agent/session.ts';
import { KedgeError } from '../lib/errors.ts';
import { createRootLogger, type Logger, silentLogger } from '../lib/log.ts';
import { checkServerAndToken } from './agent.ts';

export const SIM_VERSION = 'kedge-sim/0.1.0';
/** At most this many source addresses from one range (a /16). */
const MAX_SOURCE_ADDRESSES = 65_536;
const MAX_NODES = 1_000_000;

export interface SimOptions {
  /** `https://HOST:PORT` (env KEDGE_SERVER). */
  readonly server?: string;
  /** Join token; needed for nodes that have not joined yet (env KEDGE_TOKEN). */
  readonly token?: string;
  readonly nodes?: string | number;
  /** Node names are `${namePrefix}${i}`, i from 0 (default `sim-`). */
  readonly namePrefix?: string;
  /** Default ./.kedge/sim; each node's credentials (and store, with store=file) in DIR/<name>. */
  readonly dataDir?: string;
  /** Nodes joining or connecting at once (default 32). */
  readonly concurrency?: string | number;
  /** E.g. `127.0.0.1-127.0.0.8` or `127.0.0.1,127.0.0.2`; default 127.0.0.1-127.0.0.8 for a 127.x server. */
  readonly sourceAddresses?: string;
  /** `memory` (default) or `file`. */
  readonly store?: string;
  /** Interval of node status checks and full pod resyncs per node (default 60,000 ms). */
  readonly resyncMs?: number;
  readonly logger: Logger;
}

export interface ResolvedSimOptions {
  readonly server: string;
  readonly token: string | undefined;
  readonly nodes: number;
  readonly namePrefix: string;
  readonly dataDir: string;
  readonly concurrency: number;
  readonly sourceAddresses: readonly string[];
  readonly store: 'memory' | 'file';
  readonly resyncMs: number;
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/**
 * Parses `A-B` ranges (IPv4; B may be the last octet only, `127.0.0.1-8`) and single addresses (IPv4 or
 * IPv6), comma-separated. Throws KEDGE_CONFIG_INVALID naming the bad part.
 */
export function parseSourceAddresses(text: string): string[] {
  const out: string[] = [];
  const bad = (part: string, why: string): KedgeError =>
    new KedgeError('KEDGE_CONFIG_INVALID', `--source-addresses ${JSON.stringify(part)} ${why}`, {
      context: { sourceAddresses: text },
    });
  for (const raw of text.split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    const dash = part.indexOf('-');
    if (dash < 0) {
      if (isIP(part) === 0) throw bad(part, 'is not an IP address');
      out.push(part);
      continue;
    }
    const from = part.slice(0, dash).trim();
    let to = part.slice(dash + 1).trim();
    if (!isIPv4(from)) throw bad(part, 'does not start with an IPv4 address');
    if (/^\d{1,3}$/.test(to)) to = `${from.slice(0, from.lastIndexOf('.'))}.${to}`;
    if (!isIPv4(to)) throw bad(part, 'does not end with an IPv4 address');
    const a = ipv4ToInt(from);
    const b = ipv4ToInt(to);
    if (b < a) throw bad(part, 'ends before it starts');
    if (b - a + 1 + out.length > MAX_SOURCE_ADDRESSES)
      throw bad(part, `holds more than ${MAX_SOURCE_ADDRESSES} addresses`);
    for (let n = a; n <= b; n++) out.push(intToIpv4(n));
  }
  if (out.length === 0) throw bad(text, 'names no address');
  return out;
}

function positiveInt(
  value: string | number | undefined,
  flag: string,
  fallback: number,
  max: number,
  errors: string[],
): number {
  if (value === undefined) return fallback;
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    errors.push(`${flag} ${JSON.stringify(value)} must be an integer from 1 to ${max}`);
    return fallback;
  }
  return n;
}

/** Checks every option once and reports all problems together (KEDGE_CONFIG_INVALID). */
export function resolveSimOptions(options: Omit<SimOptions, 'logger'>): ResolvedSimOptions {
  const _env = process.env;
  const errors: string[] = [];
  const { server, serverHost, token } = checkServerAndToken(options, errors);
  if (options.nodes === undefined) errors.push('--nodes N is required');
  const nodes = positiveInt(options.nodes, '--nodes', 1, MAX_NODES, errors);
  const concurrency = positiveInt(options.concurrency, '--concurrency', 32, 10_000, errors);
  const namePrefix = options.namePrefix ?? 'sim-';
  const nameErr = nodeNameError(`${namePrefix}${nodes - 1}`);
  if (nameErr !== undefined) errors.push(`--name-prefix ${JSON.stringify(namePrefix)}: ${nameErr}`);
  const store = options.store ?? 'memory';
  if (store !== 'memory' && store !== 'file')
    errors.push(`--store ${JSON.stringify(store)} must be memory or file`);
  let sourceAddresses: string[] = [];
  if (options.sourceAddresses !== undefined) {
    try {
      sourceAddresses = parseSourceAddresses(options.sourceAddresses);
    } catch (err) {
      errors.push((err as Error).message);
    }
  } else if (isIPv4(serverHost) && serverHost.startsWith('127.')) {
    sourceAddresses = parseSourceAddresses('127.0.0.1-127.0.0.8');
  }
  if (errors.length > 0) {
    throw new KedgeError('KEDGE_CONFIG_INVALID', `Invalid sim options: ${errors.join('; ')}`, {
      context: { errors },
    });
  }
  return {
    server,
    token,
    nodes,
    namePrefix,
    dataDir: resolve(options.dataDir ?? '.kedge/sim'),
    concurrency,
    sourceAddresses,
    store: store === 'file' ? 'file' : 'memory',
    resyncMs: options.resyncMs ?? 60_000,
  };
}

/** One simulated node. */
interface SimNode {
  readonly name: string;
  readonly session: Session;
  up: boolean;
  close(): Promise<void>;
}

export interface RunningSim {
  readonly options: ResolvedSimOptions;
  /** Resolves when every node has joined and connected once; rejects if a join fails. */
  readonly ready: Promise<void>;
  joined(): number;
  connected(): number;
  close(): Promise<void>;
}

/** Runs `work` on every index with at most `limit` at once; stops taking work when `stopped()` or on the first failure. */
async function inParallel(
  count: number,
  limit: number,
  stopped: () => boolean,
  work: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < count && !stopped() && failure === undefined) {
      try {
        await work(next++);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  // Every worker finishes before this settles, so nothing starts after a failure or a stop is seen.
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  if (failure !== undefined) throw failure.err;
}

/** Joins (or loads the stored credentials of) every node and starts it, `concurrency` at a time. */
export function startSim(options: SimOptions): RunningSim {
  const o = resolveSimOptions(options);
  const log = options.logger;
  const quiet = silentLogger();
  const nodes: SimNode[] = [];
  let joined = 0;
  let connected = 0;
  let closing = false;
  let allConnected = Promise.withResolvers<void>();
  const checkAll = (): void => {
    if (connected === o.nodes) allConnected.resolve();
  };

  const startNode = async (i: number): Promise<void> => {
    const name = `${o.namePrefix}${i}`;
    const dir = join(o.dataDir, name);
    const localAddress =
      o.sourceAddresses.length === 0 ? undefined : o.sourceAddresses[i % o.sourceAddresses.length];
    const hostIP = localAddress ?? defaultHostIP();
    const nodeLog = log.child({ component: 'sim-node', node: name }, { level: 'warn' });
    const tls = await loadOrJoin({
      server: o.server,
      ...(o.token === undefined ? {} : { token: o.token }),
      nodeName: name,
      dataDir: dir,
      labels: { 'kedge.io/simulated': 'true' },
      logger: quiet,
    });
    joined++;
    if (closing) return;
    const store = new LocalStore(o.store === 'file' ? join(dir, 'agent.db') : ':memory:');
    const outbox = new Outbox(store);
    const runtime = new FakeRuntime({ logger: quiet });
    const pods = new PodManager({
      nodeName: name,
      hostIP,
      store,
      runtime,
      outbox,
      logger: nodeLog,
      resyncMs: o.resyncMs,
      concurrency: 2,
    });
    await pods.start();
    const nodeStatus = new NodeStatusReporter({
      nodeName: name,
      dataDir: dir,
      runtimeVersion: runtime.version,
      hostIP,
      outbox,
      logger: nodeLog,
      intervalMs: o.resyncMs,
    });
    nodeStatus.start();
    const keeper = new CertificateKeeper(tls, {
      server: o.server,
      nodeName: name,
      dataDir: dir,
      logger: nodeLog,
    });
    const session = new Session({
      server: o.server,
      nodeName: name,
      store,
      outbox,
      credentials: () => keeper.current(),
      logger: nodeLog,
      agentVersion: SIM_VERSION,
      ...(localAddress === undefined ? {} : { localAddress }),
    });
    const node: SimNode = {
      name,
      session,
      up: false,
      async close() {
        await session.stop();
        await keeper.stop();
        nodeStatus.stop();
        await pods.stop();
        await runtime.close();
        store.close();
      },
    };
    nodes.push(node);
    // The first outcome (welcome or failure) frees the slot: a server that refuses does not stall the rest.
    const first = Promise.withResolvers<void>();
    session.on('connected', () => {
      if (!node.up) {
        node.up = true;
        connected++;
        checkAll();
      }
      first.resolve();
    });
    session.on('disconnected', () => {
      if (node.up) {
        node.up = false;
        connected--;
      }
      first.resolve();
    });
    keeper.start();
    session.start();
    await first.promise;
  };

  const started = inParallel(o.nodes, o.concurrency, () => closing, startNode);
  const ready = (async () => {
    await started;
    await allConnected.promise;
  })();
  // Callers that never await ready (close during start-up) must not see an unhandled rejection.
  ready.catch(() => {});

  let closed: Promise<void> | undefined;
  return {
    options: o,
    ready,
    joined: () => joined,
    connected: () => connected,
    close() {
      closed ??= (async () => {
        closing = true;
        allConnected.resolve();
        await started.catch(() => {});
        await Promise.all(nodes.map((n) => n.close()));
        allConnected = Promise.withResolvers<void>();
      })();
      return closed;
    },
  };
}

function memoryFigures(nodes: number): Record<string, number> {
  const m = process.memoryUsage();
  return {
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    rssPerNodeBytes: Math.round(m.rss / Math.max(1, nodes)),
  };
}

/** `kedge sim [flags]`: runs until SIGINT/SIGTERM. */
export async function runSimCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      server: { type: 'string' },
      token: { type: 'string' },
      nodes: { type: 'string' },
      'name-prefix': { type: 'string' },
      'data-dir': { type: 'string' },
      concurrency: { type: 'string' },
      'source-addresses': { type: 'string' },
      store: { type: 'string' },
    },
    strict: true,
  });
  const logger = createRootLogger();
  const pick = <K extends string>(key: K, flag: keyof typeof values): { [P in K]?: string } => {
    const v = values[flag];
    return (typeof v === 'string' ? { [key]: v } : {}) as { [P in K]?: string };
  };
  const stop = Promise.withResolvers<'stop'>();
  process.once('SIGINT', () => stop.resolve('stop'));
  process.once('SIGTERM', () => stop.resolve('stop'));
  const t0 = performance.now();
  const sim = startSim({
    logger,
    ...pick('server', 'server'),
    ...pick('token', 'token'),
    ...pick('nodes', 'nodes'),
    ...pick('namePrefix', 'name-prefix'),
    ...pick('dataDir', 'data-dir'),
    ...pick('concurrency', 'concurrency'),
    ...pick('sourceAddresses', 'source-addresses'),
    ...pick('store', 'store'),
  });
  const o = sim.options;
  logger.warn(
    { runtime: 'fake' },
    'simulated nodes use the fake runtime: pods are marked Running without running anything',
  );
  logger.info(
    {
      nodes: o.nodes,
      server: o.server,
      dataDir: o.dataDir,
      store: o.store,
      sourceAddresses: o.sourceAddresses.length,
    },
    'starting simulated nodes',
  );
  let last = '';
  const progress = setInterval(() => {
    const now = `${sim.joined()}/${sim.connected()}`;
    if (now === last) return;
    last = now;
    logger.info({ joined: sim.joined(), connected: sim.connected(), nodes: o.nodes }, 'sim progress');
  }, 2000);
  try {
    const outcome = await Promise.race([sim.ready.then(() => 'ready' as const), stop.promise]);
    if (outcome === 'ready') {
      logger.info(
        {
          nodes: o.nodes,
          joined: sim.joined(),
          connected: sim.connected(),
          seconds: Math.round((performance.now() - t0) / 100) / 10,
          ...memoryFigures(o.nodes),
        },
        'kedge sim ready',
      );
      await stop.promise;
    }
  } finally {
    clearInterval(progress);
    logger.info({ connected: sim.connected() }, 'shutting down');
    await sim.close();
  }
  logger.info('stopped');
  return 0;
}
