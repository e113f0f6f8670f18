/**
 * The mappers an agent knows, by protocol name: the built-in ones (modbus, virtual) plus any a user
 * registers. The device manager looks a device's protocol up here and opens a session with it.
 */
import { KedgeError } from '../../lib/errors.ts';
import { modbusMapper } from './modbus.ts';
import type { Mapper, MapperDevice, MapperSession, MapperSink } from './types.ts';
import { virtualMapper } from './virtual.ts';

export type { Mapper, MapperDevice, MapperProperty, MapperSession, MapperSink } from './types.ts';

/** Protocol names: what KubeEdge accepts for protocolName (letters, digits, '-', '_', '.'). */
const PROTOCOL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** A new registry holding the built-in mappers: `modbus` (Modbus TCP) and `virtual` (a simulated device). */
export function builtinMappers(): Map<string, Mapper> {
  return new Map<string, Mapper>([
    [modbusMapper.protocol, modbusMapper],
    [virtualMapper.protocol, virtualMapper],
  ]);
}

/**
 * Adds a user's mapper to a registry. Throws KEDGE_MAPPER_DUPLICATE if the protocol is taken (pass
 * `replace: true` to override a built-in on purpose) and KEDGE_MAPPER_INVALID for a malformed mapper.
 */
export function registerMapper(
  registry: Map<string, Mapper>,
  mapper: Mapper,
  options: { readonly replace?: boolean } = {},
): void {
  if (
    typeof mapper?.protocol !== 'string' ||
    !PROTOCOL_NAME.test(mapper.protocol) ||
    typeof mapper.validate !== 'function' ||
    typeof mapper.open !== 'function'
  )
    throw new KedgeError(
      'KEDGE_MAPPER_INVALID',
      `A mapper needs a protocol name (letters, digits, '.', '_', '-') and validate and open functions, got protocol ${JSON.stringify(mapper?.protocol)}`,
    );
  if (registry.has(mapper.protocol) && options.replace !== true)
    throw new KedgeError(
      'KEDGE_MAPPER_DUPLICATE',
      `A mapper for protocol ${mapper.protocol} is already registered`,
      {
        context: { protocol: mapper.protocol },
      },
    );
  registry.set(mapper.protocol, mapper);
}

/**
 * Finds the device's mapper, validates the device and opens a session: the one call a device manager
 * needs. Throws KEDGE_MAPPER_UNKNOWN_PROTOCOL or KEDGE_MAPPER_INVALID (context.problems lists them all).
 */
export async function openDevice(
  registry: ReadonlyMap<string, Mapper>,
  device: MapperDevice,
  sink: MapperSink,
): Promise<MapperSession> {
  const id = `${device.namespace}/${device.name}`;
  const mapper = registry.get(device.protocol);
  if (mapper === undefined)
    throw new KedgeError(
      'KEDGE_MAPPER_UNKNOWN_PROTOCOL',
      `Device ${id} uses protocol ${JSON.stringify(device.protocol)}, which no mapper serves (known: ${[...registry.keys()].join(', ')})`,
      { context: { device: id, protocol: device.protocol } },
    );
  const problems = mapper.validate(device);
  if (problems.length > 0)
    throw new KedgeError(
      'KEDGE_MAPPER_INVALID',
      `Device ${id} cannot be opened by the ${device.protocol} mapper: ${problems.join('; ')}`,
      { context: { device: id, protocol: device.protocol, problems } },
    );
  return mapper.open(device, sink);
}
