/**
 * Mapper benchmark: `node bench/mappers.ts [N]` (N reads per client benchmark, default 20,000).
 *
 * Against a local Modbus TCP server (modbus-serial's ServerTCP, a dev dependency) in a child process,
 * so CPU figures are the client's alone: kedge's Modbus TCP client reading one holding register awaited
 * one at a time, then 8 in flight, then 125 registers per read; modbus-serial's own client as a
 * reference; and the modbus mapper polling 100 adjacent properties every 10 ms (one batched read per
 * cycle). Prints a table and writes bench/results/mappers.json.
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { modbusMapper } from '../src/agent/mappers/modbus.ts';
import { ModbusTcpClient } from '../src/agent/mappers/modbus-tcp.ts';
import type { MapperProperty } from '../src/agent/mappers/types.ts';
import { createRecorder } from './lib/measure.ts';

const N = Number(process.argv[2] ?? 20_000);

const { rows, record } = createRecorder(52);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

const port = await freePort();
// The device: 1000 holding registers, register i holding i.
const device = spawn(
  process.execPath,
  [
    '--input-type=module',
    '-e',
    `import { ServerTCP } from 'modbus-serial';
     const holding = Array.from({ length: 1000 }, (_, i) => i);
     const server = new ServerTCP({
       getHoldingRegister: (a) => holding[a] ?? 0,
       getMultipleHoldingRegisters: (a, n) => holding.slice(a, a + n),
     }, { host: '127.0.0.1', port: ${port}, unitID: 1 });
     server.on('initialized', () => console.log('ready'));`,
  ],
  { cwd: join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] },
);
await new Promise<void>((resolve, reject) => {
  device.stdout.once('data', () => resolve());
  device.once('exit', (code) => reject(new Error(`Modbus server exited with ${code}`)));
});

interface ReferenceClient {
  connectTCP(host: string, options: { port: number }): Promise<void>;
  setID(id: number): void;
  readHoldingRegisters(address: number, length: number): Promise<unknown>;
  close(cb: () => void): void;
}
const ModbusRTU = createRequire(import.meta.url)('modbus-serial') as new () => ReferenceClient;

async function timed(name: string, reads: number, fn: () => Promise<void>): Promise<number> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  await fn();
  const ms = performance.now() - start;
  const used = process.cpuUsage(cpu);
  record(`${name}: reads/s`, (reads / ms) * 1000, 'reads/s');
  record(`${name}: client CPU per read`, (used.user + used.system) / reads, 'µs');
  return ms;
}

const client = new ModbusTcpClient({ host: '127.0.0.1', port, timeoutMs: 5000 });
await client.readHoldingRegisters(0, 1); // connect
await timed('kedge client, 1 register, 1 in flight', N, async () => {
  for (let i = 0; i < N; i++) await client.readHoldingRegisters(i % 1000, 1);
});
await client.close();

const pipelined = new ModbusTcpClient({ host: '127.0.0.1', port, timeoutMs: 5000, maxInFlight: 8 });
await pipelined.readHoldingRegisters(0, 1);
await timed('kedge client, 1 register, 8 in flight', N, async () => {
  const worker = async (w: number) => {
    for (let i = w; i < N; i += 8) await pipelined.readHoldingRegisters(i % 1000, 1);
  };
  await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
});
await pipelined.close();

const wide = new ModbusTcpClient({ host: '127.0.0.1', port, timeoutMs: 5000 });
const wideReads = Math.ceil(N / 10);
const wideMs = await timed('kedge client, 125 registers per read', wideReads, async () => {
  for (let i = 0; i < wideReads; i++) await wide.readHoldingRegisters((i * 125) % 875, 125);
});
record(
  'kedge client, 125 registers per read: registers/s',
  ((wideReads * 125) / wideMs) * 1000,
  'registers/s',
);
await wide.close();

const reference = new ModbusRTU();
await reference.connectTCP('127.0.0.1', { port });
reference.setID(1);
await timed('modbus-serial client (reference), 1 register', N, async () => {
  for (let i = 0; i < N; i++) await reference.readHoldingRegisters(i % 1000, 1);
});
await new Promise<void>((resolve) => reference.close(() => resolve()));

// The mapper: 100 int properties on adjacent holding registers, 10 ms cycle: one batched read per cycle.
const properties: MapperProperty[] = Array.from({ length: 100 }, (_, i) => ({
  name: `p${i}`,
  type: 'int',
  accessMode: 'ReadOnly',
  collectCycleMs: 10,
  visitor: { register: 'HoldingRegister', offset: i },
}));
let readings = 0;
const cpu = process.cpuUsage();
const start = performance.now();
const session = await modbusMapper.open(
  { namespace: 'bench', name: 'plc', protocol: 'modbus', config: { ip: '127.0.0.1', port }, properties },
  { reported: () => readings++, state: () => {}, error: (m) => console.error(m) },
);
await new Promise((resolve) => setTimeout(resolve, 3000));
await session.close();
const seconds = (performance.now() - start) / 1000;
const used = process.cpuUsage(cpu);
record('modbus mapper, 100 properties @10 ms: readings/s', readings / seconds, 'readings/s');
record(
  'modbus mapper, 100 properties @10 ms: client CPU',
  ((used.user + used.system) / 1e6 / seconds) * 100,
  '% of a core',
);

device.kill();
const results = join(import.meta.dirname, 'results');
await mkdir(results, { recursive: true });
await writeFile(
  join(results, 'mappers.json'),
  JSON.stringify(
    { date: new Date().toISOString(), cpus: cpus().length, node: process.version, N, rows },
    null,
    2,
  ),
);
