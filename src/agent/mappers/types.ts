/**
 * The mapper seam: code that speaks a device protocol (Modbus TCP, a simulated device, a user's own) on one
 * side and property values on the other. The agent's device manager turns Device + DeviceModel objects
 * into `MapperDevice`s, opens one session per device with the mapper registered for its protocol, feeds
 * the readings into the device twin (reported values, device state) and hands desired values of
 * ReadWrite properties to `write`. Values travel as strings, as in KubeEdge twins; `type` says how to read
 * them. A user writes a mapper in a few dozen lines: implement `Mapper`, register it by protocol name.
 */

export type PropertyType = 'int' | 'float' | 'double' | 'string' | 'boolean' | 'bytes';
export type AccessMode = 'ReadWrite' | 'ReadOnly';
export type DeviceState = 'online' | 'offline' | 'unknown';

export interface MapperProperty {
  readonly name: string;
  readonly type: PropertyType;
  readonly accessMode: AccessMode;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly unit?: string;
  /** Milliseconds between reads of this property (the device property's collectCycle); 0 means the mapper's default. */
  readonly collectCycleMs: number;
  /** The protocol-specific address of this property (visitors.configData), e.g. Modbus register and offset. */
  readonly visitor: Readonly<Record<string, unknown>>;
  /** The desired value the cloud wants, if any (written on open and whenever it changes). */
  readonly desired?: string;
}

export interface MapperDevice {
  readonly namespace: string;
  readonly name: string;
  /** protocol.protocolName, e.g. 'modbus' or 'virtual'. */
  readonly protocol: string;
  /** protocol.configData, e.g. Modbus host, port and unit id. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly properties: readonly MapperProperty[];
}

/** Where a session reports what it reads. */
export interface MapperSink {
  /** A property's current value as read from the device. */
  reported(property: string, value: string, at: Date): void;
  /** Connectivity: online when the device answers, offline when it does not. */
  state(state: DeviceState, at: Date): void;
  /** A problem worth a log line and an event (bad config, a failed write); the session keeps going. */
  error(message: string, property?: string): void;
}

export interface MapperSession {
  /** Writes a desired value to a ReadWrite property; rejects with a clear error when it cannot. */
  write(property: string, value: string): Promise<void>;
  /** Stops polling and closes connections. */
  close(): Promise<void>;
}

export interface Mapper {
  /** The protocolName it serves. */
  readonly protocol: string;
  /** Checks the device's config and visitors; a non-empty list means the device cannot be opened. */
  validate(device: MapperDevice): string[];
  /** Starts polling the device; readings go to `sink`. Reconnects by itself after the device goes away. */
  open(device: MapperDevice, sink: MapperSink): Promise<MapperSession>;
}
