// The device CRDs as kubectl users meet them: `kedge server` installs DeviceModel and Device at start,
// KubeEdge manifests apply unchanged, `kubectl get devices` prints node/model/protocol/state/age, and
// bad objects are refused with a clear error and store nothing.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { kubectl, kubectlOk } from './harness/kubectl.ts';
import { removeDir, type ServerProcess, startServerProcess } from './harness/server.ts';

const FIXTURE = new URL('./fixtures/devices.yaml', import.meta.url).pathname;

describe('device CRDs through kubectl', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess();
  });
  after(async () => {
    await server.stop();
    await removeDir(server.dataDir);
  });

  it('serves devices.kubeedge.io/v1beta1 DeviceModel and Device from the start', async () => {
    const out = await kubectlOk(server.kubeconfig, ['api-resources', '--api-group=devices.kubeedge.io']);
    assert.match(out, /devicemodels\s+dm\s+devices\.kubeedge\.io\/v1beta1\s+true\s+DeviceModel/);
    assert.match(out, /devices\s+dev\s+devices\.kubeedge\.io\/v1beta1\s+true\s+Device/);
  });

  it('applies a KubeEdge manifest unchanged and prints useful columns', async () => {
    const yaml = await readFile(FIXTURE, 'utf8');
    const applied = await kubectlOk(server.kubeconfig, ['apply', '-f', '-'], { input: yaml });
    assert.match(applied, /devicemodel\.devices\.kubeedge\.io\/thermometer created/);
    assert.match(applied, /device\.devices\.kubeedge\.io\/thermo-1 created/);
    const table = await kubectlOk(server.kubeconfig, ['get', 'devices']);
    const [header, row] = table.trim().split('\n');
    assert.match(header ?? '', /^NAME\s+NODE\s+MODEL\s+PROTOCOL\s+STATE\s+AGE$/);
    assert.match(row ?? '', /^thermo-1\s+edge-1\s+thermometer\s+virtual\s+\d+s$/);
    const dev = JSON.parse(
      await kubectlOk(server.kubeconfig, ['get', 'device', 'thermo-1', '-o', 'json']),
    ) as {
      spec: { properties: Array<{ name: string; desired?: { value: string } }> };
    };
    assert.equal(dev.spec.properties.find((p) => p.name === 'setpoint')?.desired?.value, '21');
  });

  const bad: Array<[string, string, RegExp]> = [
    ['a device without deviceModelRef', 'spec: {nodeName: edge-1}', /spec\.deviceModelRef: Required value/],
    [
      'a desired value that is not of its declared type',
      'spec: {deviceModelRef: {name: m}, properties: [{name: p, desired: {value: "warm", metadata: {type: int}}}]}',
      /spec\.properties\[0\]\.desired\.value: "warm" is not a number/,
    ],
    [
      'two properties with one name',
      'spec: {deviceModelRef: {name: m}, properties: [{name: p}, {name: p}]}',
      /Duplicate value/,
    ],
    [
      'a method naming a property the device does not have',
      'spec: {deviceModelRef: {name: m}, properties: [{name: p}], methods: [{name: go, propertyNames: [q]}]}',
      /spec\.methods\[0\]\.propertyNames\[0\]: "q" is not a property of the device/,
    ],
    ['a bad node name', 'spec: {deviceModelRef: {name: m}, nodeName: "Edge_1"}', /is not a valid node name/],
  ];
  for (const [what, spec, message] of bad) {
    it(`refuses ${what} and stores nothing`, async () => {
      const yaml = `apiVersion: devices.kubeedge.io/v1beta1\nkind: Device\nmetadata: {name: bad-dev, namespace: default}\n${spec}\n`;
      const r = await kubectl(server.kubeconfig, ['create', '-f', '-'], { input: yaml });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /is invalid/);
      assert.match(r.stderr, message);
      const get = await kubectl(server.kubeconfig, ['get', 'device', 'bad-dev']);
      assert.match(get.stderr, /NotFound/);
    });
  }

  it('refuses a model whose range is not ordered or not numeric', async () => {
    const yaml = `apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: bad-model, namespace: default}
spec:
  properties:
    - {name: a, type: INT, minimum: "10", maximum: "5"}
    - {name: b, type: FLOAT, minimum: "cold"}
    - {name: c, type: STRING, maximum: "3"}
    - {name: d, type: COLOUR}
`;
    const r = await kubectl(server.kubeconfig, ['create', '-f', '-'], { input: yaml });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /spec\.properties\[3\]\.type: Unsupported value: "COLOUR"/);
    const r2 = await kubectl(server.kubeconfig, ['create', '-f', '-'], {
      input: yaml.replace('    - {name: d, type: COLOUR}\n', ''),
    });
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /minimum 10 is above maximum 5/);
    assert.match(r2.stderr, /"cold" is not a number/);
    assert.match(r2.stderr, /a STRING property has no maximum/);
    assert.match((await kubectl(server.kubeconfig, ['get', 'dm', 'bad-model'])).stderr, /NotFound/);
  });
});
