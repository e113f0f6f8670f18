/**
 * Many edge nodes in one process for benchmarks: each joins through the real join endpoint (its own key
 * and certificate) and runs the real agent Session on its own LocalStore (SQLite in its own folder),
 * without pods or node status. Counts what every node receives.
 */
import { join } from 'node:path';
import { joinCluster } from '../../src/agent/join.ts';
import { LocalStore } from '../../src/agent/local-store.ts';
import { Outbox } from '../../src/agent/outbox.ts';
import { type NodeTls, Session } from '../../src/agent/session.ts';
import { silentLogger } from '../../src/lib/log.ts';

export interface SwarmNode {
  readonly name: string;
  readonly store: LocalStore;
  readonly session: Session;
  /** Times (performance.now()) of the last welcome and the last applied batch. */
  lastConnectedAt: number;
  lastBatchAt: number;
  /** Batches and items applied, and the JSON bytes of their items. */
  batches: number;
  items: number;
  itemBytes: number;
  connects: number;
}

/** Runs `work` on every index with at most `limit` at once. */
export async function inParallel(
  count: number,
  limit: number,
  work: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

/** Joins `count` nodes named `${prefix}-${i}` with the token; credentials go to baseDir/<name>. */
export async function joinNodes(
  server: string,
  token: string,
  names: readonly string[],
  baseDir: string,
  concurrency = 16,
): Promise<NodeTls[]> {
  const out: NodeTls[] = new Array(names.length);
  const logger = silentLogger();
  await inParallel(names.length, concurrency, async (i) => {
    const nodeName = names[i]!;
    out[i] = await joinCluster({ server, token, nodeName, dataDir: join(baseDir, nodeName), logger });
  });
  return out;
}

/** Opens each node's store and starts its session against `server` (which may be a proxy). */
export function startSwarm(
  server: string,
  names: readonly string[],
  credentials: readonly NodeTls[],
  baseDir: string,
): SwarmNode[] {
  const logger = silentLogger();
  return names.map((name, i) => {
    const store = new LocalStore(join(baseDir, name, 'agent.db'));
    const tls = credentials[i]!;
    const session = new Session({
      server,
      nodeName: name,
      store,
      outbox: new Outbox(store),
      credentials: () => tls,
      logger,
    });
    const node: SwarmNode = {
      name,
      store,
      session,
      lastConnectedAt: 0,
      lastBatchAt: 0,
      batches: 0,
      items: 0,
      itemBytes: 0,
      connects: 0,
    };
    session.on('connected', () => {
      node.connects++;
      node.lastConnectedAt = performance.now();
    });
    session.on('batch', (b) => {
      node.batches++;
      node.items += b.items.length;
      for (const item of b.items) node.itemBytes += JSON.stringify(item).length;
      node.lastBatchAt = performance.now();
    });
    session.start();
    return node;
  });
}

export async function stopSwarm(nodes: readonly SwarmNode[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.session.stop()));
  for (const n of nodes) n.store.close();
}
