/**
 * Device twin benchmark: `node bench/devices.ts [DEVICES] [UPDATES]` (defaults 1,000 and 20,000).
 *
 * Against a real `kedge server` process and one `kedge agent` process (embedded MQTT broker on a free port):
 * 1. agent RSS (/proc/PID/status VmRSS) with 0 devices, then with DEVICES devices bound to the node;
 * 2. twin updates per second through one node end to end: an MQTT client publishes UPDATES reported
 *    values (QoS 1, round-robin over the devices, each value newer than the last) and the clock stops
 *    when the server's Device status holds the final value of every device (device → MQTT → agent twin
 *    store + outbox → hub → API); also how fast the agent accepted them (all results back) and how many
 *    status writes the API saw (the outbox coalesces per device);
 * 3. desired-to-device latency: a Device's desired value is patched 200 times through the API; each time
 *    until the MQTT client gets the twin/update/delta, p50/p99.
 * Prints a table and writes bench/results/devices.json.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';
import { DeviceResources } from '../src/api/devices.ts';
import type { KubeObject } from '../src/api/meta.ts';
import { RemoteCluster } from '../src/client/remote-cluster.ts';
import { readKubeconfig, resolveKubeconfig } from '../src/lib/kubeconfig.ts';
import { startAgentProcess } from '../test/harness/agent.ts';
import { startServerProcess } from '../test/harness/server.ts';
import { createRecorder, percentile, rssMiB } from './lib/measure.ts';

const DEVICES = Number(process.argv[2] ?? 1000);
const UPDATES = Number(process.argv[3] ?? 20_000);
const PATCHES = 200;
const NODE = 'bench-dev';
for (const [n, v] of [
  ['DEVICES', DEVICES],
  ['UPDATES', UPDATES],
] as const)
  if (!Number.isSafeInteger(v) || v < 1) throw new TypeError(`${n} must be a positive integer, got ${v}`);

const { rows, record } = createRecorder(64);
const name = (i: number): string => `d-${String(i).padStart(5, '0')}`;

const server = await startServerProcess();
const agentDir = await mkdtemp(join(tmpdir(), 'kedge-bench-dev-'));
const api = new RemoteCluster(resolveKubeconfig(await readKubeconfig(server.kubeconfig)));
const agent = await startAgentProcess({
  server: server.url,
  token: (await readFile(join(server.dataDir, 'node-token'), 'utf8')).trim(),
  nodeName: NODE,
  dataDir: agentDir,
});
const client = await mqtt.connectAsync(agent.mqtt!, { clientId: 'kedge-bench' });
(client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
try {
  await sleep(3000);
  record('Agent RSS, 0 devices', await rssMiB(agent.child.pid!), 'MiB');

  await api.create(DeviceResources.devicemodels, 'default', {
    apiVersion: 'devices.kubeedge.io/v1beta1',
    kind: 'DeviceModel',
    metadata: { name: 'sensor', namespace: 'default' },
    spec: {
      properties: [
        { name: 'value', type: 'INT', accessMode: 'ReadOnly' },
        { name: 'target', type: 'INT', accessMode: 'ReadWrite' },
      ],
    },
  } as KubeObject);
  const created = Date.now();
  for (let i = 0; i < DEVICES; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, DEVICES - i) }, (_, k) =>
        api.create(DeviceResources.devices, 'default', {
          apiVersion: 'devices.kubeedge.io/v1beta1',
          kind: 'Device',
          metadata: { name: name(i + k), namespace: 'default' },
          spec: {
            deviceModelRef: { name: 'sensor' },
            nodeName: NODE,
            protocol: { protocolName: 'bench-program' },
            properties: [{ name: 'value' }, { name: 'target', desired: { value: '0' } }],
          },
        } as KubeObject),
      ),
    );
  }
  // Every device on the node: membership/get lists them all.
  const membership = `$hw/events/node/${NODE}/membership/get`;
  await client.subscribeAsync(`${membership}/result`, { qos: 1 });
  for (;;) {
    const got = new Promise<number>((ok) =>
      client.once('message', (_t, p) =>
        ok((JSON.parse(p.toString()) as { devices?: unknown[] }).devices?.length ?? 0),
      ),
    );
    await client.publishAsync(membership, '{}', { qos: 1 });
    if ((await got) >= DEVICES) break;
    await sleep(200);
  }
  record(`${DEVICES} devices created until all on the node`, (Date.now() - created) / 1000, 's');
  // Let the first status reports of every device settle before measuring memory and throughput.
  await sleep(5000);
  record(`Agent RSS, ${DEVICES} devices`, await rssMiB(agent.child.pid!), 'MiB');

  // 2. Updates end to end.
  const finals = new Map<string, string>();
  const watchAbort = new AbortController();
  let statusWrites = 0;
  const done = Promise.withResolvers<void>();
  const pending = new Set<string>();
  const watch = (async () => {
    const list = await api.list(DeviceResources.devices, { namespace: 'default' });
    for await (const e of api.watch(DeviceResources.devices, {
      namespace: 'default',
      resourceVersion: list.metadata.resourceVersion ?? '0',
      signal: watchAbort.signal,
    })) {
      if (e.type !== 'MODIFIED') continue;
      statusWrites++;
      const n = e.object.metadata.name ?? '';
      const twins = (
        e.object['status'] as { twins?: Array<{ propertyName: string; reported?: { value: string } }> }
      )?.twins;
      const v = twins?.find((t) => t.propertyName === 'value')?.reported?.value;
      if (v !== undefined && v === finals.get(n) && pending.delete(n) && pending.size === 0) done.resolve();
    }
  })().catch(() => {});
  await sleep(500);
  statusWrites = 0;
  let results = 0;
  const allResults = Promise.withResolvers<void>();
  client.on('message', (t) => {
    if (t.endsWith('/twin/update/result') && ++results === UPDATES) allResults.resolve();
  });
  await client.subscribeAsync('$hw/events/device/default/+/twin/update/result', { qos: 1 });
  for (let i = 0; i < UPDATES; i++) {
    const n = name(i % DEVICES);
    finals.set(n, String(1000 + i));
    pending.add(n);
  }
  const start = performance.now();
  const inflight: Promise<unknown>[] = [];
  for (let i = 0; i < UPDATES; i++) {
    const n = name(i % DEVICES);
    inflight.push(
      client.publishAsync(
        `$hw/events/device/default/${n}/twin/update`,
        `{"event_id":"b${i}","twin":{"value":{"actual":{"value":"${1000 + i}"}}}}`,
        { qos: 1 },
      ),
    );
    if (inflight.length >= 200) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
  await allResults.promise;
  const accepted = performance.now() - start;
  await done.promise;
  const endToEnd = performance.now() - start;
  record(`Twin updates accepted by the agent (MQTT results back)`, UPDATES / (accepted / 1000), 'updates/s');
  record(`Twin updates end to end (all final values in the API)`, UPDATES / (endToEnd / 1000), 'updates/s');
  record(`  time for ${UPDATES} updates over ${DEVICES} devices`, endToEnd / 1000, 's');
  record('  Device status writes the API saw (coalesced per device)', statusWrites, 'writes');
  await client.unsubscribeAsync('$hw/events/device/default/+/twin/update/result');

  // 3. Desired → device latency.
  const target = name(0);
  const deltaTopic = `$hw/events/device/default/${target}/twin/update/delta`;
  await client.subscribeAsync(deltaTopic, { qos: 1 });
  const latencies: number[] = [];
  const afterAnswer: number[] = [];
  for (let i = 1; i <= PATCHES; i++) {
    const want = String(i);
    const got = new Promise<void>((ok) => {
      const on = (t: string, p: Buffer): void => {
        if (t !== deltaTopic) return;
        if ((JSON.parse(p.toString()) as { delta?: Record<string, string> }).delta?.['target'] === want) {
          client.off('message', on);
          ok();
        }
      };
      client.on('message', on);
    });
    const t0 = performance.now();
    await api.patch(DeviceResources.devices, 'default', target, 'json', [
      { op: 'replace', path: '/spec/properties/1/desired/value', value: want },
    ]);
    const answered = performance.now();
    await got;
    latencies.push(performance.now() - t0);
    afterAnswer.push(performance.now() - answered);
  }
  latencies.sort((a, b) => a - b);
  record('Desired value patched → twin/update/delta on the node, p50', percentile(latencies, 50), 'ms');
  record('Desired value patched → twin/update/delta on the node, p99', percentile(latencies, 99), 'ms');
  afterAnswer.sort((a, b) => a - b);
  record('  of which after the API answered the patch, p50', percentile(afterAnswer, 50), 'ms');
  record('  of which after the API answered the patch, p99', percentile(afterAnswer, 99), 'ms');
  record(`Agent RSS after the run, ${DEVICES} devices`, await rssMiB(agent.child.pid!), 'MiB');
  watchAbort.abort();
  await watch;
} finally {
  await client.endAsync();
  await agent.stop();
  await server.stop();
  await rm(agentDir, { recursive: true, force: true });
  await rm(server.dataDir, { recursive: true, force: true });
}

await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
await writeFile(
  join(import.meta.dirname, 'results', 'devices.json'),
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
      devices: DEVICES,
      updates: UPDATES,
      rows,
    },
    null,
    2,
  )}\n`,
);
