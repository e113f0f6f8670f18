/**
 * The device manager: for each device bound to this node whose protocol a mapper serves, one mapper
 * session. Readings and device state go into the twin store exactly as if published on twin/update and
 * state/update; desired values of ReadWrite properties (from the cloud or an MQTT client) are checked
 * against the model and written through the session, one write at a time per device. A device whose
 * protocol no mapper knows stays a twin over MQTT (a user's own program speaks for it). A spec change
 * (protocol config, visitors, model) closes the session and opens a new one.
 */
import type { DeviceView, ModelProperty } from '../../api/devices.ts';
import { valueError } from '../../api/devices.ts';
import type { Logger } from '../../lib/log.ts';
import type { Mapper, MapperDevice, MapperProperty, MapperSession, PropertyType } from '../mappers/types.ts';
import type { TwinEvent, TwinManager } from './twins.ts';

export interface DeviceManagerOptions {
  readonly twins: TwinManager;
  /** Mappers by protocol name. */
  readonly mappers: ReadonlyMap<string, Mapper>;
  readonly logger: Logger;
}

interface Running {
  /** The device as the session was opened with, without desired values: a change means reopen. */
  readonly fingerprint: string;
  readonly device: MapperDevice;
  session: MapperSession | undefined;
  /** Opening, writes and closing of one device run one after another. */
  chain: Promise<void>;
  closed: boolean;
}

const TYPES: Record<string, PropertyType> = {
  INT: 'int',
  FLOAT: 'float',
  DOUBLE: 'double',
  STRING: 'string',
  BOOLEAN: 'boolean',
  BYTES: 'bytes',
  STREAM: 'bytes',
};

/** Device + model as a mapper sees them. Properties the model does not declare are ReadOnly strings. */
export function toMapperDevice(
  view: DeviceView,
  model: readonly ModelProperty[],
  desired: (property: string) => string | undefined,
): MapperDevice {
  const byName = new Map(model.map((m) => [m.name, m]));
  return {
    namespace: view.namespace,
    name: view.name,
    protocol: view.protocol ?? '',
    config: view.protocolConfig,
    properties: view.properties.map((p): MapperProperty => {
      const m = byName.get(p.name);
      const d = desired(p.name) ?? p.desired?.value;
      return {
        name: p.name,
        type: m === undefined ? 'string' : (TYPES[m.type] ?? 'string'),
        accessMode: m?.accessMode ?? 'ReadOnly',
        ...(m?.minimum === undefined ? {} : { minimum: m.minimum }),
        ...(m?.maximum === undefined ? {} : { maximum: m.maximum }),
        ...(m?.unit === undefined ? {} : { unit: m.unit }),
        collectCycleMs: p.collectCycleMs,
        visitor: p.visitor,
        ...(d === undefined ? {} : { desired: d }),
      };
    }),
  };
}

export class DeviceManager {
  readonly #o: DeviceManagerOptions;
  readonly #log: Logger;
  readonly #running = new Map<string, Running>();
  readonly #unserved = new Set<string>();
  #off: (() => void) | undefined;

  constructor(options: DeviceManagerOptions) {
    this.#o = options;
    this.#log = options.logger;
  }

  /** Opens sessions for the devices the twin store holds and follows its changes. Call after twins.start(). */
  start(): void {
    this.#off = this.#o.twins.onEvent((e) => this.#onEvent(e));
    for (const id of this.#o.twins.deviceIds()) this.#sync(id);
  }

  async stop(): Promise<void> {
    this.#off?.();
    await Promise.all([...this.#running.keys()].map((id) => this.#close(id)));
  }

  /** Devices with an open (or opening) mapper session. */
  sessions(): string[] {
    return [...this.#running.keys()];
  }

  #onEvent(e: TwinEvent): void {
    switch (e.type) {
      case 'devices':
        for (const id of e.removed) void this.#close(id);
        for (const id of e.added) this.#sync(id);
        return;
      case 'updated':
        this.#sync(`${e.namespace}/${e.name}`);
        return;
      case 'desired':
        this.#write(`${e.namespace}/${e.name}`, e.property, e.value);
        return;
    }
  }

  /** Opens, reopens or closes the session of a device to match its spec. */
  #sync(id: string): void {
    const slash = id.indexOf('/');
    const namespace = id.slice(0, slash);
    const name = id.slice(slash + 1);
    const found = this.#o.twins.device(namespace, name);
    if (found === undefined) {
      void this.#close(id);
      return;
    }
    const twin = this.#o.twins.twin(namespace, name);
    const device = toMapperDevice(found.view, found.model, (p) => twin?.twin[p]?.expected?.value);
    const fingerprint = JSON.stringify({
      ...device,
      properties: device.properties.map(({ desired: _d, ...rest }) => rest),
    });
    const current = this.#running.get(id);
    if (current !== undefined && current.fingerprint === fingerprint) return;
    if (current !== undefined) void this.#close(id);
    const mapper = this.#o.mappers.get(device.protocol);
    if (mapper === undefined) {
      if (!this.#unserved.has(id)) {
        this.#unserved.add(id);
        this.#log.info(
          { device: id, protocol: device.protocol },
          'no mapper serves this protocol; the device is a twin over MQTT only',
        );
      }
      return;
    }
    this.#unserved.delete(id);
    const problems = mapper.validate(device);
    if (problems.length > 0) {
      this.#log.error(
        { device: id, protocol: device.protocol, problems },
        'device cannot be opened by its mapper',
      );
      return;
    }
    const run: Running = {
      fingerprint,
      device,
      session: undefined,
      chain: Promise.resolve(),
      closed: false,
    };
    this.#running.set(id, run);
    const twins = this.#o.twins;
    run.chain = (async () => {
      try {
        run.session = await mapper.open(device, {
          reported: (property, value, at) => {
            if (!run.closed) twins.reportActual(namespace, name, property, value, at);
          },
          state: (state, at) => {
            if (!run.closed) twins.reportState(namespace, name, state, at);
          },
          error: (message, property) =>
            this.#log.warn({ device: id, property, message }, 'mapper reported a problem'),
        });
        if (run.closed) await run.session.close();
        else this.#log.info({ device: id, protocol: device.protocol }, 'device mapper session opened');
      } catch (err) {
        this.#log.error(
          { err, device: id, protocol: device.protocol },
          'device mapper session failed to open',
        );
      }
    })();
  }

  #write(id: string, property: string, value: string): void {
    const run = this.#running.get(id);
    if (run === undefined) return;
    const p = run.device.properties.find((x) => x.name === property);
    if (p === undefined || p.accessMode !== 'ReadWrite') {
      this.#log.warn(
        { device: id, property },
        'desired value for a property that is not ReadWrite; not written',
      );
      return;
    }
    const why = valueError(value, p.type, p);
    if (why !== undefined) {
      this.#log.warn({ device: id, property, value, reason: why }, 'desired value refused; not written');
      return;
    }
    run.chain = run.chain.then(async () => {
      if (run.closed || run.session === undefined) return;
      try {
        await run.session.write(property, value);
      } catch (err) {
        this.#log.warn({ err, device: id, property }, 'writing a desired value to the device failed');
      }
    });
  }

  async #close(id: string): Promise<void> {
    const run = this.#running.get(id);
    if (run === undefined) return;
    this.#running.delete(id);
    run.closed = true;
    await run.chain;
    try {
      await run.session?.close();
    } catch (err) {
      this.#log.warn({ err, device: id }, 'closing a mapper session failed');
    }
  }
}
