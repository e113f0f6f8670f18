/**
 * Protocol `virtual`: a simulated device for the quickstart, demos and tests. Each property's visitor
 * says what it does (a sine wave, a random walk, a counter, a constant, or following another property);
 * ReadWrite properties hold the last value written and report it back. Values are a pure function of
 * the seed and the reading's index, so two sessions with the same seed report the same sequence.
 * Optional simulated outages (offlineEvery/offlineFor) exercise the device state.
 * docs/mappers.md lists the keys.
 */
import { KedgeError } from '../../lib/errors.ts';
import type { Mapper, MapperDevice, MapperProperty, MapperSession, MapperSink } from './types.ts';
import { configNumber, configString, formatNumber, parseDesired, writeRefused } from './values.ts';

export const GENERATORS = ['constant', 'sine', 'randomWalk', 'counter', 'toggle', 'follow'] as const;
export type Generator = (typeof GENERATORS)[number];

const DEFAULT_CYCLE_MS = 1000;

/** One property's behaviour, resolved from its visitor. */
export interface VirtualBehaviour {
  readonly property: MapperProperty;
  readonly generator: Generator;
  readonly min: number;
  readonly max: number;
  readonly periodMs: number;
  readonly step: number;
  readonly noise: number;
  readonly decimals: number;
  /** constant's value, counter's and randomWalk's start, a ReadWrite property's first value. */
  readonly value: string | undefined;
  /** follow: the property followed, and the share of the distance closed each reading. */
  readonly follows: string | undefined;
  readonly rate: number;
  readonly cycleMs: number;
}

export interface VirtualConfig {
  readonly seed: number;
  /** Milliseconds online between simulated outages; 0 means never offline. */
  readonly offlineEveryMs: number;
  readonly offlineForMs: number;
}

/** FNV-1a, to derive per-property seeds and the default seed from names. */
function hash(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** A small seeded generator of numbers in [0, 1): a Weyl sequence through a 32-bit mixing function. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    return (z >>> 0) / 2 ** 32;
  };
}

const NUMERIC = new Set(['int', 'float', 'double']);

function resolveBehaviour(
  property: MapperProperty,
  all: readonly MapperProperty[],
  problems: string[],
): VirtualBehaviour {
  const v = property.visitor;
  const where = `property ${property.name}: visitor`;
  const numeric = NUMERIC.has(property.type);
  const rawGenerator = v['generator'] ?? 'constant';
  let generator: Generator = 'constant';
  if (typeof rawGenerator === 'string' && (GENERATORS as readonly string[]).includes(rawGenerator))
    generator = rawGenerator as Generator;
  else
    problems.push(
      `${where}.generator must be one of ${GENERATORS.join(', ')}, got ${JSON.stringify(rawGenerator)}`,
    );
  if (generator === 'toggle' && property.type !== 'boolean')
    problems.push(`${where}.generator toggle needs a boolean property, not ${property.type}`);
  if (generator !== 'constant' && generator !== 'toggle' && !numeric)
    problems.push(
      `${where}.generator ${generator} needs an int, float or double property, not ${property.type}`,
    );
  const min = configNumber(`${where}.min`, v['min'], problems) ?? property.minimum ?? 0;
  const max = configNumber(`${where}.max`, v['max'], problems) ?? property.maximum ?? 100;
  if (numeric && min > max) problems.push(`${where}: min ${min} is greater than max ${max}`);
  const periodMs = configNumber(`${where}.period`, v['period'], problems, { min: 1 }) ?? 60_000;
  const step =
    configNumber(`${where}.step`, v['step'], problems) ??
    (generator === 'counter' ? 1 : Math.max(0, max - min) / 20);
  const noise = configNumber(`${where}.noise`, v['noise'], problems, { min: 0 }) ?? 0;
  const decimals =
    configNumber(`${where}.decimals`, v['decimals'], problems, { integer: true, min: 0, max: 15 }) ??
    (property.type === 'int' ? 0 : 2);
  const rawValue = v['value'];
  const value = rawValue === undefined || rawValue === null ? undefined : String(rawValue);
  if (value !== undefined) {
    try {
      parseDesired(property, value);
    } catch (err) {
      problems.push(`${where}.value: ${(err as Error).message}`);
    }
  }
  const follows = configString(`${where}.property`, v['property'], problems);
  if (generator === 'follow') {
    const target = all.find((p) => p.name === follows);
    if (follows === undefined) problems.push(`${where}.property is required for generator follow`);
    else if (target === undefined || !NUMERIC.has(target.type) || target.name === property.name)
      problems.push(
        `${where}.property must name another int, float or double property, got ${JSON.stringify(follows)}`,
      );
  }
  const rate = configNumber(`${where}.rate`, v['rate'], problems, { min: 0, max: 1 }) ?? 0.3;
  const cycleMs = property.collectCycleMs > 0 ? property.collectCycleMs : DEFAULT_CYCLE_MS;
  return { property, generator, min, max, periodMs, step, noise, decimals, value, follows, rate, cycleMs };
}

/** Resolves a device for the virtual mapper; all problems at once. */
export function resolveVirtualDevice(device: MapperDevice): {
  config: VirtualConfig;
  behaviours: VirtualBehaviour[];
  problems: string[];
} {
  const problems: string[] = [];
  const c = device.config;
  const seed =
    configNumber('configData.seed', c['seed'], problems, { integer: true, min: 0, max: 2 ** 32 - 1 }) ??
    hash(`${device.namespace}/${device.name}`);
  const offlineEveryMs =
    configNumber('configData.offlineEvery', c['offlineEvery'], problems, { min: 0 }) ?? 0;
  const offlineForMs = configNumber('configData.offlineFor', c['offlineFor'], problems, { min: 1 }) ?? 1000;
  const behaviours = device.properties.map((p) => resolveBehaviour(p, device.properties, problems));
  return { config: { seed, offlineEveryMs, offlineForMs }, behaviours, problems };
}

/** The running simulation of one property. */
class Simulated {
  readonly b: VirtualBehaviour;
  readonly #random: () => number;
  #index = 0;
  #walk: number;
  /** The value a ReadWrite property holds, or the last generated one. */
  current: string;

  constructor(b: VirtualBehaviour, seed: number) {
    this.b = b;
    this.#random = seededRandom(hash(b.property.name, seed));
    const start = b.value === undefined ? undefined : Number(b.value);
    this.#walk = start !== undefined && Number.isFinite(start) ? start : (b.min + b.max) / 2;
    this.current = this.#initial();
    if (b.property.accessMode === 'ReadWrite' && b.property.desired !== undefined) {
      try {
        this.current = normalize(b.property, b.property.desired);
      } catch {
        // An unusable desired value is reported when the session applies it.
      }
    }
  }

  #initial(): string {
    const b = this.b;
    if (b.value !== undefined) return normalize(b.property, b.value);
    switch (b.property.type) {
      case 'boolean':
        return 'false';
      case 'string':
      case 'bytes':
        return '';
      default:
        return this.#format(b.generator === 'counter' ? b.min : (b.min + b.max) / 2);
    }
  }

  #format(n: number): string {
    const clamped = Math.min(this.b.max, Math.max(this.b.min, n));
    const rounded = Number(clamped.toFixed(this.b.decimals));
    return this.b.property.type === 'int' ? String(Math.round(rounded)) : formatNumber(rounded);
  }

  /** The next reading. `peer` gives another property's current value (for follow). */
  next(peer: (name: string) => string | undefined): string {
    const b = this.b;
    const k = this.#index++;
    if (b.property.accessMode === 'ReadWrite') return this.current;
    const jitter = () => (b.noise === 0 ? 0 : (this.#random() * 2 - 1) * b.noise);
    switch (b.generator) {
      case 'constant':
        break;
      case 'toggle':
        this.current = String(k % 2 === 1);
        break;
      case 'sine': {
        const mid = (b.min + b.max) / 2;
        const amplitude = (b.max - b.min) / 2;
        this.current = this.#format(
          mid + amplitude * Math.sin((2 * Math.PI * k * b.cycleMs) / b.periodMs) + jitter(),
        );
        break;
      }
      case 'randomWalk':
        this.#walk = Math.min(b.max, Math.max(b.min, this.#walk + (this.#random() * 2 - 1) * b.step));
        this.current = this.#format(this.#walk);
        break;
      case 'counter': {
        const start = b.value === undefined ? b.min : Number(b.value);
        const span = b.max - b.min + (b.property.type === 'int' ? 1 : 0);
        const raw = start + k * b.step;
        this.current = this.#format(span > 0 ? b.min + ((((raw - b.min) % span) + span) % span) : raw);
        break;
      }
      case 'follow': {
        const target = Number(peer(b.follows ?? ''));
        if (Number.isFinite(target)) this.#walk += (target - this.#walk) * b.rate;
        this.current = this.#format(this.#walk + jitter());
        break;
      }
    }
    return this.current;
  }
}

function normalize(property: MapperProperty, value: string): string {
  const parsed = parseDesired(property, value);
  if (typeof parsed === 'number') return property.type === 'int' ? String(parsed) : formatNumber(parsed);
  return String(parsed);
}

class VirtualSession implements MapperSession {
  readonly #device: MapperDevice;
  readonly #sink: MapperSink;
  readonly #config: VirtualConfig;
  readonly #sims: Map<string, Simulated>;
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Writes made during a simulated outage, applied when it ends (the latest per property wins). */
  readonly #pending = new Map<string, string>();
  #online = true;
  #closed = false;

  constructor(device: MapperDevice, sink: MapperSink, config: VirtualConfig, behaviours: VirtualBehaviour[]) {
    this.#device = device;
    this.#sink = sink;
    this.#config = config;
    this.#sims = new Map(behaviours.map((b) => [b.property.name, new Simulated(b, config.seed)]));
  }

  start(): void {
    this.#sink.state('online', new Date());
    for (const sim of this.#sims.values()) {
      const desired = sim.b.property.desired;
      if (sim.b.property.accessMode === 'ReadWrite' && desired !== undefined) {
        try {
          normalize(sim.b.property, desired);
        } catch (err) {
          this.#sink.error(
            `Desired value ${JSON.stringify(desired)} not applied: ${(err as Error).message}`,
            sim.b.property.name,
          );
        }
      }
      this.#every(sim.b.cycleMs, 0, () => this.#tick(sim));
    }
    if (this.#config.offlineEveryMs > 0) this.#after(this.#config.offlineEveryMs, () => this.#outage());
  }

  #after(ms: number, fn: () => void): void {
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#closed) fn();
    }, ms);
    this.#timers.add(timer);
  }

  #every(ms: number, first: number, fn: () => void): void {
    this.#after(first, () => {
      fn();
      this.#every(ms, ms, fn);
    });
  }

  #tick(sim: Simulated): void {
    if (!this.#online) return;
    const value = sim.next((name) => this.#sims.get(name)?.current);
    this.#sink.reported(sim.b.property.name, value, new Date());
  }

  #outage(): void {
    this.#online = false;
    this.#sink.state('offline', new Date());
    this.#after(this.#config.offlineForMs, () => {
      this.#online = true;
      this.#sink.state('online', new Date());
      for (const [name, value] of this.#pending) {
        this.#pending.delete(name);
        this.#apply(name, value);
      }
      this.#after(this.#config.offlineEveryMs, () => this.#outage());
    });
  }

  #apply(name: string, value: string): void {
    const sim = this.#sims.get(name);
    if (sim === undefined) return;
    sim.current = normalize(sim.b.property, value);
    this.#sink.reported(name, sim.current, new Date());
  }

  async write(property: string, value: string): Promise<void> {
    const sim = this.#sims.get(property);
    if (sim === undefined)
      throw writeRefused(
        property,
        `Device ${this.#device.namespace}/${this.#device.name} has no property ${property}`,
        value,
      );
    if (sim.b.property.accessMode !== 'ReadWrite')
      throw writeRefused(property, `Property ${property} is ReadOnly`, value);
    normalize(sim.b.property, value); // refuses bad values before anything changes
    if (this.#closed)
      throw new KedgeError('KEDGE_MAPPER_DEVICE_OFFLINE', `Virtual device ${this.#device.name} is closed`);
    if (!this.#online) {
      this.#pending.set(property, value);
      throw new KedgeError(
        'KEDGE_MAPPER_DEVICE_OFFLINE',
        `Virtual device ${this.#device.namespace}/${this.#device.name} is offline (simulated outage); ${property} is written when it is back`,
        { context: { property, value } },
      );
    }
    this.#apply(property, value);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}

/** The `virtual` mapper: a simulated device. */
export const virtualMapper: Mapper = {
  protocol: 'virtual',
  validate(device: MapperDevice): string[] {
    return resolveVirtualDevice(device).problems;
  },
  async open(device: MapperDevice, sink: MapperSink): Promise<MapperSession> {
    const { config, behaviours, problems } = resolveVirtualDevice(device);
    if (problems.length > 0)
      throw new KedgeError(
        'KEDGE_MAPPER_INVALID',
        `Device ${device.namespace}/${device.name} cannot be opened by the virtual mapper: ${problems.join('; ')}`,
        { context: { device: `${device.namespace}/${device.name}`, problems } },
      );
    const session = new VirtualSession(device, sink, config, behaviours);
    session.start();
    return session;
  },
};
