// The stream part of the protocol: control messages (JSON) and binary data frames, strictly decoded.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKedgeError } from '../lib/errors.ts';
import {
  decodeAgentMessage,
  decodeHubMessage,
  decodeStreamFrame,
  encodeMessage,
  encodeStreamFrame,
  protocolCodeOf,
} from './codec.ts';
import {
  type AgentMessage,
  type HubMessage,
  STREAM_CHUNK_BYTES,
  STREAM_FRAME_HEADER_BYTES,
  StreamErrorReasons,
  type StreamFrame,
} from './messages.ts';

const id = fc.integer({ min: 1, max: 0xffff_ffff });
const name = fc.stringMatching(/^[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?$/);
const pod = fc.record({ namespace: name, name, uid: name });
const logs = fc.record(
  {
    kind: fc.constant('logs' as const),
    container: name,
    follow: fc.boolean(),
    previous: fc.boolean(),
    timestamps: fc.boolean(),
    tailLines: fc.nat(),
    sinceTime: fc
      .date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true })
      .map((d) => d.toISOString()),
    limitBytes: fc.integer({ min: 1 }),
  },
  { requiredKeys: ['kind', 'container', 'follow', 'previous', 'timestamps'] },
);
const exec = fc.record({
  kind: fc.constant('exec' as const),
  container: name,
  command: fc.array(fc.string({ minLength: 1, maxLength: 30 }), { minLength: 1, maxLength: 5 }),
  stdin: fc.boolean(),
  stdout: fc.boolean(),
  stderr: fc.boolean(),
  tty: fc.boolean(),
});
const hubMessage: fc.Arbitrary<HubMessage> = fc.oneof(
  fc.record({ type: fc.constant('stream-open' as const), id, pod, request: fc.oneof(logs, exec) }),
  fc.record({ type: fc.constant('stream-window' as const), id, bytes: fc.integer({ min: 1, max: 2 ** 31 }) }),
  fc.record({
    type: fc.constant('stream-resize' as const),
    id,
    width: fc.integer({ min: 0, max: 65535 }),
    height: fc.integer({ min: 0, max: 65535 }),
  }),
  fc.record({ type: fc.constant('stream-cancel' as const), id }),
);
const agentMessage: fc.Arbitrary<AgentMessage> = fc.oneof(
  fc.record({ type: fc.constant('stream-window' as const), id, bytes: fc.integer({ min: 1, max: 2 ** 31 }) }),
  fc.record(
    {
      type: fc.constant('stream-close' as const),
      id,
      exitCode: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      error: fc.record({
        reason: fc.constantFrom(...StreamErrorReasons),
        message: fc.string({ maxLength: 100 }),
      }),
    },
    { requiredKeys: ['type', 'id'] },
  ),
);
const frame = (from: 'hub' | 'agent'): fc.Arbitrary<StreamFrame> =>
  fc.oneof(
    fc.record({
      kind: fc.constant('data' as const),
      id,
      channel: from === 'hub' ? fc.constant(0 as const) : fc.constantFrom(1 as const, 2 as const),
      payload: fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.from(b)),
    }),
    ...(from === 'hub'
      ? [
          fc.record({
            kind: fc.constant('eof' as const),
            id,
            channel: fc.constant(0 as const),
            payload: fc.constant(Buffer.alloc(0)),
          }),
        ]
      : []),
  );

function throwsProtocol(
  fn: () => unknown,
  pattern: RegExp,
  code: 'bad-frame' | 'too-large' = 'bad-frame',
): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isKedgeError(err, 'KEDGE_PROTOCOL_INVALID'), `expected KEDGE_PROTOCOL_INVALID, got ${err}`);
    assert.match(err.message, pattern);
    assert.equal(protocolCodeOf(err), code);
    return true;
  });
}

const raw = (kind: number, streamId: number, channel: number, payload: Buffer = Buffer.alloc(0)): Buffer => {
  const b = Buffer.alloc(STREAM_FRAME_HEADER_BYTES + payload.byteLength);
  b[0] = kind;
  b.writeUInt32BE(streamId, 1);
  b[5] = channel;
  payload.copy(b, STREAM_FRAME_HEADER_BYTES);
  return b;
};

describe('stream protocol codec', () => {
  it('round-trips every stream control message', () => {
    fc.assert(
      fc.property(hubMessage, (m) =>
        assert.deepEqual(decodeHubMessage(encodeMessage(m)), JSON.parse(JSON.stringify(m))),
      ),
    );
    fc.assert(
      fc.property(agentMessage, (m) =>
        assert.deepEqual(decodeAgentMessage(encodeMessage(m)), JSON.parse(JSON.stringify(m))),
      ),
    );
  });

  it('round-trips data and eof frames in both directions', () => {
    for (const from of ['hub', 'agent'] as const) {
      fc.assert(
        fc.property(frame(from), (f) => {
          const back = decodeStreamFrame(encodeStreamFrame(f), from);
          assert.deepEqual({ ...back, payload: [...back.payload] }, { ...f, payload: [...f.payload] });
        }),
      );
    }
  });

  it('never throws anything but KEDGE_PROTOCOL_INVALID on random frames', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.constantFrom('hub' as const, 'agent' as const),
        (b, from) => {
          try {
            decodeStreamFrame(Buffer.from(b), from);
          } catch (err) {
            assert.ok(isKedgeError(err, 'KEDGE_PROTOCOL_INVALID'), String(err));
          }
        },
      ),
    );
    // Mutated valid control messages: one field replaced by arbitrary JSON.
    fc.assert(
      fc.property(fc.oneof(hubMessage, agentMessage), fc.nat(), fc.jsonValue(), (m, i, v) => {
        const o: Record<string, unknown> = { ...m };
        const fields = Object.keys(o).filter((f) => f !== 'type');
        o[fields[i % fields.length] ?? 'id'] = v;
        for (const decode of [decodeHubMessage, decodeAgentMessage]) {
          try {
            decode(JSON.stringify(o));
          } catch (err) {
            assert.ok(isKedgeError(err, 'KEDGE_PROTOCOL_INVALID'), String(err));
          }
        }
      }),
    );
  });

  it('rejects corrupt frames with a message that names the problem', () => {
    throwsProtocol(() => decodeStreamFrame(Buffer.from([1, 0, 0]), 'agent'), /needs 6 header bytes, got 3/);
    throwsProtocol(
      () => decodeStreamFrame(raw(9, 1, 1, Buffer.from('x')), 'agent'),
      /kind 9 is not 1 \(data\) or 2 \(eof\)/,
    );
    throwsProtocol(() => decodeStreamFrame(raw(1, 0, 1, Buffer.from('x')), 'agent'), /id 0 is not a stream/);
    throwsProtocol(
      () => decodeStreamFrame(raw(1, 1, 0, Buffer.from('x')), 'agent'),
      /channel 0 is not one the agent sends on/,
    );
    throwsProtocol(
      () => decodeStreamFrame(raw(1, 1, 1, Buffer.from('x')), 'hub'),
      /channel 1 is not one the hub sends on/,
    );
    throwsProtocol(() => decodeStreamFrame(raw(1, 1, 3, Buffer.from('x')), 'agent'), /channel 3/);
    throwsProtocol(() => decodeStreamFrame(raw(1, 1, 1), 'agent'), /data frame is empty/);
    throwsProtocol(() => decodeStreamFrame(raw(2, 1, 1), 'agent'), /Only the hub sends eof/);
    throwsProtocol(
      () => decodeStreamFrame(raw(2, 1, 0, Buffer.from('x')), 'hub'),
      /eof frame carries no payload/,
    );
  });

  it('rejects oversized data frames as too-large, on decode and on encode', () => {
    const big = Buffer.alloc(STREAM_CHUNK_BYTES + 1);
    throwsProtocol(() => decodeStreamFrame(raw(1, 1, 1, big), 'agent'), /larger than the limit/, 'too-large');
    throwsProtocol(
      () => encodeStreamFrame({ kind: 'data', id: 1, channel: 1, payload: big }),
      /1 to 32768 bytes/,
      'too-large',
    );
    // The largest allowed payload passes.
    const max = decodeStreamFrame(raw(1, 7, 2, Buffer.alloc(STREAM_CHUNK_BYTES, 1)), 'agent');
    assert.equal(max.payload.byteLength, STREAM_CHUNK_BYTES);
  });

  it('rejects malformed control messages', () => {
    const open = (request: unknown, extra: Record<string, unknown> = {}) =>
      JSON.stringify({
        type: 'stream-open',
        id: 1,
        pod: { namespace: 'd', name: 'p', uid: 'u' },
        request,
        ...extra,
      });
    const execReq = {
      kind: 'exec',
      container: 'c',
      command: ['sh'],
      stdin: false,
      stdout: true,
      stderr: true,
      tty: false,
    };
    throwsProtocol(() => decodeHubMessage(open({ ...execReq, command: [] })), /command must name a command/);
    throwsProtocol(
      () => decodeHubMessage(open({ ...execReq, command: [''] })),
      /command\[0\] must not be empty/,
    );
    throwsProtocol(
      () => decodeHubMessage(open({ ...execReq, command: [1] })),
      /command\[0\] must be a string/,
    );
    throwsProtocol(
      () => decodeHubMessage(open({ ...execReq, tty: 'yes' })),
      /request.tty must be true or false/,
    );
    throwsProtocol(() => decodeHubMessage(open({ ...execReq, kind: 'attach' })), /kind must be logs or exec/);
    throwsProtocol(
      () =>
        decodeHubMessage(
          open({
            kind: 'logs',
            container: 'c',
            follow: true,
            previous: false,
            timestamps: false,
            sinceTime: 'yesterday',
          }),
        ),
      /sinceTime must be an RFC 3339 time/,
    );
    throwsProtocol(
      () =>
        decodeHubMessage(
          open({
            kind: 'logs',
            container: 'c',
            follow: true,
            previous: false,
            timestamps: false,
            tailLines: -1,
          }),
        ),
      /tailLines must be a whole number >= 0/,
    );
    throwsProtocol(
      () => decodeHubMessage(open(execReq, { id: 0 })),
      /stream-open.id must be a whole number >= 1/,
    );
    throwsProtocol(() => decodeHubMessage(open(execReq, { id: 2 ** 32 })), /id must be at most 4294967295/);
    throwsProtocol(() => decodeHubMessage(open(execReq, { pod: { namespace: 'd', name: 'p' } })), /pod.uid/);
    throwsProtocol(
      () => decodeAgentMessage('{"type":"stream-close","id":1,"exitCode":1.5}'),
      /exitCode must be a 32-bit integer/,
    );
    throwsProtocol(
      () => decodeAgentMessage('{"type":"stream-close","id":1,"error":{"reason":"Oops","message":""}}'),
      /error.reason must be one of/,
    );
    throwsProtocol(
      () => decodeAgentMessage('{"type":"stream-window","id":1,"bytes":0}'),
      /bytes must be a whole number >= 1/,
    );
    throwsProtocol(
      () => decodeHubMessage('{"type":"stream-resize","id":1,"width":70000,"height":1}'),
      /width must be at most 65535/,
    );
    // Direction: an agent does not open streams, the hub does not close them.
    throwsProtocol(() => decodeAgentMessage(open(execReq)), /not one an agent sends/);
    throwsProtocol(() => decodeHubMessage('{"type":"stream-close","id":1}'), /not one the hub sends/);
  });
});
