/**
 * A Modbus TCP client of our own (no native bindings, so it installs on any agent): MBAP framing over
 * node:net, function codes 1-6, 15 and 16, exception responses as errors, transaction ids, per-request
 * timeouts, a bounded number of requests in flight, and reconnection with backoff.
 * The codec functions are pure and exported so tests and fuzzers can drive them without a socket.
 */
import { connect, type Socket } from 'node:net';
import { KedgeError } from '../../lib/errors.ts';

export const FunctionCode = {
  ReadCoils: 1,
  ReadDiscreteInputs: 2,
  ReadHoldingRegisters: 3,
  ReadInputRegisters: 4,
  WriteSingleCoil: 5,
  WriteSingleRegister: 6,
  WriteMultipleCoils: 15,
  WriteMultipleRegisters: 16,
} as const;
export type FunctionCode = (typeof FunctionCode)[keyof typeof FunctionCode];

/** Names of the exception codes of the Modbus application protocol specification. */
export const ExceptionNames: Readonly<Record<number, string>> = {
  1: 'illegal function',
  2: 'illegal data address',
  3: 'illegal data value',
  4: 'server device failure',
  5: 'acknowledge',
  6: 'server device busy',
  8: 'memory parity error',
  10: 'gateway path unavailable',
  11: 'gateway target device failed to respond',
};

/** One request; `fc` says which. Addresses are 0-based protocol addresses (0..65535). */
export type ModbusRequest =
  | { readonly fc: 1 | 2 | 3 | 4; readonly address: number; readonly quantity: number }
  | { readonly fc: 5; readonly address: number; readonly value: boolean }
  | { readonly fc: 6; readonly address: number; readonly value: number }
  | { readonly fc: 15; readonly address: number; readonly values: readonly boolean[] }
  | { readonly fc: 16; readonly address: number; readonly values: readonly number[] };

/** Bits for function codes 1 and 2, 16-bit register values for 3 and 4, nothing for writes. */
export type ModbusResult = boolean[] | number[] | undefined;

/** One application data unit read off the wire. */
export interface Adu {
  readonly transactionId: number;
  readonly unitId: number;
  readonly pdu: Buffer;
}

const MBAP_LENGTH = 7;
/** The largest PDU the specification allows (an ADU of 260 bytes). */
const MAX_PDU = 253;
/** Quantity limits per function code (specification section 6). */
const LIMITS = { 1: 2000, 2: 2000, 3: 125, 4: 125, 15: 1968, 16: 123 } as const;

function requestInvalid(message: string, context: Record<string, unknown>): KedgeError {
  return new KedgeError('KEDGE_MODBUS_REQUEST_INVALID', message, { context });
}

function frameInvalid(message: string, context: Record<string, unknown> = {}): KedgeError {
  return new KedgeError('KEDGE_MODBUS_FRAME_INVALID', message, { context });
}

function checkRange(fc: number, address: number, quantity: number, max: number): void {
  if (!Number.isInteger(address) || address < 0 || address > 0xffff)
    throw requestInvalid(`Modbus address must be an integer from 0 to 65535, got ${address}`, {
      fc,
      address,
    });
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > max)
    throw requestInvalid(`Modbus function ${fc} quantity must be from 1 to ${max}, got ${quantity}`, {
      fc,
      quantity,
    });
  if (address + quantity > 0x10000)
    throw requestInvalid(`Modbus range ${address}+${quantity} runs past address 65535`, {
      fc,
      address,
      quantity,
    });
}

function checkRegister(value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff)
    throw requestInvalid(`Modbus register value must be an integer from 0 to 65535, got ${value}`, { value });
}

/** Encodes a request PDU (function code and data); throws KEDGE_MODBUS_REQUEST_INVALID for out-of-range input. */
export function encodeRequestPdu(req: ModbusRequest): Buffer {
  switch (req.fc) {
    case 1:
    case 2:
    case 3:
    case 4: {
      checkRange(req.fc, req.address, req.quantity, LIMITS[req.fc]);
      const pdu = Buffer.alloc(5);
      pdu.writeUInt8(req.fc, 0);
      pdu.writeUInt16BE(req.address, 1);
      pdu.writeUInt16BE(req.quantity, 3);
      return pdu;
    }
    case 5:
    case 6: {
      checkRange(req.fc, req.address, 1, 1);
      const pdu = Buffer.alloc(5);
      pdu.writeUInt8(req.fc, 0);
      pdu.writeUInt16BE(req.address, 1);
      if (req.fc === 5) pdu.writeUInt16BE(req.value ? 0xff00 : 0x0000, 3);
      else {
        checkRegister(req.value);
        pdu.writeUInt16BE(req.value, 3);
      }
      return pdu;
    }
    case 15: {
      const n = req.values.length;
      checkRange(15, req.address, n, LIMITS[15]);
      const bytes = Math.ceil(n / 8);
      const pdu = Buffer.alloc(6 + bytes);
      pdu.writeUInt8(15, 0);
      pdu.writeUInt16BE(req.address, 1);
      pdu.writeUInt16BE(n, 3);
      pdu.writeUInt8(bytes, 5);
      req.values.forEach((bit, i) => {
        if (bit) pdu[6 + (i >> 3)]! |= 1 << (i & 7);
      });
      return pdu;
    }
    case 16: {
      const n = req.values.length;
      checkRange(16, req.address, n, LIMITS[16]);
      const pdu = Buffer.alloc(6 + 2 * n);
      pdu.writeUInt8(16, 0);
      pdu.writeUInt16BE(req.address, 1);
      pdu.writeUInt16BE(n, 3);
      pdu.writeUInt8(2 * n, 5);
      req.values.forEach((v, i) => {
        checkRegister(v);
        pdu.writeUInt16BE(v, 6 + 2 * i);
      });
      return pdu;
    }
  }
}

/** Wraps a PDU in an MBAP header. */
export function encodeAdu(transactionId: number, unitId: number, pdu: Buffer): Buffer {
  if (pdu.length < 1 || pdu.length > MAX_PDU)
    throw frameInvalid(`Modbus PDU length ${pdu.length} is out of range`);
  const adu = Buffer.alloc(MBAP_LENGTH + pdu.length);
  adu.writeUInt16BE(transactionId & 0xffff, 0);
  adu.writeUInt16BE(0, 2);
  adu.writeUInt16BE(pdu.length + 1, 4);
  adu.writeUInt8(unitId & 0xff, 6);
  pdu.copy(adu, MBAP_LENGTH);
  return adu;
}

/**
 * Splits a TCP byte stream into ADUs. Throws KEDGE_MODBUS_FRAME_INVALID when the stream cannot be Modbus
 * (protocol id not 0, length field out of range); the connection must then be dropped, since the
 * stream has lost its framing.
 */
export class AduReader {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Adu[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const out: Adu[] = [];
    while (this.#buffer.length >= MBAP_LENGTH) {
      const protocolId = this.#buffer.readUInt16BE(2);
      const length = this.#buffer.readUInt16BE(4);
      if (protocolId !== 0)
        throw frameInvalid(`Modbus TCP protocol id must be 0, got ${protocolId}`, { protocolId });
      if (length < 2 || length > MAX_PDU + 1)
        throw frameInvalid(`Modbus TCP length field must be from 2 to ${MAX_PDU + 1}, got ${length}`, {
          length,
        });
      const total = 6 + length;
      if (this.#buffer.length < total) break;
      out.push({
        transactionId: this.#buffer.readUInt16BE(0),
        unitId: this.#buffer.readUInt8(6),
        pdu: Buffer.from(this.#buffer.subarray(MBAP_LENGTH, total)),
      });
      this.#buffer = this.#buffer.subarray(total);
    }
    return out;
  }

  /** Bytes received that do not make a whole ADU yet. */
  get buffered(): number {
    return this.#buffer.length;
  }
}

/**
 * Checks a response PDU against its request and returns its data. An exception response becomes
 * KEDGE_MODBUS_EXCEPTION (context.exceptionCode); a response that does not fit the request becomes
 * KEDGE_MODBUS_FRAME_INVALID.
 */
export function decodeResponsePdu(req: ModbusRequest, pdu: Buffer): ModbusResult {
  const fc = pdu[0];
  if (fc === undefined) throw frameInvalid('Modbus response PDU is empty');
  if (fc === (req.fc | 0x80)) {
    const code = pdu[1];
    if (code === undefined || pdu.length !== 2)
      throw frameInvalid(
        `Modbus exception response for function ${req.fc} must be 2 bytes, got ${pdu.length}`,
      );
    const name = ExceptionNames[code] ?? 'unknown exception';
    return throwException(req, code, name);
  }
  if (fc !== req.fc) throw frameInvalid(`Modbus response has function ${fc}, expected ${req.fc}`, { fc });
  switch (req.fc) {
    case 1:
    case 2: {
      const bytes = Math.ceil(req.quantity / 8);
      expectLength(req.fc, pdu, 2 + bytes);
      if (pdu[1] !== bytes) throw frameInvalid(`Modbus byte count must be ${bytes}, got ${pdu[1]}`);
      const bits: boolean[] = [];
      for (let i = 0; i < req.quantity; i++) bits.push(((pdu[2 + (i >> 3)]! >> (i & 7)) & 1) === 1);
      return bits;
    }
    case 3:
    case 4: {
      expectLength(req.fc, pdu, 2 + 2 * req.quantity);
      if (pdu[1] !== 2 * req.quantity)
        throw frameInvalid(`Modbus byte count must be ${2 * req.quantity}, got ${pdu[1]}`);
      const regs: number[] = [];
      for (let i = 0; i < req.quantity; i++) regs.push(pdu.readUInt16BE(2 + 2 * i));
      return regs;
    }
    case 5:
    case 6: {
      expectLength(req.fc, pdu, 5);
      const expected = encodeRequestPdu(req);
      if (!pdu.equals(expected))
        throw frameInvalid(`Modbus write response for function ${req.fc} does not echo the request`);
      return undefined;
    }
    case 15:
    case 16: {
      expectLength(req.fc, pdu, 5);
      const address = pdu.readUInt16BE(1);
      const quantity = pdu.readUInt16BE(3);
      if (address !== req.address || quantity !== req.values.length)
        throw frameInvalid(
          `Modbus write response names ${address}+${quantity}, expected ${req.address}+${req.values.length}`,
        );
      return undefined;
    }
  }
}

function expectLength(fc: number, pdu: Buffer, length: number): void {
  if (pdu.length !== length)
    throw frameInvalid(`Modbus response for function ${fc} must be ${length} bytes, got ${pdu.length}`, {
      fc,
      length: pdu.length,
    });
}

function throwException(req: ModbusRequest, code: number, name: string): never {
  throw new KedgeError(
    'KEDGE_MODBUS_EXCEPTION',
    `Modbus device answered function ${req.fc} at address ${req.address} with exception ${code} (${name})`,
    { context: { fc: req.fc, address: req.address, exceptionCode: code } },
  );
}

export interface ModbusTcpClientOptions {
  readonly host: string;
  readonly port: number;
  /** The unit identifier (slave id) put in every request; default 1. */
  readonly unitId?: number;
  /** How long a connect or a request may take before it fails; default 1000 ms. */
  readonly timeoutMs?: number;
  /** Requests sent before their answers arrive (pipelining); default 1, which every device handles. */
  readonly maxInFlight?: number;
  /** First and largest wait between failed connection attempts; defaults 100 ms and 5000 ms. */
  readonly backoffMinMs?: number;
  readonly backoffMaxMs?: number;
}

interface Pending {
  readonly req: ModbusRequest;
  readonly resolve: (result: ModbusResult) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

function disconnected(message: string, context: Record<string, unknown>, cause?: unknown): KedgeError {
  return new KedgeError(
    'KEDGE_MODBUS_DISCONNECTED',
    message,
    cause === undefined ? { context } : { cause, context },
  );
}

/**
 * A Modbus TCP client for one device. It connects on the first request, reconnects after the connection
 * breaks (at once the first time, then with exponential backoff while attempts fail; a request made
 * during the wait fails at once with KEDGE_MODBUS_DISCONNECTED), and drops the connection after a
 * timeout so a late answer can never be taken for the answer to a later request.
 */
export class ModbusTcpClient {
  readonly host: string;
  readonly port: number;
  readonly unitId: number;
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  readonly #backoffMinMs: number;
  readonly #backoffMaxMs: number;
  #socket: Socket | undefined;
  #connecting: Promise<Socket> | undefined;
  #failures = 0;
  #retryAt = 0;
  #closed = false;
  #nextTransaction = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #waiting: { resolve: () => void; reject: (err: Error) => void }[] = [];
  #inFlight = 0;

  constructor(options: ModbusTcpClientOptions) {
    const problems: string[] = [];
    if (typeof options.host !== 'string' || options.host === '')
      problems.push('host must be a non-empty string');
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535)
      problems.push(`port must be an integer from 1 to 65535, got ${options.port}`);
    const unitId = options.unitId ?? 1;
    if (!Number.isInteger(unitId) || unitId < 0 || unitId > 255)
      problems.push(`unitId must be an integer from 0 to 255, got ${unitId}`);
    const timeoutMs = options.timeoutMs ?? 1000;
    if (!(timeoutMs > 0)) problems.push(`timeoutMs must be positive, got ${timeoutMs}`);
    const maxInFlight = options.maxInFlight ?? 1;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1 || maxInFlight > 1000)
      problems.push(`maxInFlight must be an integer from 1 to 1000, got ${maxInFlight}`);
    if (problems.length > 0)
      throw new KedgeError(
        'KEDGE_CONFIG_INVALID',
        `Modbus TCP client options are invalid: ${problems.join('; ')}`,
      );
    this.host = options.host;
    this.port = options.port;
    this.unitId = unitId;
    this.timeoutMs = timeoutMs;
    this.maxInFlight = maxInFlight;
    this.#backoffMinMs = options.backoffMinMs ?? 100;
    this.#backoffMaxMs = options.backoffMaxMs ?? 5000;
  }

  /** True while a connection is open. */
  get connected(): boolean {
    return this.#socket !== undefined;
  }

  readCoils(address: number, quantity: number): Promise<boolean[]> {
    return this.request({ fc: 1, address, quantity }) as Promise<boolean[]>;
  }
  readDiscreteInputs(address: number, quantity: number): Promise<boolean[]> {
    return this.request({ fc: 2, address, quantity }) as Promise<boolean[]>;
  }
  readHoldingRegisters(address: number, quantity: number): Promise<number[]> {
    return this.request({ fc: 3, address, quantity }) as Promise<number[]>;
  }
  readInputRegisters(address: number, quantity: number): Promise<number[]> {
    return this.request({ fc: 4, address, quantity }) as Promise<number[]>;
  }
  async writeCoil(address: number, value: boolean): Promise<void> {
    await this.request({ fc: 5, address, value });
  }
  async writeRegister(address: number, value: number): Promise<void> {
    await this.request({ fc: 6, address, value });
  }
  async writeCoils(address: number, values: readonly boolean[]): Promise<void> {
    await this.request({ fc: 15, address, values });
  }
  async writeRegisters(address: number, values: readonly number[]): Promise<void> {
    await this.request({ fc: 16, address, values });
  }

  /** Sends one request and resolves with its checked result. */
  async request(req: ModbusRequest): Promise<ModbusResult> {
    const pdu = encodeRequestPdu(req); // bad arguments fail before touching the connection
    await this.#acquire();
    try {
      const socket = await this.#connect();
      return await this.#send(socket, req, pdu);
    } finally {
      this.#release();
    }
  }

  /** Fails every request still waiting and closes the connection; the client cannot be used again. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const err = disconnected(`Modbus client for ${this.host}:${this.port} is closed`, this.#where());
    for (const w of this.#waiting.splice(0)) w.reject(err);
    const socket = this.#socket;
    this.#drop(err);
    if (socket !== undefined && !socket.closed)
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  }

  #where(): Record<string, unknown> {
    return { host: this.host, port: this.port, unitId: this.unitId };
  }

  #acquire(): Promise<void> {
    if (this.#closed)
      return Promise.reject(
        disconnected(`Modbus client for ${this.host}:${this.port} is closed`, this.#where()),
      );
    if (this.#inFlight < this.maxInFlight) {
      this.#inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next.resolve();
    else this.#inFlight--;
  }

  #connect(): Promise<Socket> {
    if (this.#closed)
      return Promise.reject(
        disconnected(`Modbus client for ${this.host}:${this.port} is closed`, this.#where()),
      );
    if (this.#socket !== undefined) return Promise.resolve(this.#socket);
    if (this.#connecting !== undefined) return this.#connecting;
    const wait = this.#retryAt - Date.now();
    if (wait > 0)
      return Promise.reject(
        disconnected(
          `Modbus device ${this.host}:${this.port} is unreachable; next connection attempt in ${wait} ms`,
          this.#where(),
        ),
      );
    this.#connecting = new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host: this.host, port: this.port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy(new Error(`connection timed out after ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        this.#connecting = undefined;
        this.#failures++;
        const delay = Math.min(this.#backoffMaxMs, this.#backoffMinMs * 2 ** (this.#failures - 1));
        this.#retryAt = Date.now() + delay;
        reject(
          disconnected(
            `Modbus device ${this.host}:${this.port} cannot be reached: ${err.message}`,
            this.#where(),
            err,
          ),
        );
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        this.#connecting = undefined;
        this.#failures = 0;
        this.#retryAt = 0;
        if (this.#closed) {
          socket.destroy();
          reject(disconnected(`Modbus client for ${this.host}:${this.port} is closed`, this.#where()));
          return;
        }
        this.#attach(socket);
        resolve(socket);
      });
    });
    return this.#connecting;
  }

  #attach(socket: Socket): void {
    this.#socket = socket;
    const reader = new AduReader();
    socket.on('data', (chunk: Buffer) => {
      let adus: Adu[];
      try {
        adus = reader.push(chunk);
      } catch (err) {
        this.#drop(err as Error);
        return;
      }
      for (const adu of adus) this.#answer(adu);
    });
    socket.on('error', (err) => {
      this.#drop(
        disconnected(
          `Modbus connection to ${this.host}:${this.port} failed: ${err.message}`,
          this.#where(),
          err,
        ),
      );
    });
    socket.on('close', () => {
      this.#drop(disconnected(`Modbus connection to ${this.host}:${this.port} closed`, this.#where()));
    });
  }

  #answer(adu: Adu): void {
    const pending = this.#pending.get(adu.transactionId);
    if (pending === undefined) {
      this.#drop(
        frameInvalid(
          `Modbus response has transaction id ${adu.transactionId}, which no request is waiting for`,
          {
            transactionId: adu.transactionId,
          },
        ),
      );
      return;
    }
    this.#pending.delete(adu.transactionId);
    clearTimeout(pending.timer);
    if (adu.unitId !== this.unitId) {
      pending.reject(frameInvalid(`Modbus response is from unit ${adu.unitId}, expected ${this.unitId}`));
      return;
    }
    try {
      pending.resolve(decodeResponsePdu(pending.req, adu.pdu));
    } catch (err) {
      pending.reject(err as Error);
    }
  }

  #send(socket: Socket, req: ModbusRequest, pdu: Buffer): Promise<ModbusResult> {
    let id = this.#nextTransaction;
    while (this.#pending.has(id)) id = (id + 1) & 0xffff;
    this.#nextTransaction = (id + 1) & 0xffff;
    return new Promise<ModbusResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new KedgeError(
            'KEDGE_MODBUS_TIMEOUT',
            `Modbus device ${this.host}:${this.port} did not answer function ${req.fc} at address ${req.address} within ${this.timeoutMs} ms`,
            { context: { ...this.#where(), fc: req.fc, address: req.address } },
          ),
        );
        // A late answer must not be matched to a later request: start over on a new connection.
        this.#drop(
          disconnected(`Modbus connection to ${this.host}:${this.port} reset after a timeout`, this.#where()),
        );
      }, this.timeoutMs);
      this.#pending.set(id, { req, resolve, reject, timer });
      socket.write(encodeAdu(id, this.unitId, pdu));
    });
  }

  /** Closes the connection and fails every request waiting for an answer with `err`. */
  #drop(err: Error): void {
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket !== undefined) {
      socket.removeAllListeners('data');
      socket.removeAllListeners('close');
      socket.removeAllListeners('error');
      socket.on('error', () => {});
      socket.destroy();
    }
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      clearTimeout(p.timer);
      p.reject(err);
    }
  }
}
