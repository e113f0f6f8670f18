import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { isKedgeError } from '../../lib/errors.ts';
import {
  AduReader,
  decodeResponsePdu,
  encodeAdu,
  encodeRequestPdu,
  type ModbusRequest,
  ModbusTcpClient,
} from './modbus-tcp.ts';

const hex = (b: Buffer) => b.toString('hex');
const bytes = (h: string) => Buffer.from(h.replace(/\s/g, ''), 'hex');

function throwsCode(fn: () => unknown, code: Parameters<typeof isKedgeError>[1], message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isKedgeError(err, code), `expected ${code}, got ${String(err)}`);
    if (message !== undefined) assert.match((err as Error).message, message);
    return true;
  });
}

describe('Modbus TCP codec', () => {
  it('encodes each request function code as the specification lays it out', () => {
    assert.equal(hex(encodeRequestPdu({ fc: 1, address: 0x13, quantity: 0x13 })), '0100130013');
    assert.equal(hex(encodeRequestPdu({ fc: 2, address: 0xc4, quantity: 0x16 })), '0200c40016');
    assert.equal(hex(encodeRequestPdu({ fc: 3, address: 0x6b, quantity: 3 })), '03006b0003');
    assert.equal(hex(encodeRequestPdu({ fc: 4, address: 8, quantity: 1 })), '0400080001');
    assert.equal(hex(encodeRequestPdu({ fc: 5, address: 0xac, value: true })), '0500acff00');
    assert.equal(hex(encodeRequestPdu({ fc: 5, address: 0xac, value: false })), '0500ac0000');
    assert.equal(hex(encodeRequestPdu({ fc: 6, address: 1, value: 3 })), '0600010003');
    const coils = [true, false, true, true, false, false, true, true, true, false];
    assert.equal(hex(encodeRequestPdu({ fc: 15, address: 0x13, values: coils })), '0f0013000a02cd01');
    assert.equal(
      hex(encodeRequestPdu({ fc: 16, address: 1, values: [0x000a, 0x0102] })),
      '100001000204000a0102',
    );
  });

  it('wraps a PDU in an MBAP header', () => {
    assert.equal(hex(encodeAdu(0x1234, 17, bytes('0300000001'))), '123400000006110300000001');
  });

  it('refuses requests out of range before sending them', () => {
    throwsCode(
      () => encodeRequestPdu({ fc: 3, address: 0, quantity: 0 }),
      'KEDGE_MODBUS_REQUEST_INVALID',
      /1 to 125/,
    );
    throwsCode(() => encodeRequestPdu({ fc: 3, address: 0, quantity: 126 }), 'KEDGE_MODBUS_REQUEST_INVALID');
    throwsCode(() => encodeRequestPdu({ fc: 1, address: 0, quantity: 2001 }), 'KEDGE_MODBUS_REQUEST_INVALID');
    throwsCode(
      () => encodeRequestPdu({ fc: 4, address: 65536, quantity: 1 }),
      'KEDGE_MODBUS_REQUEST_INVALID',
    );
    throwsCode(
      () => encodeRequestPdu({ fc: 4, address: 65535, quantity: 2 }),
      'KEDGE_MODBUS_REQUEST_INVALID',
      /past/,
    );
    throwsCode(
      () => encodeRequestPdu({ fc: 6, address: 0, value: 70000 }),
      'KEDGE_MODBUS_REQUEST_INVALID',
      /70000/,
    );
    throwsCode(
      () => encodeRequestPdu({ fc: 16, address: 0, values: [1, -1] }),
      'KEDGE_MODBUS_REQUEST_INVALID',
    );
    throwsCode(() => encodeRequestPdu({ fc: 16, address: 0, values: [] }), 'KEDGE_MODBUS_REQUEST_INVALID');
  });

  it('decodes read responses', () => {
    assert.deepEqual(decodeResponsePdu({ fc: 1, address: 0, quantity: 10 }, bytes('0102cd01')), [
      true,
      false,
      true,
      true,
      false,
      false,
      true,
      true,
      true,
      false,
    ]);
    assert.deepEqual(
      decodeResponsePdu({ fc: 3, address: 0, quantity: 2 }, bytes('0304022b0000')),
      [0x022b, 0],
    );
    assert.equal(decodeResponsePdu({ fc: 6, address: 1, value: 3 }, bytes('0600010003')), undefined);
    assert.equal(decodeResponsePdu({ fc: 16, address: 1, values: [1, 2] }, bytes('1000010002')), undefined);
  });

  it('turns an exception response into a clear error with its code', () => {
    assert.throws(
      () => decodeResponsePdu({ fc: 3, address: 900, quantity: 1 }, bytes('8302')),
      (err: unknown) =>
        isKedgeError(err, 'KEDGE_MODBUS_EXCEPTION') &&
        err.context['exceptionCode'] === 2 &&
        /function 3 at address 900 with exception 2 \(illegal data address\)/.test(err.message),
    );
    throwsCode(
      () => decodeResponsePdu({ fc: 6, address: 0, value: 1 }, bytes('8604')),
      'KEDGE_MODBUS_EXCEPTION',
      /server device failure/,
    );
    throwsCode(
      () => decodeResponsePdu({ fc: 6, address: 0, value: 1 }, bytes('86')),
      'KEDGE_MODBUS_FRAME_INVALID',
    );
  });

  it('refuses responses that are short, long or do not match their request', () => {
    const read: ModbusRequest = { fc: 3, address: 0, quantity: 2 };
    throwsCode(() => decodeResponsePdu(read, Buffer.alloc(0)), 'KEDGE_MODBUS_FRAME_INVALID', /empty/);
    throwsCode(
      () => decodeResponsePdu(read, bytes('0304022b00')),
      'KEDGE_MODBUS_FRAME_INVALID',
      /must be 6 bytes/,
    );
    throwsCode(() => decodeResponsePdu(read, bytes('0304022b000000')), 'KEDGE_MODBUS_FRAME_INVALID');
    throwsCode(
      () => decodeResponsePdu(read, bytes('0302022b0000')),
      'KEDGE_MODBUS_FRAME_INVALID',
      /byte count/,
    );
    throwsCode(
      () => decodeResponsePdu(read, bytes('0404022b0000')),
      'KEDGE_MODBUS_FRAME_INVALID',
      /function 4/,
    );
    throwsCode(
      () => decodeResponsePdu({ fc: 1, address: 0, quantity: 9 }, bytes('0101ff')),
      'KEDGE_MODBUS_FRAME_INVALID',
    );
    throwsCode(
      () => decodeResponsePdu({ fc: 5, address: 1, value: true }, bytes('0500010000')),
      'KEDGE_MODBUS_FRAME_INVALID',
      /echo/,
    );
    throwsCode(
      () => decodeResponsePdu({ fc: 15, address: 1, values: [true, true] }, bytes('0f00010003')),
      'KEDGE_MODBUS_FRAME_INVALID',
      /expected 1\+2/,
    );
  });

  it('reads ADUs split anywhere in the stream, and several in one chunk', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            id: fc.integer({ min: 0, max: 0xffff }),
            unit: fc.integer({ min: 0, max: 255 }),
            pdu: fc.uint8Array({ minLength: 1, maxLength: 253 }),
          }),
          { minLength: 1, maxLength: 8 },
        ),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
        (frames, cuts) => {
          const stream = Buffer.concat(frames.map((f) => encodeAdu(f.id, f.unit, Buffer.from(f.pdu))));
          const reader = new AduReader();
          const got = [];
          let at = 0;
          for (let i = 0; at < stream.length; i++) {
            const n = cuts[i % cuts.length]!;
            got.push(...reader.push(stream.subarray(at, at + n)));
            at += n;
          }
          assert.equal(reader.buffered, 0);
          assert.deepEqual(
            got.map((a) => [a.transactionId, a.unitId, hex(a.pdu)]),
            frames.map((f) => [f.id, f.unit, hex(Buffer.from(f.pdu))]),
          );
        },
      ),
    );
  });

  it('refuses a stream that is not Modbus TCP', () => {
    throwsCode(
      () => new AduReader().push(bytes('00010001000601030000')),
      'KEDGE_MODBUS_FRAME_INVALID',
      /protocol id/,
    );
    throwsCode(
      () => new AduReader().push(bytes('00010000000101')),
      'KEDGE_MODBUS_FRAME_INVALID',
      /length field/,
    );
    throwsCode(
      () => new AduReader().push(bytes('00010000ffff01')),
      'KEDGE_MODBUS_FRAME_INVALID',
      /length field/,
    );
    // HTTP spoken to a Modbus port
    throwsCode(
      () => new AduReader().push(Buffer.from('HTTP/1.1 400 Bad Request\r\n')),
      'KEDGE_MODBUS_FRAME_INVALID',
    );
  });

  it('round-trips register and bit reads for any values', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 125 }), (regs) => {
        const pdu = Buffer.alloc(2 + regs.length * 2);
        pdu[0] = 4;
        pdu[1] = regs.length * 2;
        regs.forEach((r, i) => {
          pdu.writeUInt16BE(r, 2 + 2 * i);
        });
        assert.deepEqual(decodeResponsePdu({ fc: 4, address: 0, quantity: regs.length }, pdu), regs);
      }),
    );
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 1968 }), (bits) => {
        // a write-multiple-coils request carries bits exactly as a read-coils response does
        const req = encodeRequestPdu({ fc: 15, address: 0, values: bits });
        const response = Buffer.concat([Buffer.from([1]), req.subarray(5)]);
        assert.deepEqual(decodeResponsePdu({ fc: 1, address: 0, quantity: bits.length }, response), bits);
      }),
    );
  });
});

/** A scripted Modbus TCP peer: `answer` decides what to send back for each request ADU. */
async function scriptedServer(
  answer: (adu: Buffer, socket: Socket) => void,
): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    const reader = new AduReader();
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      for (const adu of reader.push(chunk)) answer(encodeAdu(adu.transactionId, adu.unitId, adu.pdu), socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, port: address.port };
}

/** The answer a correct device gives to a read of holding registers: register i holds 1000 + address + i. */
function registersAnswer(adu: Buffer): Buffer {
  const address = adu.readUInt16BE(8);
  const quantity = adu.readUInt16BE(10);
  const pdu = Buffer.alloc(2 + 2 * quantity);
  pdu[0] = 3;
  pdu[1] = 2 * quantity;
  for (let i = 0; i < quantity; i++) pdu.writeUInt16BE(1000 + address + i, 2 + 2 * i);
  return encodeAdu(adu.readUInt16BE(0), adu[6]!, pdu);
}

describe('Modbus TCP client', () => {
  const servers: Server[] = [];
  const clients: ModbusTcpClient[] = [];
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    for (const s of servers) s.close();
  });
  async function rig(
    answer: (adu: Buffer, socket: Socket) => void,
    options: { timeoutMs?: number; maxInFlight?: number } = {},
  ) {
    const { server, port } = await scriptedServer(answer);
    servers.push(server);
    const client = new ModbusTcpClient({
      host: '127.0.0.1',
      port,
      timeoutMs: options.timeoutMs ?? 2000,
      maxInFlight: options.maxInFlight ?? 1,
    });
    clients.push(client);
    return client;
  }

  it('matches pipelined answers by transaction id even when they come back out of order', async () => {
    const held: { adu: Buffer; socket: Socket }[] = [];
    const client = await rig(
      (adu, socket) => {
        held.push({ adu, socket });
        if (held.length === 4) for (const h of held.reverse()) h.socket.write(registersAnswer(h.adu));
      },
      { maxInFlight: 4 },
    );
    const results = await Promise.all([0, 10, 20, 30].map((a) => client.readHoldingRegisters(a, 2)));
    assert.deepEqual(results, [
      [1000, 1001],
      [1010, 1011],
      [1020, 1021],
      [1030, 1031],
    ]);
  });

  it('times out a request the device never answers, then works on a fresh connection', async () => {
    let seen = 0;
    const client = await rig(
      (adu, socket) => {
        if (++seen > 1) socket.write(registersAnswer(adu));
      },
      { timeoutMs: 200 },
    );
    await assert.rejects(client.readHoldingRegisters(5, 1), (err: unknown) => {
      return isKedgeError(err, 'KEDGE_MODBUS_TIMEOUT') && /within 200 ms/.test((err as Error).message);
    });
    assert.deepEqual(await client.readHoldingRegisters(5, 1), [1005]);
  });

  it('drops a connection that sends garbage or answers a request nobody made, failing the request clearly', async () => {
    const garbage = await rig((_adu, socket) => socket.write(Buffer.from('ERROR\r\n')));
    await assert.rejects(garbage.readHoldingRegisters(0, 1), (err: unknown) =>
      isKedgeError(err, 'KEDGE_MODBUS_FRAME_INVALID'),
    );
    const liar = await rig((adu, socket) => {
      const answer = registersAnswer(adu);
      answer.writeUInt16BE((adu.readUInt16BE(0) + 7) & 0xffff, 0);
      socket.write(answer);
    });
    await assert.rejects(
      liar.readHoldingRegisters(0, 1),
      (err: unknown) =>
        isKedgeError(err, 'KEDGE_MODBUS_FRAME_INVALID') && /transaction id/.test((err as Error).message),
    );
    const wrongUnit = await rig((adu, socket) => {
      const answer = registersAnswer(adu);
      answer[6] = 9;
      socket.write(answer);
    });
    await assert.rejects(wrongUnit.readHoldingRegisters(0, 1), /from unit 9, expected 1/);
  });

  it('fails at once while backing off from an unreachable device', async () => {
    const { server, port } = await scriptedServer(() => {});
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const client = new ModbusTcpClient({ host: '127.0.0.1', port, backoffMinMs: 60_000 });
    clients.push(client);
    await assert.rejects(
      client.readCoils(0, 1),
      (err: unknown) =>
        isKedgeError(err, 'KEDGE_MODBUS_DISCONNECTED') && /cannot be reached/.test((err as Error).message),
    );
    await assert.rejects(client.readCoils(0, 1), /next connection attempt in \d+ ms/);
  });

  it('refuses bad options, naming each', () => {
    assert.throws(
      () => new ModbusTcpClient({ host: '', port: 70000, unitId: 300 }),
      (err: unknown) =>
        isKedgeError(err, 'KEDGE_CONFIG_INVALID') &&
        /host/.test(err.message) &&
        /port/.test(err.message) &&
        /unitId/.test(err.message),
    );
  });

  it('fails requests after close', async () => {
    const client = await rig((adu, socket) => socket.write(registersAnswer(adu)));
    assert.deepEqual(await client.readHoldingRegisters(1, 1), [1001]);
    await client.close();
    await assert.rejects(client.readHoldingRegisters(1, 1), /is closed/);
  });
});
