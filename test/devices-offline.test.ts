// Device twins across a network cut (through the fault proxy) and an agent restart while offline: values
// a device reports while the node is away are kept in the agent's store and reach the Device status when
// it returns (newest wins, every property arrives); a desired value set with kubectl while the node is
// away reaches the device (twin/update/delta) when it returns.
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AgentProcess, startAgentProcess } from './harness/agent.ts';
import { FaultProxy } from './harness/fault-proxy.ts';
import { kubectlOk } from './harness/kubectl.ts';
import { mosquittoMissing, publish, subscribe } from './harness/mosquitto.ts';
import { removeDir, type ServerProcess, startServerProcess } from './harness/server.ts';

const FIXTURE = new URL('./fixtures/devices.yaml', import.meta.url).pathname;
const T = '$hw/events/device/default/thermo-1';
const skip = mosquittoMissing();

interface Twin {
  propertyName: string;
  reported?: { value: string };
  observedDesired?: { value: string };
}
interface DeviceJson {
  status?: { edgeVersion?: number; twins?: Twin[] };
}

describe('device twins offline', { skip }, () => {
  let server: ServerProcess;
  let proxy: FaultProxy;
  let agent: AgentProcess;
  let agentDir: string;
  let token: string;

  const device = async (): Promise<DeviceJson> =>
    JSON.parse(await kubectlOk(server.kubeconfig, ['get', 'device', 'thermo-1', '-o', 'json'])) as DeviceJson;
  const twin = (d: DeviceJson, p: string): Twin | undefined =>
    d.status?.twins?.find((t) => t.propertyName === p);
  const eventually = async (check: (d: DeviceJson) => boolean, what: string): Promise<DeviceJson> => {
    let last: DeviceJson | undefined;
    for (let i = 0; i < 300; i++) {
      last = await device();
      if (check(last)) return last;
      await sleep(100);
    }
    throw new Error(`Timed out waiting for ${what}: ${JSON.stringify(last?.status)}`);
  };
  const startAgent = async (): Promise<AgentProcess> =>
    startAgentProcess({ server: proxy.url, token, nodeName: 'edge-1', dataDir: agentDir });
  /** Publishes a reported value and waits for the agent's accepting result. */
  const report = async (url: string, prop: string, value: string, id: string): Promise<void> => {
    const results = await subscribe(url, `${T}/twin/update/result`);
    try {
      for (let i = 0; ; i++) {
        await publish(
          url,
          `${T}/twin/update`,
          JSON.stringify({ event_id: `${id}-${i}`, twin: { [prop]: { actual: { value } } } }),
        );
        const r = await results.waitFor((m) => m.json?.['event_id'] === `${id}-${i}`);
        if (r.json?.['code'] === undefined) return;
        // 404: the device has not reached the node yet.
        if (r.json['code'] !== 404 || i > 100) throw new Error(`update refused: ${r.payload}`);
        await sleep(100);
      }
    } finally {
      await results.close();
    }
  };

  before(async () => {
    server = await startServerProcess();
    await kubectlOk(server.kubeconfig, ['apply', '-f', '-'], {
      input: (await readFile(FIXTURE, 'utf8')).replaceAll(
        'protocolName: virtual',
        'protocolName: user-program',
      ),
    });
    token = (await readFile(join(server.dataDir, 'node-token'), 'utf8')).trim();
    proxy = await FaultProxy.start({ targetPort: Number(new URL(server.url).port) });
    agentDir = await mkdtemp(join(tmpdir(), 'kedge-dev-offline-'));
    agent = await startAgent();
  });
  after(async () => {
    await agent?.stop();
    await proxy?.close();
    await server?.stop();
    if (agentDir !== undefined) await removeDir(agentDir);
    if (server !== undefined) await removeDir(server.dataDir);
  });

  it('keeps reports and desired values across a cut and an agent restart, and delivers them on return', async () => {
    await report(agent.mqtt!, 'temperature', '20.0', 'online');
    await eventually((d) => twin(d, 'temperature')?.reported?.value === '20.0', 'the first report');

    // Away: established connections cut, new ones accepted but carry nothing.
    proxy.blackhole();
    proxy.cut();
    await kubectlOk(server.kubeconfig, [
      'patch',
      'device',
      'thermo-1',
      '--type=json',
      '-p',
      '[{"op":"replace","path":"/spec/properties/1/desired/value","value":"55"}]',
    ]);
    for (const v of ['30.1', '30.2', '30.3']) await report(agent.mqtt!, 'temperature', v, `away-${v}`);

    // The agent restarts while still away: its store keeps the twin and the pending report.
    assert.equal(await agent.stop(), 0);
    agent = await startAgent();
    await report(agent.mqtt!, 'temperature', '30.4', 'away-after-restart');
    await report(agent.mqtt!, 'setpoint', '50', 'away-setpoint');
    const away = await device();
    assert.equal(twin(away, 'temperature')?.reported?.value, '20.0', 'nothing reached the cloud while away');
    const versionAway = away.status?.edgeVersion ?? 0;

    const deltas = await subscribe(agent.mqtt!, `${T}/twin/update/delta`);
    try {
      proxy.lift();
      // Newest wins and every property arrives.
      const back = await eventually(
        (d) =>
          twin(d, 'temperature')?.reported?.value === '30.4' && twin(d, 'setpoint')?.reported?.value === '50',
        'the reports made while away',
      );
      assert.ok((back.status?.edgeVersion ?? 0) > versionAway);
      // The desired value set while away reaches the device.
      await deltas.waitFor(
        (m) => (m.json?.['delta'] as Record<string, string> | undefined)?.['setpoint'] === '55',
        60_000,
      );
      await eventually((d) => twin(d, 'setpoint')?.observedDesired?.value === '55', 'observedDesired 55');
    } finally {
      await deltas.close();
    }
  });
});
