// The modbus mapper against a real Modbus TCP server: modbus-serial's ServerTCP (a dev dependency, only
// ever used by tests) over a backing memory the test reads and writes directly.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { ServerTCP } from 'modbus-serial';
import { isKedgeError } from '../../lib/errors.ts';
import { builtinMappers, openDevice } from './index.ts';
import {
  decodePoint,
  encodePoint,
  modbusMapper,
  planBatches,
  resolveModbusDevice,
  resolveModbusPoint,
} from './modbus.ts';
import { propertyMaker, RecordingSink } from './testing.ts';
import type { MapperDevice, MapperProperty, MapperSession } from './types.ts';

const SIZE = 100;

class Memory {
  coils: boolean[] = new Array(SIZE).fill(false);
  discrete: boolean[] = new Array(SIZE).fill(false);
  holding: number[] = new Array(SIZE).fill(0);
  input: number[] = new Array(SIZE).fill(0);
  /** Addresses whose writes the device refuses with exception 4 (server device failure). */
  readonly refuseWrites = new Set<number>();

  /** Puts big-endian bytes into holding registers starting at `address`. */
  putBytes(address: number, bytes: Buffer): void {
    for (let i = 0; i < bytes.length; i += 2) this.holding[address + i / 2] = bytes.readUInt16BE(i);
  }
  bytesAt(address: number, registers: number): Buffer {
    const buf = Buffer.alloc(registers * 2);
    for (let i = 0; i < registers; i++) buf.writeUInt16BE(this.holding[address + i]!, 2 * i);
    return buf;
  }
}

function illegalAddress(addr: number): void {
  if (addr >= SIZE) throw Object.assign(new Error(`no address ${addr}`), { modbusErrorCode: 2 });
}

/** Reads `table[addr]`, answering exception 2 (illegal data address) past the end. */
function at<T>(table: T[], addr: number): T {
  illegalAddress(addr);
  return table[addr]!;
}

/** Starts a Modbus TCP device on `port` (a free one if 0) over `mem`. */
async function startDevice(mem: Memory, port = 0): Promise<{ port: number; close: () => Promise<void> }> {
  if (port === 0) port = await freePort();
  const server = new ServerTCP(
    {
      getCoil: (addr: number) => at(mem.coils, addr),
      getDiscreteInput: (addr: number) => at(mem.discrete, addr),
      getHoldingRegister: (addr: number) => at(mem.holding, addr),
      getInputRegister: (addr: number) => at(mem.input, addr),
      setCoil: (addr: number, value: boolean) => {
        illegalAddress(addr);
        mem.coils[addr] = value;
      },
      setRegister: (addr: number, value: number) => {
        illegalAddress(addr);
        if (mem.refuseWrites.has(addr)) throw Object.assign(new Error('refused'), { modbusErrorCode: 4 });
        mem.holding[addr] = value;
      },
    },
    { host: '127.0.0.1', port, unitID: 1 },
  );
  server.on('socketError', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('initialized', () => resolve());
    server.once('serverError', reject);
  });
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      s.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

const prop = propertyMaker(40);

function device(
  port: number,
  properties: MapperProperty[],
  config: Record<string, unknown> = {},
): MapperDevice {
  return {
    namespace: 'default',
    name: 'plc-1',
    protocol: 'modbus',
    config: { ip: '127.0.0.1', port, slaveID: 1, timeout: 500, ...config },
    properties,
  };
}

const float32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeFloatBE(n);
  return b;
};
const float64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(n);
  return b;
};
/** The registers of a big-endian value with the register order reversed (isRegisterSwap). */
const wordSwapped = (b: Buffer) => {
  const out = Buffer.alloc(b.length);
  for (let i = 0; i < b.length; i += 2) b.copy(out, b.length - 2 - i, i, i + 2);
  return out;
};
const byteSwapped = (b: Buffer) => Buffer.from(b).swap16();

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function rig(mem: Memory, properties: MapperProperty[], config: Record<string, unknown> = {}) {
  const dev = await startDevice(mem);
  const sink = new RecordingSink();
  const session = await openDevice(builtinMappers(), device(dev.port, properties, config), sink);
  cleanups.push(dev.close, () => session.close());
  return { dev, sink, session };
}

function allReported(names: string[]) {
  return (sink: RecordingSink) => names.every((n) => sink.last(n) !== undefined);
}

describe('modbus mapper against a Modbus TCP server', () => {
  it('reads every register kind at its offset, with scale, sign, byte and word order and 16/32/64-bit values', async () => {
    const mem = new Memory();
    mem.coils[7] = true;
    mem.discrete[9] = true;
    mem.holding[0] = 1234;
    mem.holding[1] = 0xfffe;
    mem.putBytes(2, float32(21.5));
    mem.putBytes(4, wordSwapped(float32(-3.25)));
    mem.putBytes(6, byteSwapped(float32(1013.25)));
    mem.putBytes(8, Buffer.from('00012345', 'hex'));
    mem.putBytes(10, float64(Math.PI));
    mem.putBytes(14, Buffer.from('kedge!', 'utf8'));
    mem.putBytes(20, wordSwapped(Buffer.from('fffffff6', 'hex')));
    mem.input[3] = 234;
    mem.input[5] = 7;
    mem.coils.splice(30, 4, true, false, true, true);
    const props = [
      prop('coil', 'boolean', { register: 'CoilRegister', offset: 7, limit: 1 }),
      prop('coil-off', 'boolean', { register: 'CoilRegister', offset: 8 }),
      prop('discrete', 'boolean', { register: 'DiscreteInputRegister', offset: 9, limit: 1 }),
      prop('holding', 'int', { register: 'HoldingRegister', offset: 0, limit: 1 }),
      prop('unsigned', 'int', { register: 'HoldingRegister', offset: 1 }),
      prop('signed', 'int', { register: 'HoldingRegister', offset: 1, signed: true }),
      prop('float', 'float', { register: 'HoldingRegister', offset: 2, limit: 2 }),
      prop('float-word-swapped', 'float', {
        register: 'HoldingRegister',
        offset: 4,
        limit: 2,
        isRegisterSwap: true,
      }),
      prop('float-byte-swapped', 'float', { register: 'HoldingRegister', offset: 6, limit: 2, isSwap: true }),
      prop('uint32', 'int', { register: 'HoldingRegister', offset: 8, limit: 2 }),
      prop('double', 'double', { register: 'HoldingRegister', offset: 10, limit: 4 }),
      prop('text', 'string', { register: 'HoldingRegister', offset: 14, limit: 4 }),
      prop('int32-low-word-first', 'int', {
        register: 'HoldingRegister',
        offset: 20,
        limit: 2,
        signed: true,
        isRegisterSwap: true,
      }),
      prop('scaled-float', 'float', { register: 'InputRegister', offset: 3, limit: 1, scale: 0.1 }),
      prop('scaled-int', 'int', { register: 'InputRegister', offset: 5, scale: 10 }),
      prop('coil-bits', 'int', { register: 'CoilRegister', offset: 30, limit: 4 }),
    ];
    const { sink } = await rig(mem, props);
    await sink.waitFor('every property', allReported(props.map((p) => p.name)));
    const got = Object.fromEntries(props.map((p) => [p.name, sink.last(p.name)]));
    assert.deepEqual(got, {
      coil: 'true',
      'coil-off': 'false',
      discrete: 'true',
      holding: '1234',
      unsigned: '65534',
      signed: '-2',
      float: '21.5',
      'float-word-swapped': '-3.25',
      'float-byte-swapped': '1013.25',
      uint32: String(0x12345),
      double: String(Math.PI),
      text: 'kedge!',
      'int32-low-word-first': '-10',
      'scaled-float': '23.4',
      'scaled-int': '70',
      'coil-bits': String(0b1101),
    });
    assert.deepEqual(sink.states, ['online']);
    assert.deepEqual(sink.errors, []);
    // a change on the device shows up on a later poll
    mem.holding[0] = 4321;
    await sink.waitFor('the new register value', (s) => s.last('holding') === '4321');
  });

  it('writes desired values to holding registers and coils in the device byte order, and reports them back', async () => {
    const mem = new Memory();
    const rw = { accessMode: 'ReadWrite' as const };
    const props = [
      prop('setpoint', 'int', { register: 'HoldingRegister', offset: 40 }, rw),
      prop(
        'target',
        'float',
        { register: 'HoldingRegister', offset: 42, limit: 2, isRegisterSwap: true },
        rw,
      ),
      prop(
        'scaled',
        'float',
        { register: 'HoldingRegister', offset: 44, limit: 1, scale: 0.1, signed: true },
        rw,
      ),
      prop('wide', 'int', { register: 'HoldingRegister', offset: 46, limit: 2, isSwap: true }, rw),
      prop('label', 'string', { register: 'HoldingRegister', offset: 50, limit: 3 }, rw),
      prop('pump', 'boolean', { register: 'CoilRegister', offset: 3 }, rw),
      prop('valves', 'int', { register: 'CoilRegister', offset: 10, limit: 3 }, rw),
    ];
    const { sink, session } = await rig(mem, props);
    await sink.waitFor('first readings', allReported(props.map((p) => p.name)));

    await session.write('setpoint', '512');
    assert.equal(mem.holding[40], 512);
    await session.write('target', '19.75');
    assert.deepEqual(mem.bytesAt(42, 2), wordSwapped(float32(19.75)));
    await session.write('scaled', '-12.5');
    assert.equal(mem.holding[44], 0x10000 - 125);
    await session.write('wide', '305419896'); // 0x12345678
    assert.equal(mem.bytesAt(46, 2).toString('hex'), '34127856');
    await session.write('label', 'ab');
    assert.equal(mem.bytesAt(50, 3).toString('hex'), '616200000000');
    await session.write('pump', 'true');
    assert.equal(mem.coils[3], true);
    await session.write('valves', '5');
    assert.deepEqual(mem.coils.slice(10, 13), [true, false, true]);

    await sink.waitFor('the written values read back', (s) =>
      [
        ['setpoint', '512'],
        ['target', '19.75'],
        ['scaled', '-12.5'],
        ['wide', '305419896'],
        ['label', 'ab'],
        ['pump', 'true'],
        ['valves', '5'],
      ].every(([k, v]) => s.last(k!) === v),
    );
  });

  it('refuses writes to ReadOnly properties, input registers, out-of-range and malformed values, leaving the device unchanged', async () => {
    const mem = new Memory();
    mem.holding[60] = 7;
    const props = [
      prop('reading', 'int', { register: 'HoldingRegister', offset: 60 }),
      prop('input', 'int', { register: 'InputRegister', offset: 1 }, { accessMode: 'ReadWrite' }),
      prop(
        'limited',
        'int',
        { register: 'HoldingRegister', offset: 61 },
        { accessMode: 'ReadWrite', minimum: 0, maximum: 100 },
      ),
      prop(
        'scaled',
        'int',
        { register: 'HoldingRegister', offset: 62, scale: 0.01 },
        { accessMode: 'ReadWrite' },
      ),
      prop(
        'short',
        'string',
        { register: 'HoldingRegister', offset: 63, limit: 1 },
        { accessMode: 'ReadWrite' },
      ),
      prop('pump', 'boolean', { register: 'CoilRegister', offset: 1 }, { accessMode: 'ReadWrite' }),
    ];
    const { sink, session } = await rig(mem, props);
    await sink.waitFor('first readings', allReported(props.map((p) => p.name)));
    const before = [...mem.holding];
    const refused = async (property: string, value: string, message: RegExp) =>
      assert.rejects(session.write(property, value), (err: unknown) => {
        assert.ok(isKedgeError(err, 'KEDGE_MAPPER_WRITE_REFUSED'), String(err));
        assert.match((err as Error).message, message);
        return true;
      });
    await refused('reading', '1', /reading is ReadOnly/);
    await refused('input', '1', /input register, which Modbus cannot write/);
    await refused('limited', '101', /must be at most 100, got 101/);
    await refused('limited', '-1', /must be at least 0/);
    await refused('limited', 'ten', /"ten" is not a number/);
    await refused('limited', '1.5', /not an integer/);
    await refused('scaled', '700', /700 \(70000 after scale 0.01\) is outside 0..65535/);
    await refused('short', 'abc', /at most 2 bytes/);
    await refused('pump', 'maybe', /is not true or false/);
    await refused('nothing', '1', /has no Modbus register for property nothing/);
    assert.deepEqual(mem.holding, before);
    assert.equal(mem.coils[1], false);
  });

  it('reports a write the device refuses as a refused write, and keeps the device online', async () => {
    const mem = new Memory();
    mem.refuseWrites.add(70);
    const props = [
      prop('locked', 'int', { register: 'HoldingRegister', offset: 70 }, { accessMode: 'ReadWrite' }),
    ];
    const { sink, session } = await rig(mem, props);
    await sink.waitFor('online', (s) => s.lastState === 'online');
    await assert.rejects(session.write('locked', '1'), (err: unknown) => {
      assert.ok(isKedgeError(err, 'KEDGE_MAPPER_WRITE_REFUSED'));
      assert.match((err as Error).message, /exception 4 \(server device failure\)/);
      return true;
    });
    assert.equal(sink.lastState, 'online');
  });

  it('writes the desired value on open', async () => {
    const mem = new Memory();
    const props = [
      prop(
        'setpoint',
        'int',
        { register: 'HoldingRegister', offset: 5 },
        { accessMode: 'ReadWrite', desired: '42' },
      ),
      prop(
        'fan',
        'boolean',
        { register: 'CoilRegister', offset: 5 },
        { accessMode: 'ReadWrite', desired: 'true' },
      ),
    ];
    const { sink } = await rig(mem, props);
    await sink.waitFor(
      'desired values read back',
      (s) => s.last('setpoint') === '42' && s.last('fan') === 'true',
    );
    assert.equal(mem.holding[5], 42);
    assert.equal(mem.coils[5], true);
  });

  it('reads what it can when a batched read spans an address the device does not have', async () => {
    const mem = new Memory();
    mem.holding[98] = 1;
    mem.holding[99] = 2;
    const props = [
      prop('a', 'int', { register: 'HoldingRegister', offset: 98 }),
      prop('b', 'int', { register: 'HoldingRegister', offset: 99 }),
      prop('missing', 'int', { register: 'HoldingRegister', offset: 100 }),
    ];
    const { sink } = await rig(mem, props);
    await sink.waitFor(
      'a, b and an error for missing',
      (s) => s.last('a') === '1' && s.last('b') === '2' && s.errors.length > 0,
    );
    assert.deepEqual(sink.errors, [
      {
        message: 'Modbus device answered function 3 at address 100 with exception 2 (illegal data address)',
        property: 'missing',
      },
    ]);
    assert.deepEqual(sink.states, ['online']);
    // the fault is reported once, not on every poll
    const polls = sink.values('a').length;
    await sink.waitFor('more polls', (s) => s.values('a').length >= polls + 3);
    assert.equal(sink.errors.length, 1);
  });

  it('goes offline when the device goes away, back online when it returns, and then writes what was desired meanwhile', async () => {
    const mem = new Memory();
    mem.holding[1] = 11;
    const props = [
      prop('temp', 'int', { register: 'HoldingRegister', offset: 1 }),
      prop('setpoint', 'int', { register: 'HoldingRegister', offset: 2 }, { accessMode: 'ReadWrite' }),
    ];
    let dev = await startDevice(mem);
    const sink = new RecordingSink();
    const session: MapperSession = await modbusMapper.open(device(dev.port, props, { timeout: 300 }), sink);
    cleanups.push(() => session.close());
    await sink.waitFor('online', (s) => s.last('temp') === '11' && s.lastState === 'online');

    await dev.close();
    await sink.waitFor('offline', (s) => s.lastState === 'offline');
    await assert.rejects(session.write('setpoint', '55'), (err: unknown) =>
      isKedgeError(err, 'KEDGE_MODBUS_DISCONNECTED'),
    );
    mem.holding[1] = 12;
    dev = await startDevice(mem, dev.port);
    cleanups.push(dev.close);
    await sink.waitFor('back online', (s) => s.last('temp') === '12' && s.lastState === 'online');
    assert.deepEqual(sink.states, ['online', 'offline', 'online']);
    await sink.waitFor('the desired value written after recovery', (s) => s.last('setpoint') === '55');
    assert.equal(mem.holding[2], 55);
  });

  it('goes offline when the device is unreachable from the start', async () => {
    const port = await freePort();
    const sink = new RecordingSink();
    const session = await modbusMapper.open(
      device(port, [prop('t', 'int', { register: 'InputRegister', offset: 0 })]),
      sink,
    );
    cleanups.push(() => session.close());
    await sink.waitFor('offline', (s) => s.lastState === 'offline');
    assert.match(sink.errors[0]?.message ?? '', /cannot be reached/);
    // Absence cannot be awaited: give it many collect cycles (40 ms) of failed polls.
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(sink.errors.length, 1, 'the outage is reported once, not on every poll');
    assert.deepEqual(sink.states, ['offline']);
  });
});

describe('modbus mapper configuration', () => {
  it('accepts a KubeEdge v1beta1 manifest as written', () => {
    const dev: MapperDevice = {
      namespace: 'default',
      name: 'beta1-device',
      protocol: 'modbus',
      config: { ip: '172.17.0.3', port: '1502', slaveID: '1' },
      properties: [
        prop('temp', 'int', {
          register: 'HoldingRegister',
          offset: 2,
          limit: 1,
          scale: 1,
          isSwap: true,
          isRegisterSwap: true,
        }),
        prop('alarm', 'boolean', {
          register: 'CoilRegister',
          offset: '3',
          limit: 1,
          scale: 0,
          isSwap: 'false',
        }),
      ],
    };
    const { problems, config, points } = resolveModbusDevice({
      ...dev,
      properties: [...dev.properties, prop('twin-only', 'string', {})],
    });
    assert.deepEqual(problems, []);
    assert.deepEqual(
      points.map((p) => p.property.name),
      ['temp', 'alarm'],
    );
    assert.equal(config.port, 1502);
    assert.equal(config.host, '172.17.0.3');
    assert.equal(points[1]!.offset, 3);
    assert.equal(points[1]!.scale, 1);
  });

  it('reports every problem of a device at once, and refuses to open it', async () => {
    const dev: MapperDevice = {
      namespace: 'default',
      name: 'bad',
      protocol: 'modbus',
      config: { port: 'http', slaveID: 300 },
      properties: [
        prop('a', 'int', { register: 'HoldRegister', offset: 1 }),
        prop('b', 'float', { register: 'HoldingRegister', offset: 70000, limit: 3 }),
        prop('c', 'string', { register: 'InputRegister', offset: 0 }),
        prop('d', 'double', { register: 'CoilRegister', offset: 0 }),
      ],
    };
    const problems = modbusMapper.validate(dev);
    assert.deepEqual(problems, [
      'configData.ip (or host) is required: the Modbus TCP device address',
      'configData.port must be an integer from 1 to 65535, got "http"',
      'configData.slaveID must be an integer from 0 to 255, got 300',
      'property a: visitor.register must be CoilRegister, DiscreteInputRegister, HoldingRegister or InputRegister, got "HoldRegister"',
      'property b: visitor.offset must be an integer from 0 to 65535, got 70000',
      'property b: visitor.limit for a float must be one of 1, 2, 4, got 3',
      'property c: visitor.limit is required for a string (registers it spans)',
      'property d: a double cannot be read from coils (use boolean or int)',
    ]);
    await assert.rejects(openDevice(builtinMappers(), dev, new RecordingSink()), (err: unknown) => {
      assert.ok(isKedgeError(err, 'KEDGE_MAPPER_INVALID'));
      assert.equal((err.context['problems'] as string[]).length, problems.length);
      return true;
    });
  });

  it('says plainly that serial Modbus RTU is not supported', () => {
    const problems = modbusMapper.validate({
      namespace: 'default',
      name: 'rtu',
      protocol: 'modbus',
      config: { serialPort: '/dev/ttyS0', baudRate: 9600, slaveID: 1 },
      properties: [],
    });
    assert.deepEqual(problems, [
      'Modbus RTU over a serial port is not supported; give configData.ip and port for Modbus TCP',
    ]);
  });

  it('batches adjacent properties of one kind and cycle into one read, within the protocol limits', () => {
    const { points } = resolveModbusDevice(
      device(502, [
        prop('a', 'int', { register: 'HoldingRegister', offset: 0 }),
        prop('b', 'float', { register: 'HoldingRegister', offset: 1, limit: 2 }),
        prop('c', 'int', { register: 'HoldingRegister', offset: 5 }),
        prop('d', 'int', { register: 'HoldingRegister', offset: 3 }, { collectCycleMs: 1000 }),
        prop('e', 'int', { register: 'InputRegister', offset: 3 }),
        prop('f', 'string', { register: 'HoldingRegister', offset: 6, limit: 125 }),
      ]),
    );
    const plan = (gap: number) =>
      planBatches(points, gap).map(
        (b) => `${b.kind}@${b.cycleMs}:${b.start}-${b.end}:${b.points.map((p) => p.property.name).join('')}`,
      );
    assert.deepEqual(plan(0), [
      'holding@40:0-3:ab',
      'holding@40:5-6:c',
      'holding@40:6-131:f',
      'holding@1000:3-4:d',
      'input@40:3-4:e',
    ]);
    assert.deepEqual(plan(2), [
      'holding@40:0-6:abc',
      'holding@40:6-131:f',
      'holding@1000:3-4:d',
      'input@40:3-4:e',
    ]);
  });

  it('unknown protocols get a clear error', async () => {
    await assert.rejects(
      openDevice(builtinMappers(), { ...device(1, []), protocol: 'opcua' }, new RecordingSink()),
      /uses protocol "opcua", which no mapper serves \(known: modbus, virtual\)/,
    );
  });
});

describe('modbus value codec', () => {
  const layout = fc.record({ isSwap: fc.boolean(), isRegisterSwap: fc.boolean(), signed: fc.boolean() });
  function point(type: MapperProperty['type'], visitor: Record<string, unknown>) {
    const problems: string[] = [];
    const p = resolveModbusPoint(prop('v', type, visitor, { accessMode: 'ReadWrite' }), problems);
    assert.deepEqual(problems, []);
    return p!;
  }
  const roundTrip = (pt: ReturnType<typeof point>, value: string) => {
    const encoded = encodePoint(pt, value);
    assert.ok('registers' in encoded);
    assert.equal(encoded.registers.length, pt.limit);
    return decodePoint(pt, encoded.registers);
  };

  it('reads back every integer it writes, in any byte and word order', () => {
    fc.assert(
      fc.property(
        layout,
        fc.constantFrom(1, 2, 4),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        (l, limit, seed) => {
          const bits = BigInt(limit * 16);
          const n = l.signed ? BigInt.asIntN(Number(bits), seed) : BigInt.asUintN(Number(bits), seed);
          if (limit === 4 && !Number.isSafeInteger(Number(n))) return; // twin ints are JavaScript numbers
          const pt = point('int', { register: 'HoldingRegister', offset: 0, limit, ...l });
          assert.equal(roundTrip(pt, n.toString()), n.toString());
        },
      ),
    );
  });

  it('reads back every float32 and float64 it writes, in any byte and word order', () => {
    fc.assert(
      fc.property(layout, fc.float({ noNaN: true, noDefaultInfinity: true }), (l, f) => {
        const pt = point('float', { register: 'HoldingRegister', offset: 0, limit: 2, ...l });
        const back = roundTrip(pt, String(f));
        assert.equal(Math.fround(Number(back)) + 0, Math.fround(f) + 0); // the same float32 (-0 reads 0)
        assert.ok(back.replace(/^-|e.*$|\./g, '').replace(/^0+|0+$/g, '').length <= 9, back); // and no float noise
      }),
    );
    fc.assert(
      fc.property(layout, fc.double({ noNaN: true, noDefaultInfinity: true }), (l, d) => {
        const pt = point('double', { register: 'HoldingRegister', offset: 0, limit: 4, ...l });
        assert.equal(roundTrip(pt, String(d)), String(d === 0 ? 0 : d));
      }),
    );
  });

  it('reads back scaled values and strings', () => {
    fc.assert(
      fc.property(layout, fc.integer({ min: -3276, max: 3276 }), (l, tenths) => {
        const pt = point('float', {
          register: 'HoldingRegister',
          offset: 0,
          limit: 1,
          scale: 0.1,
          ...l,
          signed: true,
        });
        assert.equal(roundTrip(pt, String(tenths / 10)), String(tenths / 10));
      }),
    );
    fc.assert(
      fc.property(
        layout,
        fc.string({ maxLength: 8 }).filter((t) => !t.includes('\0') && Buffer.byteLength(t) <= 8),
        (l, t) => {
          const pt = point('string', { register: 'HoldingRegister', offset: 0, limit: 4, ...l });
          assert.equal(roundTrip(pt, t), t);
        },
      ),
    );
  });
});
