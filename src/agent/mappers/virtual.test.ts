import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { isKedgeError } from '../../lib/errors.ts';
import { builtinMappers, registerMapper } from './index.ts';
import { propertyMaker, RecordingSink } from './testing.ts';
import type { Mapper, MapperDevice, MapperProperty, MapperSession } from './types.ts';
import { seededRandom, virtualMapper } from './virtual.ts';

const prop = propertyMaker(5);

function device(
  name: string,
  properties: MapperProperty[],
  config: Record<string, unknown> = {},
): MapperDevice {
  return { namespace: 'default', name, protocol: 'virtual', config, properties };
}

const sessions: MapperSession[] = [];
after(async () => {
  for (const s of sessions) await s.close();
});

async function open(dev: MapperDevice) {
  const sink = new RecordingSink();
  const session = await virtualMapper.open(dev, sink);
  sessions.push(session);
  return { sink, session };
}

const sensors = [
  prop('temp', 'float', { generator: 'sine', min: 10, max: 30, period: 200, noise: 0.5 }),
  prop('humidity', 'float', { generator: 'randomWalk', min: 20, max: 80, step: 5 }),
  prop('count', 'int', { generator: 'counter', min: 0, max: 4, step: 1 }),
  prop('door', 'boolean', { generator: 'toggle' }),
  prop('model', 'string', { generator: 'constant', value: 'TH-100' }),
];

async function firstValues(dev: MapperDevice, n: number): Promise<Record<string, string[]>> {
  const { sink, session } = await open(dev);
  await sink.waitFor(`${n} readings of each`, (s) =>
    dev.properties.every((p) => s.values(p.name).length >= n),
  );
  await session.close();
  return Object.fromEntries(dev.properties.map((p) => [p.name, sink.values(p.name).slice(0, n)]));
}

describe('virtual mapper', () => {
  it('reports the same sequence for the same seed, another for another seed', async () => {
    const a = await firstValues(device('a', sensors, { seed: 7 }), 12);
    const b = await firstValues(device('b', sensors, { seed: 7 }), 12);
    const c = await firstValues(device('c', sensors, { seed: 8 }), 12);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a['humidity'], c['humidity']);
    assert.notDeepEqual(a['temp'], c['temp']);
    assert.deepEqual(a['count'], c['count']); // no randomness in a counter
  });

  it('generates values of each kind within min and max', async () => {
    const v = await firstValues(device('gen', sensors, { seed: 1 }), 12);
    for (const t of v['temp']!.map(Number)) assert.ok(t >= 10 && t <= 30, `temp ${t}`);
    for (const h of v['humidity']!.map(Number)) assert.ok(h >= 20 && h <= 80, `humidity ${h}`);
    assert.equal(new Set(v['humidity']).size > 1, true);
    assert.deepEqual(v['count'], ['0', '1', '2', '3', '4', '0', '1', '2', '3', '4', '0', '1']);
    assert.deepEqual(v['door']!.slice(0, 4), ['false', 'true', 'false', 'true']);
    assert.deepEqual(new Set(v['model']), new Set(['TH-100']));
    // a sine rises from the middle first
    assert.ok(Number(v['temp']![2]) > 20.5, `temp ${v['temp']}`);
  });

  it('holds the desired value of a ReadWrite property and follows each write at once', async () => {
    const { sink, session } = await open(
      device('thermostat', [
        prop('target', 'float', {}, { accessMode: 'ReadWrite', desired: '21.5', minimum: 5, maximum: 35 }),
        prop('room', 'float', { generator: 'follow', property: 'target', value: 15, rate: 0.5 }),
        prop('heating', 'boolean', {}, { accessMode: 'ReadWrite' }),
      ]),
    );
    await sink.waitFor('the desired value', (s) => s.last('target') === '21.5');
    await session.write('target', '30');
    assert.equal(sink.last('target'), '30'); // reported by the write itself
    await session.write('heating', 'on');
    assert.equal(sink.last('heating'), 'true');
    await sink.waitFor('the room to approach the target', (s) => Math.abs(Number(s.last('room')) - 30) < 0.5);
    assert.deepEqual(sink.errors, []);
  });

  it('refuses bad writes clearly and keeps the held value', async () => {
    const { sink, session } = await open(
      device('rw', [
        prop('target', 'int', {}, { accessMode: 'ReadWrite', desired: '20', minimum: 5, maximum: 35 }),
        prop('temp', 'float', { generator: 'sine' }),
      ]),
    );
    await sink.waitFor('the desired value', (s) => s.last('target') === '20');
    const refused = (property: string, value: string, message: RegExp) =>
      assert.rejects(session.write(property, value), (err: unknown) => {
        assert.ok(isKedgeError(err, 'KEDGE_MAPPER_WRITE_REFUSED'), String(err));
        assert.match((err as Error).message, message);
        return true;
      });
    await refused('target', '40', /at most 35, got 40/);
    await refused('target', '20.5', /not an integer/);
    await refused('target', 'warm', /not a number/);
    await refused('temp', '1', /temp is ReadOnly/);
    await refused('nope', '1', /has no property nope/);
    await sink.waitFor('another reading', (s) => s.values('target').length >= 3);
    assert.deepEqual(new Set(sink.values('target')), new Set(['20']));
  });

  it('goes offline and back on its simulated outages, applying a write made while offline when back', async () => {
    const { sink, session } = await open(
      device(
        'flaky',
        [
          prop('level', 'int', {}, { accessMode: 'ReadWrite', desired: '1' }),
          prop('n', 'int', { generator: 'counter' }),
        ],
        { offlineEvery: 60, offlineFor: 80, seed: 3 },
      ),
    );
    await sink.waitFor('an outage', (s) => s.lastState === 'offline');
    const readings = sink.readings.length;
    await assert.rejects(session.write('level', '9'), (err: unknown) =>
      isKedgeError(err, 'KEDGE_MAPPER_DEVICE_OFFLINE'),
    );
    assert.equal(sink.readings.length, readings, 'no readings while offline');
    await sink.waitFor('recovery', (s) => s.lastState === 'online' && s.states.length >= 3);
    assert.deepEqual(sink.states.slice(0, 3), ['online', 'offline', 'online']);
    await sink.waitFor('the write applied', (s) => s.last('level') === '9');
    await sink.waitFor('a second outage', (s) => s.states.length >= 4);
    assert.equal(sink.states[3], 'offline');
  });

  it('keeps running when its sink throws', async () => {
    const sink = new RecordingSink();
    let throws = 3;
    const reported = sink.reported.bind(sink);
    sink.reported = (property, value, at) => {
      if (throws-- > 0) throw new Error('sink is broken');
      reported(property, value, at);
    };
    const session = await virtualMapper.open(
      device('t', [prop('n', 'int', { generator: 'counter' })], { seed: 1 }),
      sink,
    );
    sessions.push(session);
    await sink.waitFor('readings after the sink recovers', (s) => s.values('n').length >= 2);
    assert.deepEqual(sink.values('n').slice(0, 2), ['3', '4']);
    assert.match(sink.errors[0]?.message ?? '', /sink is broken/);
  });

  it('reports every configuration problem at once', () => {
    const problems = virtualMapper.validate(
      device(
        'bad',
        [
          prop('a', 'float', { generator: 'square' }),
          prop('b', 'string', { generator: 'sine' }),
          prop('c', 'float', { generator: 'randomWalk', min: 10, max: 0 }),
          prop('d', 'float', { generator: 'follow', property: 'x' }),
          prop('e', 'int', { value: 'seven' }),
        ],
        { seed: -1, offlineEvery: 'often' },
      ),
    );
    assert.deepEqual(problems, [
      'configData.seed must be an integer from 0 to 4294967295, got -1',
      'configData.offlineEvery must be a number of at least 0, got "often"',
      'property a: visitor.generator must be one of constant, sine, randomWalk, counter, toggle, follow, got "square"',
      'property b: visitor.generator sine needs an int, float or double property, not string',
      'property c: visitor: min 10 is greater than max 0',
      'property d: visitor.property must name another int, float or double property, got "x"',
      'property e: visitor.value: Property e is int; "seven" is not a number',
    ]);
  });

  it('draws well-spread numbers from a seed', () => {
    const next = seededRandom(42);
    const xs = Array.from({ length: 10_000 }, next);
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`);
    assert.deepEqual(Array.from({ length: 5 }, seededRandom(42)), xs.slice(0, 5));
  });
});

describe('mapper registry', () => {
  const mine: Mapper = {
    protocol: 'my-proto',
    validate: () => [],
    open: async () => ({ write: async () => {}, close: async () => {} }),
  };

  it('holds the built-in mappers and adds a user mapper', () => {
    const registry = builtinMappers();
    assert.deepEqual([...registry.keys()], ['modbus', 'virtual']);
    registerMapper(registry, mine);
    assert.equal(registry.get('my-proto'), mine);
  });

  it('refuses a second mapper for a protocol unless asked to replace it, and malformed mappers', () => {
    const registry = builtinMappers();
    assert.throws(
      () => registerMapper(registry, { ...mine, protocol: 'modbus' }),
      (err: unknown) =>
        isKedgeError(err, 'KEDGE_MAPPER_DUPLICATE') && /modbus is already registered/.test(err.message),
    );
    registerMapper(registry, { ...mine, protocol: 'modbus' }, { replace: true });
    assert.equal(registry.get('modbus')?.validate, mine.validate);
    assert.throws(
      () => registerMapper(registry, { ...mine, protocol: 'has space' }),
      (err: unknown) => isKedgeError(err, 'KEDGE_MAPPER_INVALID'),
    );
    assert.throws(
      () => registerMapper(registry, { protocol: 'x' } as unknown as Mapper),
      /validate and open/,
    );
  });
});
