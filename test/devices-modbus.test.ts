// A Modbus device end to end: a simulated register server (modbus-serial's ServerTCP, dev dependency), a
// `kedge server` and a `kedge agent` process whose built-in modbus mapper polls it. A register value
// appears in the Device status seen by kubectl; a desired value patched with kubectl is written to the
// register; a desired value outside the model's range is not written.
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ServerTCP } from 'modbus-serial';
import { type AgentProcess, startAgentProcess } from './harness/agent.ts';
import { kubectlOk } from './harness/kubectl.ts';
import { freePort } from './harness/mosquitto.ts';
import { removeDir, type ServerProcess, startServerProcess } from './harness/server.ts';

const holding: number[] = new Array(16).fill(0);

async function startRegisterServer(): Promise<{ port: number; close(): Promise<void> }> {
  const port = await freePort();
  const server = new ServerTCP(
    {
      getHoldingRegister: (addr: number) => holding[addr] ?? 0,
      getInputRegister: (addr: number) => holding[addr] ?? 0,
      getCoil: () => false,
      getDiscreteInput: () => false,
      setRegister: (addr: number, value: number) => {
        holding[addr] = value;
      },
      setCoil: () => {},
    },
    { host: '127.0.0.1', port, unitID: 1 },
  );
  server.on('socketError', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('initialized', () => resolve());
    server.once('serverError', reject);
  });
  return { port, close: () => new Promise<void>((ok) => server.close(() => ok())) };
}

const manifest = (port: number): string => `
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: boiler-model, namespace: default}
spec:
  protocol: modbus
  properties:
    - {name: temperature, type: INT, accessMode: ReadOnly, unit: celsius}
    - {name: setpoint, type: INT, accessMode: ReadWrite, minimum: "0", maximum: "90"}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: boiler, namespace: default}
spec:
  deviceModelRef: {name: boiler-model}
  nodeName: edge-mb
  protocol:
    protocolName: modbus
    configData: {ip: 127.0.0.1, port: ${port}, slaveID: 1}
  properties:
    - name: temperature
      collectCycle: 200
      visitors: {protocolName: modbus, configData: {register: HoldingRegister, offset: 0, limit: 1}}
    - name: setpoint
      collectCycle: 200
      desired: {value: "40"}
      visitors: {protocolName: modbus, configData: {register: HoldingRegister, offset: 1, limit: 1}}
`;

interface DeviceJson {
  status?: { state?: string; twins?: Array<{ propertyName: string; reported?: { value: string } }> };
}

describe('a Modbus device through kubectl', () => {
  let server: ServerProcess;
  let agent: AgentProcess;
  let regs: { port: number; close(): Promise<void> };

  const device = async (): Promise<DeviceJson> =>
    JSON.parse(await kubectlOk(server.kubeconfig, ['get', 'device', 'boiler', '-o', 'json'])) as DeviceJson;
  const reported = (d: DeviceJson, p: string) =>
    d.status?.twins?.find((t) => t.propertyName === p)?.reported?.value;
  async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
    for (let i = 0; i < 300; i++) {
      if (await check()) return;
      await sleep(100);
    }
    throw new Error(
      `Timed out waiting for ${what}; registers ${holding.slice(0, 2).join(',')}; ${JSON.stringify((await device()).status)}`,
    );
  }

  before(async () => {
    holding[0] = 57;
    regs = await startRegisterServer();
    server = await startServerProcess();
    await kubectlOk(server.kubeconfig, ['apply', '-f', '-'], { input: manifest(regs.port) });
    agent = await startAgentProcess({
      server: server.url,
      token: (await readFile(join(server.dataDir, 'node-token'), 'utf8')).trim(),
      nodeName: 'edge-mb',
      dataDir: await mkdtemp(join(tmpdir(), 'kedge-dev-modbus-')),
    });
  });
  after(async () => {
    await agent?.stop();
    await server?.stop();
    await regs?.close();
    if (agent !== undefined) await removeDir(agent.dataDir);
    if (server !== undefined) await removeDir(server.dataDir);
  });

  it('shows the register value in the Device status and the device online', async () => {
    await until(async () => reported(await device(), 'temperature') === '57', 'temperature 57');
    holding[0] = 61;
    await until(async () => reported(await device(), 'temperature') === '61', 'temperature 61');
    assert.equal((await device()).status?.state, 'online');
  });

  it('writes the desired value to the register, and a patched one too', async () => {
    await until(() => holding[1] === 40, 'register 1 = 40 (the desired value at start)');
    await kubectlOk(server.kubeconfig, [
      'patch',
      'device',
      'boiler',
      '--type=json',
      '-p',
      '[{"op":"replace","path":"/spec/properties/1/desired/value","value":"72"}]',
    ]);
    await until(() => holding[1] === 72, 'register 1 = 72');
    await until(async () => reported(await device(), 'setpoint') === '72', 'setpoint reported 72');
  });

  it('does not write a desired value outside the model range', async () => {
    await kubectlOk(server.kubeconfig, [
      'patch',
      'device',
      'boiler',
      '--type=json',
      '-p',
      '[{"op":"replace","path":"/spec/properties/1/desired/value","value":"500"}]',
    ]);
    await agent.waitForLog((e) => e['msg'] === 'desired value refused; not written' && e['value'] === '500');
    assert.equal(holding[1], 72);
  });
});
