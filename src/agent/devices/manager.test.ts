// The device manager and twin store on a real (in-memory) agent store, with a test double mapper: what the
// mapper reads becomes the twin and a queued DeviceStatus; desired values reach `write` only for ReadWrite
// properties within the model's range; a spec change reopens the session; a deleted device closes it.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { KubeObject } from '../../api/meta.ts';
import { silentLogger } from '../../lib/log.ts';
import type { StatusItem, SyncItem } from '../../protocol/messages.ts';
import { LocalStore } from '../local-store.ts';
import type { Mapper, MapperDevice, MapperSink } from '../mappers/types.ts';
import { Outbox } from '../outbox.ts';
import { DeviceManager } from './manager.ts';
import { TwinManager } from './twins.ts';

class DoubleMapper implements Mapper {
  readonly protocol = 'double';
  readonly opened: MapperDevice[] = [];
  readonly writes: Array<[string, string]> = [];
  closed = 0;
  sink: MapperSink | undefined;
  validate(): string[] {
    return [];
  }
  async open(device: MapperDevice, sink: MapperSink) {
    this.opened.push(device);
    this.sink = sink;
    return {
      write: async (p: string, v: string) => {
        this.writes.push([p, v]);
      },
      close: async () => {
        this.closed++;
      },
    };
  }
}

const model: KubeObject = {
  apiVersion: 'devices.kubeedge.io/v1beta1',
  kind: 'DeviceModel',
  metadata: { name: 'm', namespace: 'default' },
  spec: {
    properties: [
      { name: 'temp', type: 'FLOAT', accessMode: 'ReadOnly' },
      { name: 'target', type: 'INT', accessMode: 'ReadWrite', minimum: '0', maximum: '40' },
    ],
  },
};
const device = (target: string, protocol = 'double', host = 'a'): KubeObject => ({
  apiVersion: 'devices.kubeedge.io/v1beta1',
  kind: 'Device',
  metadata: { name: 'd', namespace: 'default' },
  spec: {
    deviceModelRef: { name: 'm' },
    nodeName: 'n1',
    protocol: { protocolName: protocol, configData: { host } },
    properties: [
      { name: 'temp', collectCycle: 500, visitors: { configData: { register: 1 } } },
      { name: 'target', desired: { value: target } },
    ],
  },
});
const DKEY = 'devices.kubeedge.io/devices/default/d';
const MKEY = 'devices.kubeedge.io/devicemodels/default/m';

describe('device manager with a double mapper', () => {
  let store: LocalStore;
  let outbox: Outbox;
  let twins: TwinManager;
  let manager: DeviceManager;
  let mapper: DoubleMapper;
  let rev = 0;
  const apply = (...items: Array<[string, KubeObject | null]>): void => {
    rev++;
    store.applyBatch(
      rev,
      items.map(
        ([key, object]): SyncItem =>
          object === null ? { key, revision: rev, deleted: true } : { key, revision: rev, object },
      ),
    );
  };
  const settle = () => new Promise((r) => setImmediate(r));
  const lastStatus = (): Record<string, unknown> | undefined => {
    const items = outbox.pending(0, 1000).map((p) => p.item);
    const s = items
      .filter((i): i is Extract<StatusItem, { kind: 'DeviceStatus' }> => i.kind === 'DeviceStatus')
      .at(-1);
    return s?.status;
  };

  beforeEach(() => {
    store = new LocalStore(':memory:');
    outbox = new Outbox(store);
    twins = new TwinManager({ nodeName: 'n1', store, outbox, logger: silentLogger() });
    mapper = new DoubleMapper();
    manager = new DeviceManager({ twins, mappers: new Map([['double', mapper]]), logger: silentLogger() });
    apply([MKEY, model], [DKEY, device('20')]);
    twins.start();
    manager.start();
  });
  afterEach(async () => {
    await manager.stop();
    twins.stop();
    store.close();
  });

  it('opens the device with model types, access modes and desired values', async () => {
    await settle();
    assert.equal(mapper.opened.length, 1);
    const d = mapper.opened[0]!;
    assert.deepEqual(
      d.properties.map((p) => [p.name, p.type, p.accessMode, p.desired]),
      [
        ['temp', 'float', 'ReadOnly', undefined],
        ['target', 'int', 'ReadWrite', '20'],
      ],
    );
    assert.equal(d.properties[0]?.collectCycleMs, 500);
    assert.deepEqual(d.config, { host: 'a' });
  });

  it('turns readings and state into the twin and a queued DeviceStatus', async () => {
    await settle();
    mapper.sink!.reported('temp', '21.5', new Date(1000));
    mapper.sink!.state('online', new Date(1000));
    assert.equal(twins.twin('default', 'd')?.twin['temp']?.actual?.value, '21.5');
    const status = lastStatus() as {
      state: string;
      edgeVersion: number;
      twins: Array<{ propertyName: string; reported?: { value: string } }>;
    };
    assert.equal(status.state, 'online');
    assert.equal(status.twins.find((t) => t.propertyName === 'temp')?.reported?.value, '21.5');
    const v = status.edgeVersion;
    mapper.sink!.reported('temp', 'not a number', new Date(2000));
    assert.equal(
      twins.twin('default', 'd')?.twin['temp']?.actual?.value,
      '21.5',
      'a bad reading changes nothing',
    );
    assert.equal((lastStatus() as { edgeVersion: number }).edgeVersion, v);
  });

  it('writes desired values within range to ReadWrite properties only', async () => {
    await settle();
    apply([DKEY, device('25')]);
    apply([DKEY, device('500')]);
    await settle();
    await settle();
    assert.deepEqual(mapper.writes, [['target', '25']]);
    assert.equal(mapper.opened.length, 1, 'a desired change does not reopen');
  });

  it('reopens on a spec change and closes when the device goes', async () => {
    await settle();
    apply([DKEY, device('20', 'double', 'b')]);
    await settle();
    assert.equal(mapper.opened.length, 2);
    assert.deepEqual(mapper.opened[1]?.config, { host: 'b' });
    assert.equal(mapper.closed, 1);
    apply([DKEY, null]);
    await settle();
    await settle();
    assert.equal(mapper.closed, 2);
    assert.deepEqual(manager.sessions(), []);
    assert.equal(twins.twin('default', 'd'), undefined);
  });

  it('starts a twin afresh when its stored document cannot be read', async () => {
    await manager.stop();
    twins.stop();
    store.twinPut('default/d', '{not json');
    const again = new TwinManager({ nodeName: 'n1', store, outbox, logger: silentLogger() });
    again.start();
    assert.equal(again.twin('default', 'd')?.state, 'unknown');
    assert.equal(again.twin('default', 'd')?.twin['target']?.expected?.value, '20');
    JSON.parse(store.twinGet('default/d') ?? '');
    again.stop();
  });

  it('leaves a device whose protocol no mapper serves to MQTT', async () => {
    apply([DKEY, device('20', 'someone-elses')]);
    await settle();
    await settle();
    assert.deepEqual(manager.sessions(), []);
    assert.ok(twins.twin('default', 'd'), 'still a twin');
  });
});
