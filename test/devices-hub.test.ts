// The cloud side of device twins, in process: the hub writes a DeviceStatus only for a device bound to the
// reporting node and only when its edgeVersion is above the status's (an older report never overwrites a
// newer one); the node authorizer lets a node read only its devices and their models and write only
// their status; the relevance graph indexes devices by node and model.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeviceResources } from '../src/api/devices.ts';
import type { KubeObject } from '../src/api/meta.ts';
import { installDeviceCrds } from '../src/cli/server.ts';
import { InformerFactory } from '../src/client/informer.ts';
import { createHub, type Hub } from '../src/hub/hub.ts';
import { nodeAuthorizer } from '../src/hub/node-authorizer.ts';
import { silentLogger } from '../src/lib/log.ts';
import type { StatusItem } from '../src/protocol/messages.ts';
import { startTestCluster, type TestCluster } from './harness/cluster.ts';

const logger = silentLogger();
const model: KubeObject = {
  apiVersion: 'devices.kubeedge.io/v1beta1',
  kind: 'DeviceModel',
  metadata: { name: 'thermometer', namespace: 'default' },
  spec: { properties: [{ name: 'temperature', type: 'FLOAT', accessMode: 'ReadOnly' }] },
};
const dev = (name: string, node: string): KubeObject => ({
  apiVersion: 'devices.kubeedge.io/v1beta1',
  kind: 'Device',
  metadata: { name, namespace: 'default' },
  spec: { deviceModelRef: { name: 'thermometer' }, nodeName: node, properties: [{ name: 'temperature' }] },
});
const report = (
  name: string,
  edgeVersion: number,
  value: string,
): Extract<StatusItem, { kind: 'DeviceStatus' }> => ({
  kind: 'DeviceStatus',
  namespace: 'default',
  name,
  status: {
    state: 'online',
    edgeVersion,
    twins: [{ propertyName: 'temperature', reported: { value, metadata: { version: String(edgeVersion) } } }],
  },
});

describe('device status and authorization on the hub', () => {
  let tc: TestCluster;
  let informers: InformerFactory;
  let hub: Hub;
  let seq = 0;
  const write = (node: string, ...items: StatusItem[]) =>
    hub.writeStatus(node, { type: 'status', seq: ++seq, items });
  const reported = async (name: string): Promise<unknown> => {
    const d = await tc.cluster.get(DeviceResources.devices, 'default', name);
    return (d['status'] as { twins?: Array<{ reported?: { value: string } }> } | undefined)?.twins?.[0]
      ?.reported?.value;
  };

  before(async () => {
    tc = await startTestCluster();
    await installDeviceCrds(tc.cluster, tc.api, logger);
    await tc.cluster.create(DeviceResources.devicemodels, 'default', model);
    await tc.cluster.create(DeviceResources.devices, 'default', dev('t1', 'edge-1'));
    await tc.cluster.create(DeviceResources.devices, 'default', dev('t2', 'edge-2'));
    informers = new InformerFactory(tc.cluster, logger);
    hub = createHub({ cluster: tc.cluster, informers, logger, devices: true });
    informers.start();
    await informers.waitForSync();
  });
  after(async () => {
    await hub.close();
    await informers.stop();
    await tc.close();
  });

  it('indexes devices by node and by model', () => {
    assert.deepEqual(
      hub.graph.devicesOn('edge-1').map((d) => d.metadata.name),
      ['t1'],
    );
    assert.deepEqual(
      hub.graph
        .devicesReferencing('devices.kubeedge.io/devicemodels/default/thermometer')
        .map((d) => d.metadata.name)
        .sort(),
      ['t1', 't2'],
    );
  });

  it('writes a newer report and ignores an older or repeated one', async () => {
    assert.deepEqual((await write('edge-1', report('t1', 5, '21.0'))).forbidden, []);
    assert.equal(await reported('t1'), '21.0');
    await write('edge-1', report('t1', 3, '19.0'));
    await write('edge-1', report('t1', 5, '19.5'));
    assert.equal(await reported('t1'), '21.0');
    await write('edge-1', report('t1', 6, '22.0'));
    assert.equal(await reported('t1'), '22.0');
  });

  it("refuses a report for another node's device, and one without a version", async () => {
    const r = await write('edge-1', report('t2', 9, '99'));
    assert.match(
      r.forbidden[0] ?? '',
      /cannot write the status of device default\/t2, which is not bound to it/,
    );
    assert.equal(await reported('t2'), undefined);
    const bad = await write('edge-1', { ...report('t1', 7, '1'), status: { state: 'online' } });
    assert.match(bad.forbidden[0] ?? '', /no positive edgeVersion/);
    assert.equal(await reported('t1'), '22.0');
  });

  it('drops a report the schema refuses, and one for a deleted device, keeping the session going', async () => {
    const r = await write('edge-1', { ...report('t1', 8, 'x'), status: { state: 'sleepy', edgeVersion: 8 } });
    assert.deepEqual(r.forbidden, []);
    assert.equal(await reported('t1'), '22.0');
    assert.deepEqual((await write('edge-1', report('gone', 1, '1'))).forbidden, []);
  });

  it('lets a node read only its devices and their models, and write only their status', async () => {
    const authorize = nodeAuthorizer({ graph: hub.graph });
    const ask = async (node: string, verb: string, resource: string, name: string, subresource = '') =>
      (
        await authorize({
          user: { name: `system:node:${node}`, groups: ['system:nodes'] },
          verb,
          resourceRequest: true,
          group: 'devices.kubeedge.io',
          version: 'v1beta1',
          resource,
          subresource,
          namespace: 'default',
          name,
          path: '',
        })
      )?.allowed === true;
    assert.equal(await ask('edge-1', 'get', 'devices', 't1'), true);
    assert.equal(await ask('edge-1', 'patch', 'devices', 't1', 'status'), true);
    assert.equal(await ask('edge-1', 'update', 'devices', 't1'), false);
    assert.equal(await ask('edge-1', 'get', 'devices', 't2'), false);
    assert.equal(await ask('edge-1', 'update', 'devices', 't2', 'status'), false);
    assert.equal(await ask('edge-1', 'get', 'devicemodels', 'thermometer'), true);
    assert.equal(await ask('edge-3', 'get', 'devicemodels', 'thermometer'), false);
    assert.equal(await ask('edge-1', 'delete', 'devicemodels', 'thermometer'), false);
  });
});
