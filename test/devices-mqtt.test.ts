// Device twins over MQTT with real clients: `kedge server` and `kedge agent` processes, Debian's
// mosquitto_pub/mosquitto_sub against the agent's embedded broker (KubeEdge topics and payloads), and the
// agent against an external mosquitto broker. Reported values and state reach the Device status seen by
// kubectl; desired values set with kubectl arrive as twin/update/delta; stale and malformed updates get an
// error result and change nothing.
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AgentProcess, startAgentProcess } from './harness/agent.ts';
import { kubectlOk } from './harness/kubectl.ts';
import {
  freePort,
  type MosquittoBroker,
  mosquittoMissing,
  publish,
  startMosquitto,
  subscribe,
} from './harness/mosquitto.ts';
import { removeDir, type ServerProcess, startServerProcess } from './harness/server.ts';

const FIXTURE = new URL('./fixtures/devices.yaml', import.meta.url).pathname;
const skip = mosquittoMissing();
const T = '$hw/events/device/default/thermo-1';

interface DeviceJson {
  status?: {
    state?: string;
    lastOnlineTime?: string;
    edgeVersion?: number;
    twins?: Array<{
      propertyName: string;
      reported?: { value: string; metadata?: Record<string, string> };
      observedDesired?: { value: string };
    }>;
  };
}

async function device(server: ServerProcess, name = 'thermo-1'): Promise<DeviceJson> {
  return JSON.parse(await kubectlOk(server.kubeconfig, ['get', 'device', name, '-o', 'json'])) as DeviceJson;
}

/** Polls kubectl until `check` passes (the status arrives asynchronously through the hub). */
async function eventually<T>(fn: () => Promise<T>, check: (v: T) => boolean, what: string): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < 150; i++) {
    last = await fn();
    if (check(last)) return last;
    await sleep(100);
  }
  throw new Error(`Timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

const reported = (d: DeviceJson, prop: string): string | undefined =>
  d.status?.twins?.find((t) => t.propertyName === prop)?.reported?.value;

describe('device twins over MQTT', { skip }, () => {
  let server: ServerProcess;
  let agent: AgentProcess;
  let mqttUrl: string;

  before(async () => {
    server = await startServerProcess();
    await kubectlOk(server.kubeconfig, ['apply', '-f', '-'], {
      input: (await readFile(FIXTURE, 'utf8')).replaceAll(
        'protocolName: virtual',
        'protocolName: user-program',
      ),
    });
    const joinToken = (await readFile(join(server.dataDir, 'node-token'), 'utf8')).trim();
    agent = await startAgentProcess({
      server: server.url,
      token: joinToken,
      nodeName: 'edge-1',
      dataDir: await mkdtemp(join(tmpdir(), 'kedge-dev-agent-')),
    });
    assert.ok(agent.mqtt, 'the agent serves MQTT');
    mqttUrl = agent.mqtt;
    // The device reaches the node through the sync: membership/get lists it.
    const members = await subscribe(mqttUrl, '$hw/events/node/edge-1/membership/#');
    try {
      await eventually(
        async () => {
          await publish(mqttUrl, '$hw/events/node/edge-1/membership/get', '{"event_id":"m1"}');
          return members.waitFor((m) => m.topic.endsWith('/get/result'), 2000).catch(() => undefined);
        },
        (m) => JSON.stringify(m?.json?.['devices'] ?? []).includes('"thermo-1"'),
        'the device on the node',
      );
    } finally {
      await members.close();
    }
  });
  after(async () => {
    await agent?.stop();
    await server?.stop();
    if (agent !== undefined) await removeDir(agent.dataDir);
    if (server !== undefined) await removeDir(server.dataDir);
  });

  it('a reported value published with mosquitto_pub reaches the Device status seen by kubectl', async () => {
    const results = await subscribe(mqttUrl, `${T}/twin/update/result`);
    const docs = await subscribe(mqttUrl, `${T}/twin/update/document`);
    try {
      await publish(
        mqttUrl,
        `${T}/twin/update`,
        JSON.stringify({
          event_id: 'e1',
          timestamp: Date.now(),
          twin: { temperature: { actual: { value: '21.5' }, metadata: { type: 'float' } } },
        }),
      );
      const r = await results.waitFor((m) => m.json?.['event_id'] === 'e1');
      const twin = (
        (r.json?.['twin'] ?? {}) as Record<
          string,
          { actual: { value: string }; actual_version: { edge: number } }
        >
      )['temperature'];
      assert.equal(twin?.actual.value, '21.5');
      assert.ok((twin?.actual_version.edge ?? 0) >= 1);
      const doc = await docs.waitFor((m) => m.payload.includes('21.5'));
      assert.ok(doc.json?.['twin']);
      const d = await eventually(
        () => device(server),
        (d) => reported(d, 'temperature') === '21.5',
        'reported 21.5',
      );
      assert.ok((d.status?.edgeVersion ?? 0) > 0);
    } finally {
      await results.close();
      await docs.close();
    }
  });

  it('state/update sets the STATE column and lastOnlineTime', async () => {
    const results = await subscribe(mqttUrl, `${T}/state/update/result`);
    try {
      await publish(mqttUrl, `${T}/state/update`, '{"event_id":"s1","timestamp":1,"state":"online"}');
      const r = await results.waitFor((m) => m.json?.['event_id'] === 's1');
      assert.equal(((r.json?.['device'] ?? {}) as { state?: string }).state, 'online');
      await eventually(
        () => kubectlOk(server.kubeconfig, ['get', 'devices', '--no-headers']),
        (out) => /^thermo-1\s+edge-1\s+thermometer\s+user-program\s+online\s/.test(out),
        'STATE online',
      );
      assert.match((await device(server)).status?.lastOnlineTime ?? '', /^\d{4}-\d\d-\d\dT/);
    } finally {
      await results.close();
    }
  });

  it('a desired value patched with kubectl arrives as twin/update/delta and as observedDesired', async () => {
    const deltas = await subscribe(mqttUrl, `${T}/twin/update/delta`);
    try {
      await kubectlOk(server.kubeconfig, [
        'patch',
        'device',
        'thermo-1',
        '--type=json',
        '-p',
        '[{"op":"replace","path":"/spec/properties/1/desired/value","value":"30"}]',
      ]);
      const m = await deltas.waitFor(
        (x) => (x.json?.['delta'] as Record<string, string>)?.['setpoint'] === '30',
      );
      assert.equal(
        ((m.json?.['twin'] ?? {}) as Record<string, { expected: { value: string } }>)['setpoint']?.expected
          .value,
        '30',
      );
      await eventually(
        () => device(server),
        (d) => d.status?.twins?.find((t) => t.propertyName === 'setpoint')?.observedDesired?.value === '30',
        'observedDesired 30',
      );
    } finally {
      await deltas.close();
    }
  });

  it('refuses malformed payloads, bad values, stale versions and unknown devices with a result, changing nothing', async () => {
    const results = await subscribe(mqttUrl, '$hw/events/device/+/+/twin/update/result');
    const gets = await subscribe(mqttUrl, `${T}/twin/get/result`);
    try {
      const cases: Array<[string, string, number, RegExp]> = [
        [T, 'this is not json', 400, /not JSON/],
        [T, '{"event_id":"b2","twin":[1,2]}', 400, /twin must be an object/],
        [T, '{"event_id":"b3","twin":{"temperature":{"actual":{"value":21}}}}', 400, /must be a string/],
        [
          T,
          '{"event_id":"b4","twin":{"temperature":{"actual":{"value":"hot"}}}}',
          400,
          /"hot" is not a number/,
        ],
        [T, '{"event_id":"b5","twin":{"temperature":{"expected":{"value":"5"}}}}', 400, /ReadOnly/],
        [
          T,
          '{"event_id":"b6","twin":{"setpoint":{"expected":{"value":"500"}}}}',
          400,
          /above the maximum 100/,
        ],
        [
          T,
          '{"event_id":"b7","twin":{"temperature":{"actual":{"value":"1"},"actual_version":{"cloud":0,"edge":1}}}}',
          409,
          /Stale version for temperature/,
        ],
        [
          T,
          '{"event_id":"b8","twin":{"temperature":{"actual":{"value":"1","metadata":{"timestamp":5}}}}}',
          409,
          /older than/,
        ],
        [
          '$hw/events/device/default/no-such-device',
          '{"event_id":"b9","twin":{}}',
          404,
          /not bound to node edge-1/,
        ],
      ];
      for (const [topic, payload, code, reason] of cases) {
        await publish(mqttUrl, `${topic}/twin/update`, payload);
        const r = await results.waitFor(
          (m) =>
            m.topic === `${topic}/twin/update/result` &&
            m.json?.['code'] === code &&
            reason.test(String(m.json?.['reason'])),
        );
        assert.equal(typeof r.json?.['timestamp'], 'number');
      }
      await publish(mqttUrl, `${T}/twin/get`, '{"event_id":"g1"}');
      const g = await gets.waitFor((m) => m.json?.['event_id'] === 'g1');
      const twin = g.json?.['twin'] as Record<
        string,
        { actual?: { value: string }; expected?: { value: string } }
      >;
      assert.equal(twin['temperature']?.actual?.value, '21.5');
      assert.equal(twin['setpoint']?.expected?.value, '30');
      assert.equal(reported(await device(server), 'temperature'), '21.5');
    } finally {
      await results.close();
      await gets.close();
    }
  });

  it("counts twin messages by result on the agent's /metrics", async () => {
    const text = await (await fetch(`${agent.localApi}/metrics`)).text();
    const count = (code: string): number =>
      Number(
        new RegExp(`kedge_agent_twin_messages_total\\{action="twin/update",code="${code}"\\} (\\d+)`).exec(
          text,
        )?.[1] ?? 0,
      );
    assert.ok(count('200') >= 1, text);
    assert.ok(count('400') >= 6);
    assert.ok(count('409') >= 2);
    assert.match(text, /^kedge_agent_devices 1$/m);
  });

  it('announces devices bound to and removed from the node on membership/updated', async () => {
    const updates = await subscribe(mqttUrl, '$hw/events/node/edge-1/membership/updated');
    try {
      const yaml = `apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: lamp, namespace: default}
spec: {deviceModelRef: {name: thermometer}, nodeName: edge-1, protocol: {protocolName: user-program}}
`;
      await kubectlOk(server.kubeconfig, ['apply', '-f', '-'], { input: yaml });
      const added = await updates.waitFor((m) => m.payload.includes('"added_devices":[{"id":"default/lamp"'));
      assert.deepEqual(added.json?.['removed_devices'], []);
      await kubectlOk(server.kubeconfig, ['delete', 'device', 'lamp']);
      await updates.waitFor((m) => m.payload.includes('"removed_devices":[{"id":"default/lamp"'));
    } finally {
      await updates.close();
    }
  });

  it("accepts KubeEdge's one-segment topics for namespace default and answers on the same form", async () => {
    const results = await subscribe(mqttUrl, '$hw/events/device/thermo-1/twin/update/result');
    try {
      await publish(
        mqttUrl,
        '$hw/events/device/thermo-1/twin/update',
        '{"event_id":"l1","timestamp":0,"twin":{"temperature":{"actual":{"value":"22.25"}}}}',
      );
      await results.waitFor((m) => m.json?.['event_id'] === 'l1' && m.json['code'] === undefined);
      await eventually(
        () => device(server),
        (d) => reported(d, 'temperature') === '22.25',
        'reported 22.25',
      );
    } finally {
      await results.close();
    }
  });
});

describe('the agent on an external mosquitto broker that starts after it', { skip }, () => {
  let server: ServerProcess;
  let broker: MosquittoBroker;
  let agent: AgentProcess;

  before(async () => {
    server = await startServerProcess();
    await kubectlOk(server.kubeconfig, ['apply', '-f', '-'], {
      input: (await readFile(FIXTURE, 'utf8'))
        .replaceAll('protocolName: virtual', 'protocolName: user-program')
        .replace('nodeName: edge-1', 'nodeName: edge-ext'),
    });
    const joinToken = (await readFile(join(server.dataDir, 'node-token'), 'utf8')).trim();
    const brokerPort = await freePort();
    agent = await startAgentProcess({
      server: server.url,
      token: joinToken,
      nodeName: 'edge-ext',
      dataDir: await mkdtemp(join(tmpdir(), 'kedge-dev-ext-')),
      extraArgs: ['--mqtt-broker', `mqtt://127.0.0.1:${brokerPort}`],
    });
    // The broker comes up after the agent: the agent started anyway and connects when it can.
    await agent.waitForLog(
      (e) => e['msg'] === 'MQTT broker not reachable yet; the agent runs and keeps retrying',
    );
    broker = await startMosquitto(brokerPort);
  });
  after(async () => {
    await agent?.stop();
    await server?.stop();
    await broker?.stop();
    if (agent !== undefined) await removeDir(agent.dataDir);
    if (server !== undefined) await removeDir(server.dataDir);
  });

  it('serves twins on the external broker: reports reach kubectl, desired values reach subscribers', async () => {
    assert.equal(agent.mqtt, broker.url);
    const results = await subscribe(broker.url, `${T}/twin/update/result`);
    const deltas = await subscribe(broker.url, `${T}/twin/update/delta`);
    try {
      // Published until the agent has the device (it arrives through the sync).
      await eventually(
        async () => {
          await publish(
            broker.url,
            `${T}/twin/update`,
            '{"event_id":"x1","twin":{"temperature":{"actual":{"value":"18.5"}}}}',
          );
          return results
            .waitFor((m) => m.json?.['event_id'] === 'x1' && m.json['code'] === undefined, 500)
            .catch(() => undefined);
        },
        (m) => m !== undefined,
        'an accepted update on the external broker',
      );
      await eventually(
        () => device(server),
        (d) => reported(d, 'temperature') === '18.5',
        'reported 18.5',
      );
      await kubectlOk(server.kubeconfig, [
        'patch',
        'device',
        'thermo-1',
        '--type=json',
        '-p',
        '[{"op":"replace","path":"/spec/properties/1/desired/value","value":"42"}]',
      ]);
      await deltas.waitFor((m) => (m.json?.['delta'] as Record<string, string>)?.['setpoint'] === '42');
    } finally {
      await results.close();
      await deltas.close();
    }
  });
});
