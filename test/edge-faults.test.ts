// A seeded, randomized fault campaign on real processes: one `kedge server` and three `kedge agent`s, each
// agent behind its own fault proxy. A driver changes objects (ConfigMaps referenced by pods, pods bound
// with spec.nodeName, a Deployment scaled up and down) while a fault loop cuts, blackholes, stalls,
// throttles and delays connections, SIGKILLs agents and restarts them, and stops or kills the server and
// restarts it on the same data dir and port. Then every fault is lifted and, once quiet, each node's local
// store must equal the server's view of what is relevant to it (keys and revisions), every pod must be
// Running in the API, and no key may ever have gone back to an older revision on a node.
//
// The seed is printed; KEDGE_FAULT_SEED=<n> replays the same operations and faults (their interleaving
// with the processes still varies). KEDGE_FAULT_SECONDS sets the campaign length (default 45).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import type { KubeObject } from '../src/api/meta.ts';
import { RemoteCluster } from '../src/client/remote-cluster.ts';
import { Resources } from '../src/client/types.ts';
import { podNodeName, podReferences } from '../src/hub/relevance.ts';
import { readKubeconfig, resolveKubeconfig } from '../src/lib/kubeconfig.ts';
import { type SyncKey, syncKey } from '../src/protocol/messages.ts';
import { type AgentProcess, startAgentProcess } from './harness/agent.ts';
import { FaultProxy } from './harness/fault-proxy.ts';
import { removeDir, type ServerProcess, startServerProcess } from './harness/server.ts';

const SEED = Number(process.env['KEDGE_FAULT_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const SECONDS = Number(process.env['KEDGE_FAULT_SECONDS'] ?? 45);
const NODES = ['edge-1', 'edge-2', 'edge-3'] as const;
type NodeName = (typeof NODES)[number];
const NS = 'default';

/** mulberry32: a small seeded PRNG, so a campaign can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface World {
  server: ServerProcess;
  serverPort: number;
  dataDir: string;
  token: string;
  cluster: RemoteCluster;
  proxies: Map<NodeName, FaultProxy>;
  agents: Map<NodeName, AgentProcess>;
}

let world: World | undefined;

after(async () => {
  if (world === undefined) return;
  await Promise.all([...world.agents.values()].map((a) => a.kill()));
  for (const p of world.proxies.values()) await p.close();
  world.cluster.close();
  await world.server.kill();
  await removeDir(world.dataDir);
});

async function startAgent(w: World, node: NodeName): Promise<void> {
  w.agents.set(
    node,
    await startAgentProcess({
      server: w.proxies.get(node)!.url,
      token: w.token,
      nodeName: node,
      dataDir: join(w.dataDir, 'agents', node),
      extraArgs: ['--runtime', 'fake', '--host-ip', '127.0.0.1'],
    }),
  );
}

async function setup(): Promise<World> {
  const server = await startServerProcess();
  const serverPort = Number(new URL(server.url).port);
  const w: World = {
    server,
    serverPort,
    dataDir: server.dataDir,
    token: (await readFile(join(server.dataDir, 'node-token'), 'utf8')).trim(),
    cluster: new RemoteCluster(resolveKubeconfig(await readKubeconfig(server.kubeconfig))),
    proxies: new Map(),
    agents: new Map(),
  };
  world = w;
  for (const node of NODES) w.proxies.set(node, await FaultProxy.start({ targetPort: serverPort }));
  await Promise.all(NODES.map((node) => startAgent(w, node)));
  return w;
}

// ---- the driver: object changes ----

const CONFIGMAPS = 5;
const PODS = 8;

function podManifest(name: string, node: NodeName, cm: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { campaign: 'pods' } },
    spec: {
      nodeName: node,
      containers: [
        { name: 'app', image: 'busybox', envFrom: [{ configMapRef: { name: `cm-${cm}`, optional: true } }] },
      ],
      volumes: [{ name: 'cfg', configMap: { name: `cm-${(cm + 1) % CONFIGMAPS}`, optional: true } }],
    },
  };
}

const deployment = (replicas: number): KubeObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'dep', namespace: NS },
  spec: {
    replicas,
    selector: { matchLabels: { app: 'dep' } },
    template: {
      metadata: { labels: { app: 'dep' } },
      spec: {
        containers: [
          { name: 'app', image: 'busybox', envFrom: [{ configMapRef: { name: 'cm-0', optional: true } }] },
        ],
      },
    },
  },
});

/** One random change; errors (server down, conflicts, already exists) are counted, not fatal. */
async function drive(c: RemoteCluster, random: () => number): Promise<string> {
  const pick = (n: number): number => Math.floor(random() * n);
  const r = random();
  if (r < 0.4) {
    const name = `cm-${pick(CONFIGMAPS)}`;
    const roll = random();
    if (roll < 0.15) {
      await c.delete(Resources.configmaps, NS, name);
      return 'cm-delete';
    }
    const body = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: NS },
      data: { v: String(roll) },
    };
    try {
      const cur = await c.get(Resources.configmaps, NS, name);
      await c.update(Resources.configmaps, { ...cur, data: body.data });
      return 'cm-update';
    } catch {
      await c.create(Resources.configmaps, NS, body);
      return 'cm-create';
    }
  }
  if (r < 0.8) {
    const name = `pod-${pick(PODS)}`;
    try {
      await c.get(Resources.pods, NS, name);
      await c.delete(Resources.pods, NS, name);
      return 'pod-delete';
    } catch {
      await c.create(Resources.pods, NS, podManifest(name, NODES[pick(NODES.length)]!, pick(CONFIGMAPS)));
      return 'pod-create';
    }
  }
  const replicas = pick(5);
  try {
    const cur = await c.get(Resources.deployments, NS, 'dep');
    await c.update(Resources.deployments, { ...cur, spec: { ...(cur['spec'] as object), replicas } });
    return 'scale';
  } catch {
    await c.create(Resources.deployments, NS, deployment(replicas));
    return 'deploy-create';
  }
}

// ---- the fault loop ----

async function restartServer(w: World, how: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  if (how === 'SIGKILL') await w.server.kill();
  else await w.server.stop();
  w.server = await startServerProcess({ dataDir: w.dataDir, listen: `127.0.0.1:${w.serverPort}` });
}

async function fault(w: World, random: () => number): Promise<string> {
  const node = NODES[Math.floor(random() * NODES.length)]!;
  const proxy = w.proxies.get(node)!;
  const ms = (lo: number, hi: number): number => Math.round(lo + random() * (hi - lo));
  const r = random();
  if (r < 0.2) {
    proxy.cut();
    return 'cut';
  }
  if (r < 0.35) {
    proxy.blackhole();
    await sleep(ms(1000, 6000));
    proxy.lift();
    return 'blackhole';
  }
  if (r < 0.5) {
    proxy.stall(ms(200, 3000));
    return 'stall';
  }
  if (r < 0.6) {
    proxy.setThrottle(375_000); // 3 Mbit/s
    await sleep(ms(1000, 5000));
    proxy.lift();
    return 'throttle';
  }
  if (r < 0.7) {
    proxy.setDelay(ms(20, 300));
    await sleep(ms(1000, 5000));
    proxy.lift();
    return 'delay';
  }
  if (r < 0.85) {
    await w.agents.get(node)!.kill();
    await startAgent(w, node);
    return 'agent-kill';
  }
  const how = random() < 0.5 ? 'SIGTERM' : 'SIGKILL';
  await restartServer(w, how);
  return how === 'SIGTERM' ? 'server-stop' : 'server-kill';
}

// ---- the final comparison ----

type View = Map<SyncKey, KubeObject>;

/** What the server holds that is relevant to `node`: its Node, its pods, what they reference. */
async function serverViews(c: RemoteCluster): Promise<Map<NodeName, View>> {
  const [nodes, pods, cms, secrets, sas] = await Promise.all([
    c.list(Resources.nodes, {}),
    c.list(Resources.pods, {}),
    c.list(Resources.configmaps, {}),
    c.list(Resources.secrets, {}),
    c.list(Resources.serviceaccounts, {}),
  ]);
  const byKey = new Map<SyncKey, KubeObject>();
  const add = (plural: string, items: KubeObject[]): void => {
    for (const o of items) byKey.set(syncKey('', plural, o.metadata.namespace, o.metadata.name ?? ''), o);
  };
  add('configmaps', cms.items);
  add('secrets', secrets.items);
  add('serviceaccounts', sas.items);
  const views = new Map<NodeName, View>();
  for (const node of NODES) {
    const view: View = new Map();
    const own = nodes.items.find((n) => n.metadata.name === node);
    if (own !== undefined) view.set(syncKey('', 'nodes', undefined, node), own);
    for (const pod of pods.items.filter((p) => podNodeName(p) === node)) {
      view.set(syncKey('', 'pods', pod.metadata.namespace, pod.metadata.name ?? ''), pod);
      for (const ref of podReferences(pod)) {
        const o = byKey.get(ref);
        if (o !== undefined) view.set(ref, o);
      }
    }
    views.set(node, view);
  }
  return views;
}

/** The parts of an object that must match between the server and a node (not the revision). */
function content(o: KubeObject): string {
  const { labels, annotations, uid, deletionTimestamp } = o.metadata;
  return JSON.stringify({
    labels,
    annotations,
    uid,
    deletionTimestamp,
    spec: o['spec'],
    data: o['data'],
    status: o['status'],
  });
}

/** What a node serves on its local API (same kinds as the relevant set). */
async function localView(agent: AgentProcess): Promise<View> {
  const view: View = new Map();
  for (const plural of ['nodes', 'pods', 'configmaps', 'secrets', 'serviceaccounts']) {
    const res = await fetch(`${agent.localApi}/api/v1/${plural}`);
    const list = (await res.json()) as { items: KubeObject[] };
    for (const o of list.items) view.set(syncKey('', plural, o.metadata.namespace, o.metadata.name ?? ''), o);
  }
  return view;
}

async function outboxDepth(agent: AgentProcess): Promise<number> {
  const text = await (await fetch(`${agent.localApi}/metrics`)).text();
  const m = /^kedge_agent_outbox_depth (\d+)/m.exec(text);
  return m === null ? Number.NaN : Number(m[1]);
}

/** Differences between the server's views and the nodes' local APIs, plus pods not yet Running. */
async function differences(w: World): Promise<string[]> {
  const out: string[] = [];
  const views = await serverViews(w.cluster);
  for (const node of NODES) {
    const want = views.get(node)!;
    const agent = w.agents.get(node)!;
    const have = await localView(agent);
    for (const [key, o] of want) {
      const h = have.get(key);
      if (h === undefined) out.push(`${node}: missing ${key}`);
      else if (content(h) !== content(o)) out.push(`${node}: stale ${key}`);
    }
    for (const key of have.keys()) if (!want.has(key)) out.push(`${node}: extra ${key}`);
    for (const [key, o] of want) {
      if (
        key.startsWith('core/pods/') &&
        (o['status'] as { phase?: string } | undefined)?.phase !== 'Running'
      )
        out.push(`${node}: ${key} not Running in the API`);
    }
    const depth = await outboxDepth(agent);
    if (depth !== 0) out.push(`${node}: outbox depth ${depth}`);
  }
  return out;
}

describe('edge fault campaign', () => {
  it('keeps every node in sync with the server through random faults', async () => {
    console.log(`edge-faults: seed ${SEED} (replay with KEDGE_FAULT_SEED=${SEED}), ${SECONDS} s`);
    const w = await setup();
    const random = prng(SEED);
    const driverRandom = prng(SEED ^ 0x5bd1e995);
    const ops = new Map<string, number>();
    const faults = new Map<string, number>();
    let opErrors = 0;
    const count = (m: Map<string, number>, k: string): void => {
      m.set(k, (m.get(k) ?? 0) + 1);
    };
    const end = Date.now() + SECONDS * 1000;

    const driver = (async () => {
      while (Date.now() < end) {
        try {
          count(ops, await drive(w.cluster, driverRandom));
        } catch {
          opErrors++;
        }
        await sleep(50 + driverRandom() * 200);
      }
    })();
    const faulter = (async () => {
      await sleep(1000);
      while (Date.now() < end) {
        count(faults, await fault(w, random));
        await sleep(500 + random() * 2000);
      }
    })();
    await Promise.all([driver, faulter]);

    // Quiet: lift everything and wait until every node agrees with the server (or the deadline passes).
    for (const p of w.proxies.values()) p.lift();
    const deadline = Date.now() + 90_000;
    let diff: string[] = ['not checked yet'];
    while (Date.now() < deadline) {
      try {
        diff = await differences(w);
      } catch (err) {
        diff = [`check failed: ${(err as Error).message}`];
      }
      if (diff.length === 0) break;
      await sleep(500);
    }
    if (diff.length > 0) {
      for (const node of NODES.filter((n) => diff.some((d) => d.startsWith(`${n}:`)))) {
        const brief = (e: Record<string, unknown>): string =>
          JSON.stringify({
            t: e['time'],
            c: e['component'],
            m: e['msg'],
            r: e['reason'] ?? e['err'] ?? e['code'],
          });
        console.log(
          `--- ${node} agent log (tail)\n${w.agents.get(node)!.logs.slice(-25).map(brief).join('\n')}`,
        );
        const hub = w.server.logs.filter((e) => e['node'] === node).slice(-25);
        console.log(`--- ${node} in the server log (tail)\n${hub.map(brief).join('\n')}`);
      }
    }
    assert.deepEqual(diff, [], 'nodes did not converge with the server');

    // The strict check: keys and revisions in each agent's SQLite store, read after a clean stop.
    const views = await serverViews(w.cluster);
    const outOfOrder: Record<string, number> = {};
    for (const node of NODES) {
      const agent = w.agents.get(node)!;
      assert.equal(await agent.stop(), 0);
      const db = new DatabaseSync(join(agent.dataDir, 'agent.db'), { readOnly: true });
      try {
        const held = Object.fromEntries(
          db
            .prepare('SELECT key, revision FROM objects ORDER BY key')
            .all()
            .map((r) => [String(r['key']), Number(r['revision'])]),
        );
        const want = Object.fromEntries(
          [...views.get(node)!]
            .map(([key, o]) => [key, Number(o.metadata.resourceVersion)] as const)
            .sort(([a], [b]) => (a < b ? -1 : 1)),
        );
        assert.deepEqual(held, want, `node ${node}: local store keys and revisions`);
        outOfOrder[node] = Number(
          db.prepare("SELECT value FROM meta WHERE name = 'out_of_order'").get()?.['value'],
        );
      } finally {
        db.close();
      }
    }
    const total = [...faults.values()].reduce((a, b) => a + b, 0);
    console.log(
      `edge-faults: seed ${SEED}: survived ${total} faults ${JSON.stringify(Object.fromEntries(faults))}; ` +
        `${[...ops.values()].reduce((a, b) => a + b, 0)} changes ${JSON.stringify(Object.fromEntries(ops))}, ` +
        `${opErrors} refused while faulted; out of order ${JSON.stringify(outOfOrder)}; ` +
        `proxy bytes ${JSON.stringify(Object.fromEntries([...w.proxies].map(([n, p]) => [n, [p.counters.up, p.counters.down]])))}`,
    );
    assert.deepEqual(outOfOrder, { 'edge-1': 0, 'edge-2': 0, 'edge-3': 0 });
    assert.ok(total > 0);
  });
});
