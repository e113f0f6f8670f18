/**
 * Protocol `modbus`: devices reached over Modbus TCP. Accepts KubeEdge's configData and visitor key names
 * (ip, port, slaveID; register, offset, limit, scale, isSwap, isRegisterSwap) so KubeEdge manifests work.
 * docs/mappers.md lists every key and how values are decoded.
 */
import { isKedgeError, KedgeError } from '../../lib/errors.ts';
import { ModbusTcpClient } from './modbus-tcp.ts';
import type {
  DeviceState,
  Mapper,
  MapperDevice,
  MapperProperty,
  MapperSession,
  MapperSink,
} from './types.ts';
import {
  configBoolean,
  configNumber,
  configString,
  formatNumber,
  parseDesired,
  writeRefused,
} from './values.ts';

export type RegisterKind = 'coil' | 'discrete' | 'holding' | 'input';

/** The device's protocol configData, resolved. */
export interface ModbusConfig {
  readonly host: string;
  readonly port: number;
  readonly unitId: number;
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  /** Unused addresses a batched read may span between two properties (0: only adjacent ones are batched). */
  readonly batchGap: number;
}

/** One property's visitor, resolved. */
export interface ModbusPoint {
  readonly property: MapperProperty;
  readonly kind: RegisterKind;
  readonly offset: number;
  /** Registers (holding/input) or bits (coil/discrete) the value spans. */
  readonly limit: number;
  readonly scale: number;
  /** isSwap: swap the two bytes of each register. */
  readonly byteSwap: boolean;
  /** isRegisterSwap: reverse the order of the registers (low word first). */
  readonly wordSwap: boolean;
  /** Integers are two's complement (kedge's key; KubeEdge reads them unsigned). */
  readonly signed: boolean;
  readonly cycleMs: number;
}

export const DEFAULT_PORT = 502;
export const DEFAULT_TIMEOUT_MS = 1000;
export const DEFAULT_COLLECT_CYCLE_MS = 1000;
const MAX_REGISTERS = 125;
const MAX_BITS = 2000;

const KINDS: Readonly<Record<string, RegisterKind>> = {
  coil: 'coil',
  discreteinput: 'discrete',
  holding: 'holding',
  input: 'input',
};

function kindOf(raw: unknown): RegisterKind | undefined {
  if (typeof raw !== 'string') return undefined;
  const key = raw
    .toLowerCase()
    .replace(/registers?$/, '')
    .replace(/s$/, '');
  return KINDS[key];
}

function record(raw: unknown): Record<string, unknown> {
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw)
    ? (raw as Record<string, unknown>)
    : {};
}

/** Resolves protocol configData; problems are pushed, not thrown, so all are reported at once. */
export function resolveModbusConfig(
  config: Readonly<Record<string, unknown>>,
  problems: string[],
): ModbusConfig {
  const tcp = record(config['tcp']);
  const host =
    configString('configData.ip', config['ip'], problems) ??
    configString('configData.host', config['host'], problems) ??
    configString('configData.tcp.ip', tcp['ip'], problems);
  if (host === undefined) {
    if (config['serialPort'] !== undefined || config['com'] !== undefined)
      problems.push(
        'Modbus RTU over a serial port is not supported; give configData.ip and port for Modbus TCP',
      );
    else problems.push('configData.ip (or host) is required: the Modbus TCP device address');
  }
  const port =
    configNumber('configData.port', config['port'] ?? tcp['port'], problems, {
      integer: true,
      min: 1,
      max: 65535,
    }) ?? DEFAULT_PORT;
  const unitId =
    configNumber(
      'configData.slaveID',
      config['slaveID'] ?? config['slaveId'] ?? config['unitId'] ?? config['unitID'],
      problems,
      {
        integer: true,
        min: 0,
        max: 255,
      },
    ) ?? 1;
  const timeoutMs =
    configNumber('configData.timeout', config['timeout'], problems, { min: 1, max: 600_000 }) ??
    DEFAULT_TIMEOUT_MS;
  const maxInFlight =
    configNumber('configData.maxInFlight', config['maxInFlight'], problems, {
      integer: true,
      min: 1,
      max: 100,
    }) ?? 1;
  const batchGap =
    configNumber('configData.batchGap', config['batchGap'], problems, { integer: true, min: 0, max: 100 }) ??
    0;
  return { host: host ?? '', port, unitId, timeoutMs, maxInFlight, batchGap };
}

/** The registers a property type may span, and the default. */
function allowedLimits(
  kind: RegisterKind,
  type: MapperProperty['type'],
): { allowed: number[] | 'any'; dflt?: number } | string {
  if (kind === 'coil' || kind === 'discrete') {
    if (type === 'boolean') return { allowed: [1], dflt: 1 };
    if (type === 'int') return { allowed: Array.from({ length: 32 }, (_, i) => i + 1), dflt: 1 };
    return `a ${type} cannot be read from ${kind === 'coil' ? 'coils' : 'discrete inputs'} (use boolean or int)`;
  }
  switch (type) {
    case 'int':
      return { allowed: [1, 2, 4], dflt: 1 };
    case 'float':
      return { allowed: [1, 2, 4], dflt: 2 };
    case 'double':
      return { allowed: [1, 2, 4], dflt: 4 };
    case 'boolean':
      return { allowed: [1], dflt: 1 };
    case 'string':
    case 'bytes':
      return { allowed: 'any' };
  }
}

/** Resolves one property's visitor. */
export function resolveModbusPoint(property: MapperProperty, problems: string[]): ModbusPoint | undefined {
  const v = property.visitor;
  const where = `property ${property.name}: visitor`;
  const before = problems.length;
  const kind = kindOf(v['register']);
  if (kind === undefined)
    problems.push(
      `${where}.register must be CoilRegister, DiscreteInputRegister, HoldingRegister or InputRegister, got ${JSON.stringify(v['register'])}`,
    );
  const offset =
    configNumber(`${where}.offset`, v['offset'], problems, { integer: true, min: 0, max: 65535 }) ?? 0;
  let limit =
    configNumber(`${where}.limit`, v['limit'], problems, { integer: true, min: 0, max: MAX_BITS }) ?? 0;
  let scale = configNumber(`${where}.scale`, v['scale'], problems) ?? 1;
  if (scale === 0) scale = 1; // KubeEdge manifests write 0 for "not set"
  const byteSwap = configBoolean(`${where}.isSwap`, v['isSwap'], problems) ?? false;
  const wordSwap = configBoolean(`${where}.isRegisterSwap`, v['isRegisterSwap'], problems) ?? false;
  const signed = configBoolean(`${where}.signed`, v['signed'], problems) ?? false;
  if (kind !== undefined) {
    const rule = allowedLimits(kind, property.type);
    if (typeof rule === 'string') problems.push(`property ${property.name}: ${rule}`);
    else {
      if (limit === 0) {
        if (rule.dflt === undefined)
          problems.push(`${where}.limit is required for a ${property.type} (registers it spans)`);
        else limit = rule.dflt;
      }
      const max = kind === 'coil' || kind === 'discrete' ? MAX_BITS : MAX_REGISTERS;
      if (rule.allowed !== 'any' && limit !== 0 && !rule.allowed.includes(limit))
        problems.push(
          `${where}.limit for a ${property.type} must be one of ${rule.allowed.join(', ')}, got ${limit}`,
        );
      else if (limit > max) problems.push(`${where}.limit must be at most ${max}, got ${limit}`);
      if (offset + limit > 0x10000)
        problems.push(`${where}: offset ${offset} + limit ${limit} runs past address 65535`);
    }
  }
  if (problems.length > before || kind === undefined) return undefined;
  const cycleMs = property.collectCycleMs > 0 ? property.collectCycleMs : DEFAULT_COLLECT_CYCLE_MS;
  return { property, kind, offset, limit, scale, byteSwap, wordSwap, signed, cycleMs };
}

/** Resolves a whole device: all problems at once. */
export function resolveModbusDevice(device: MapperDevice): {
  config: ModbusConfig;
  points: ModbusPoint[];
  problems: string[];
} {
  const problems: string[] = [];
  const config = resolveModbusConfig(device.config, problems);
  const points: ModbusPoint[] = [];
  for (const p of device.properties) {
    const point = resolveModbusPoint(p, problems);
    if (point !== undefined) points.push(point);
  }
  return { config, points, problems };
}

/** Applies isRegisterSwap and isSwap to big-endian register bytes (both are their own inverse). */
function reorder(bytes: Buffer, point: ModbusPoint): Buffer {
  const out = Buffer.from(bytes);
  if (point.wordSwap) {
    const n = out.length / 2;
    for (let i = 0; i < n; i++) bytes.copy(out, 2 * (n - 1 - i), 2 * i, 2 * i + 2);
  }
  if (point.byteSwap) out.swap16();
  return out;
}

function registersToBytes(regs: readonly number[]): Buffer {
  const buf = Buffer.alloc(regs.length * 2);
  for (const [i, r] of regs.entries()) buf.writeUInt16BE(r, 2 * i);
  return buf;
}

function bytesToRegisters(buf: Buffer): number[] {
  const regs: number[] = [];
  for (let i = 0; i < buf.length; i += 2) regs.push(buf.readUInt16BE(i));
  return regs;
}

function readInteger(buf: Buffer, signed: boolean): bigint {
  switch (buf.length) {
    case 2:
      return BigInt(signed ? buf.readInt16BE(0) : buf.readUInt16BE(0));
    case 4:
      return BigInt(signed ? buf.readInt32BE(0) : buf.readUInt32BE(0));
    default:
      return signed ? buf.readBigInt64BE(0) : buf.readBigUInt64BE(0);
  }
}

/** Turns the registers or bits read for a point into the twin's string value. */
export function decodePoint(point: ModbusPoint, data: readonly number[] | readonly boolean[]): string {
  const { property: p } = point;
  if (point.kind === 'coil' || point.kind === 'discrete') {
    const bits = data as readonly boolean[];
    if (p.type === 'boolean') return String(bits[0] === true);
    let n = 0;
    bits.forEach((b, i) => {
      if (b) n += 2 ** i;
    });
    return String(n);
  }
  const buf = reorder(registersToBytes(data as readonly number[]), point);
  switch (p.type) {
    case 'boolean':
      return String(buf.readUInt16BE(0) !== 0);
    case 'string':
      return buf.toString('utf8').replace(/\0+$/, '');
    case 'bytes':
      return buf.toString('base64');
    case 'int': {
      const raw = readInteger(buf, point.signed);
      if (point.scale === 1) return raw.toString();
      return String(Math.round(Number(raw) * point.scale));
    }
    case 'float':
    case 'double': {
      if (buf.length === 4) return formatNumber(buf.readFloatBE(0) * point.scale, 7);
      const raw = buf.length === 2 ? Number(readInteger(buf, point.signed)) : buf.readDoubleBE(0);
      // Unscaled, the shortest exact form; scaled, 15 digits so 234 * 0.1 reads 23.4.
      return point.scale === 1 ? String(raw) : formatNumber(raw * point.scale);
    }
  }
}

/** What a write sends: registers for holding registers, bits for coils. */
export type Encoded = { readonly registers: number[] } | { readonly bits: boolean[] };

/** Turns a desired value into registers or bits; throws KEDGE_MAPPER_WRITE_REFUSED when it cannot. */
export function encodePoint(point: ModbusPoint, value: string): Encoded {
  const { property: p } = point;
  const name = p.name;
  if (p.accessMode !== 'ReadWrite') throw writeRefused(name, `Property ${name} is ReadOnly`, value);
  if (point.kind === 'discrete' || point.kind === 'input')
    throw writeRefused(
      name,
      `Property ${name} is mapped to ${point.kind === 'discrete' ? 'a discrete input' : 'an input register'}, which Modbus cannot write`,
      value,
    );
  const parsed = parseDesired(p, value);
  if (point.kind === 'coil') {
    if (typeof parsed === 'boolean') return { bits: [parsed] };
    const n = parsed as number;
    if (n < 0 || n >= 2 ** point.limit)
      throw writeRefused(name, `Property ${name} spans ${point.limit} coils; ${value} does not fit`, value);
    return { bits: Array.from({ length: point.limit }, (_, i) => Math.floor(n / 2 ** i) % 2 === 1) };
  }
  const size = point.limit * 2;
  const buf = Buffer.alloc(size);
  if (typeof parsed === 'boolean') buf.writeUInt16BE(parsed ? 1 : 0, 0);
  else if (typeof parsed === 'string') {
    const bytes = p.type === 'bytes' ? Buffer.from(parsed, 'base64') : Buffer.from(parsed, 'utf8');
    if (bytes.length > size)
      throw writeRefused(
        name,
        `Property ${name} holds at most ${size} bytes; the value has ${bytes.length}`,
        value,
      );
    bytes.copy(buf);
  } else {
    const raw = parsed / point.scale;
    if (p.type !== 'int' && size === 4) buf.writeFloatBE(checkFloat32(name, raw, value), 0);
    else if (p.type !== 'int' && size === 8) buf.writeDoubleBE(raw, 0);
    else writeInteger(buf, integerFor(point, raw, value));
  }
  return { registers: bytesToRegisters(reorder(buf, point)) };
}

function checkFloat32(name: string, raw: number, value: string): number {
  if (Math.abs(raw) > 3.4028234663852886e38)
    throw writeRefused(name, `Property ${name} is a 32-bit float; ${value} is out of its range`, value);
  return raw;
}

function integerFor(point: ModbusPoint, raw: number, value: string): bigint {
  const bits = BigInt(point.limit * 16);
  const n = BigInt(Math.round(raw));
  const min = point.signed ? -(1n << (bits - 1n)) : 0n;
  const max = point.signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
  if (n < min || n > max) {
    const name = point.property.name;
    const scaled = point.scale === 1 ? '' : ` (${n} after scale ${point.scale})`;
    throw writeRefused(
      name,
      `Property ${name} is ${point.signed ? 'a signed' : 'an unsigned'} ${bits}-bit register value; ${value}${scaled} is outside ${min}..${max}`,
      value,
    );
  }
  return n;
}

function writeInteger(buf: Buffer, n: bigint): void {
  const width = BigInt(buf.length * 8);
  const unsigned = BigInt.asUintN(Number(width), n);
  for (let i = buf.length - 1, rest = unsigned; i >= 0; i--, rest >>= 8n) buf[i] = Number(rest & 0xffn);
}

/** A group of points of one register kind and collect cycle read with one request. */
interface Batch {
  readonly kind: RegisterKind;
  readonly cycleMs: number;
  readonly points: ModbusPoint[];
  start: number;
  end: number;
  /** Set when the device refused the combined read: read each point alone from then on. */
  split: boolean;
  busy: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** Groups points into batched reads: same kind and cycle, overlapping or within `gap` addresses. */
export function planBatches(
  points: readonly ModbusPoint[],
  gap: number,
): { kind: RegisterKind; cycleMs: number; start: number; end: number; points: ModbusPoint[] }[] {
  const groups = new Map<string, ModbusPoint[]>();
  for (const p of points) {
    const key = `${p.kind}/${p.cycleMs}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  const out: { kind: RegisterKind; cycleMs: number; start: number; end: number; points: ModbusPoint[] }[] =
    [];
  for (const group of groups.values()) {
    group.sort((a, b) => a.offset - b.offset);
    const max = group[0]!.kind === 'coil' || group[0]!.kind === 'discrete' ? MAX_BITS : MAX_REGISTERS;
    let current: (typeof out)[number] | undefined;
    for (const p of group) {
      const end = p.offset + p.limit;
      if (
        current !== undefined &&
        p.offset <= current.end + gap &&
        Math.max(current.end, end) - current.start <= max
      ) {
        current.end = Math.max(current.end, end);
        current.points.push(p);
      } else {
        current = { kind: p.kind, cycleMs: p.cycleMs, start: p.offset, end, points: [p] };
        out.push(current);
      }
    }
  }
  return out;
}

function isConnectivity(err: unknown): boolean {
  return isKedgeError(err, 'KEDGE_MODBUS_TIMEOUT') || isKedgeError(err, 'KEDGE_MODBUS_DISCONNECTED');
}

class ModbusSession implements MapperSession {
  readonly #device: MapperDevice;
  readonly #sink: MapperSink;
  readonly #client: ModbusTcpClient;
  readonly #points: Map<string, ModbusPoint>;
  readonly #batches: Batch[];
  /** Desired values not yet written because the device was unreachable; the latest per property wins. */
  readonly #pending = new Map<string, string>();
  /** The last error reported per property (or '' for the device), so a lasting fault is reported once. */
  readonly #lastError = new Map<string, string>();
  #state: DeviceState = 'unknown';
  #closed = false;
  #flushing = false;

  constructor(device: MapperDevice, sink: MapperSink, config: ModbusConfig, points: ModbusPoint[]) {
    this.#device = device;
    this.#sink = sink;
    this.#client = new ModbusTcpClient({
      host: config.host,
      port: config.port,
      unitId: config.unitId,
      timeoutMs: config.timeoutMs,
      maxInFlight: config.maxInFlight,
      backoffMaxMs: Math.max(1000, Math.min(30_000, ...points.map((p) => p.cycleMs))),
    });
    this.#points = new Map(points.map((p) => [p.property.name, p]));
    this.#batches = planBatches(points, config.batchGap).map((b) => ({
      ...b,
      split: false,
      busy: false,
      timer: undefined,
    }));
    for (const p of points)
      if (p.property.accessMode === 'ReadWrite' && p.property.desired !== undefined)
        this.#pending.set(p.property.name, p.property.desired);
  }

  start(): void {
    for (const batch of this.#batches) this.#schedule(batch, 0);
    void this.#flush();
  }

  #schedule(batch: Batch, delay: number): void {
    if (this.#closed) return;
    batch.timer = setTimeout(() => {
      const started = Date.now();
      void this.#poll(batch).finally(() =>
        this.#schedule(batch, Math.max(0, batch.cycleMs - (Date.now() - started))),
      );
    }, delay);
  }

  async #poll(batch: Batch): Promise<void> {
    if (batch.busy || this.#closed) return;
    batch.busy = true;
    try {
      if (batch.split || batch.points.length === 1) {
        for (const p of batch.points) await this.#readPoint(p);
        return;
      }
      let data: boolean[] | number[];
      try {
        data = await this.#read(batch.kind, batch.start, batch.end - batch.start);
      } catch (err) {
        if (this.#closed) return;
        if (isKedgeError(err, 'KEDGE_MODBUS_EXCEPTION')) {
          // Often an unmapped address inside the span: fall back to one read per property for good.
          batch.split = true;
          for (const p of batch.points) await this.#readPoint(p);
          return;
        }
        this.#failed(err, batch.points);
        return;
      }
      this.#online();
      const at = new Date();
      for (const p of batch.points) {
        const slice = data.slice(p.offset - batch.start, p.offset - batch.start + p.limit);
        this.#report(p, slice, at);
      }
    } finally {
      batch.busy = false;
    }
  }

  async #readPoint(p: ModbusPoint): Promise<void> {
    let data: boolean[] | number[];
    try {
      data = await this.#read(p.kind, p.offset, p.limit);
    } catch (err) {
      if (!this.#closed) this.#failed(err, [p]);
      return;
    }
    this.#online();
    this.#report(p, data, new Date());
  }

  #report(p: ModbusPoint, data: boolean[] | number[], at: Date): void {
    if (this.#closed) return;
    this.#lastError.delete(p.property.name);
    this.#sink.reported(p.property.name, decodePoint(p, data), at);
  }

  #read(kind: RegisterKind, address: number, quantity: number): Promise<boolean[] | number[]> {
    switch (kind) {
      case 'coil':
        return this.#client.readCoils(address, quantity);
      case 'discrete':
        return this.#client.readDiscreteInputs(address, quantity);
      case 'holding':
        return this.#client.readHoldingRegisters(address, quantity);
      case 'input':
        return this.#client.readInputRegisters(address, quantity);
    }
  }

  #failed(err: unknown, points: readonly ModbusPoint[]): void {
    if (isConnectivity(err)) {
      this.#setState('offline');
      this.#error('', (err as Error).message);
      return;
    }
    // The device answered (an exception or a malformed reply): it is there, this read is wrong.
    if (isKedgeError(err, 'KEDGE_MODBUS_EXCEPTION')) this.#online();
    for (const p of points) this.#error(p.property.name, (err as Error).message);
  }

  #error(property: string, message: string): void {
    if (this.#lastError.get(property) === message) return;
    this.#lastError.set(property, message);
    if (property === '') this.#sink.error(message);
    else this.#sink.error(message, property);
  }

  #online(): void {
    this.#lastError.delete('');
    this.#setState('online');
  }

  #setState(state: DeviceState): void {
    if (this.#closed || this.#state === state) return;
    const was = this.#state;
    this.#state = state;
    this.#sink.state(state, new Date());
    if (state === 'online' && was === 'offline') void this.#flush();
  }

  /** Writes desired values that could not be written while the device was unreachable. */
  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      for (const [name, value] of [...this.#pending]) {
        if (this.#closed) return;
        try {
          await this.write(name, value);
        } catch (err) {
          if (this.#closed) return;
          if (isConnectivity(err)) return; // kept; tried again when the device is back
          this.#pending.delete(name);
          this.#sink.error(
            `Desired value ${JSON.stringify(value)} of ${name} not written: ${(err as Error).message}`,
            name,
          );
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  async write(property: string, value: string): Promise<void> {
    const point = this.#points.get(property);
    if (point === undefined)
      throw writeRefused(
        property,
        `Device ${this.#device.namespace}/${this.#device.name} has no Modbus property ${property}`,
        value,
      );
    const encoded = encodePoint(point, value);
    try {
      if ('bits' in encoded) {
        if (encoded.bits.length === 1) await this.#client.writeCoil(point.offset, encoded.bits[0]!);
        else await this.#client.writeCoils(point.offset, encoded.bits);
      } else if (encoded.registers.length === 1)
        await this.#client.writeRegister(point.offset, encoded.registers[0]!);
      else await this.#client.writeRegisters(point.offset, encoded.registers);
    } catch (err) {
      if (isConnectivity(err)) {
        this.#pending.set(property, value);
        this.#setState('offline');
        throw err;
      }
      if (this.#pending.get(property) === value) this.#pending.delete(property);
      if (isKedgeError(err, 'KEDGE_MODBUS_EXCEPTION')) {
        this.#online();
        throw new KedgeError(
          'KEDGE_MAPPER_WRITE_REFUSED',
          `Device refused ${JSON.stringify(value)} for property ${property}: ${(err as Error).message}`,
          { cause: err, context: { property, value } },
        );
      }
      throw err;
    }
    if (this.#pending.get(property) === value) this.#pending.delete(property);
    this.#online();
    // Read it back at once so the reported value follows the write without waiting a cycle.
    void this.#readPoint(point);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const b of this.#batches) clearTimeout(b.timer);
    await this.#client.close();
  }
}

/** The `modbus` mapper (Modbus TCP). */
export const modbusMapper: Mapper = {
  protocol: 'modbus',
  validate(device: MapperDevice): string[] {
    return resolveModbusDevice(device).problems;
  },
  async open(device: MapperDevice, sink: MapperSink): Promise<MapperSession> {
    const { config, points, problems } = resolveModbusDevice(device);
    if (problems.length > 0)
      throw new KedgeError(
        'KEDGE_MAPPER_INVALID',
        `Device ${device.namespace}/${device.name} cannot be opened by the modbus mapper: ${problems.join('; ')}`,
        { context: { device: `${device.namespace}/${device.name}`, problems } },
      );
    const session = new ModbusSession(device, sink, config, points);
    session.start();
    return session;
  },
};
