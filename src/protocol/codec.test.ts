import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKedgeError } from '../lib/errors.ts';
import {
  decodeAgentMessage,
  decodeHubMessage,
  encodeMessage,
  MAX_BATCH_ITEMS,
  protocolCodeOf,
} from './codec.ts';
import {
  AgentFeatures,
  type AgentMessage,
  type HubMessage,
  MAX_FRAME_BYTES,
  ProtocolErrorCodes,
  type StatusItem,
  type SyncItem,
  syncKey,
} from './messages.ts';

const name = fc.stringMatching(/^[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?$/);
const rev = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const key = fc
  .tuple(fc.constantFrom('', 'apps', 'coordination.k8s.io'), name, fc.option(name, { nil: undefined }), name)
  .map(([g, p, ns, n]) => syncKey(g, p, ns, n));
const json = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 });

const syncItem: fc.Arbitrary<SyncItem> = fc.oneof(
  fc.record({ key, revision: rev, object: json }),
  fc.record({ key, revision: rev, deleted: fc.constant(true as const) }),
);
const statusItem: fc.Arbitrary<StatusItem> = fc.oneof(
  fc.record({ kind: fc.constant('NodeStatus' as const), name, status: json }),
  fc.record({ kind: fc.constant('PodStatus' as const), namespace: name, name, uid: name, status: json }),
  fc.record({ kind: fc.constant('Event' as const), namespace: name, event: json }),
  fc.record({ kind: fc.constant('DeviceStatus' as const), namespace: name, name, status: json }),
  fc.record({ kind: fc.constant('PodDeleted' as const), namespace: name, name, uid: name }),
);
const errorMessage = fc.record({
  type: fc.constant('error' as const),
  code: fc.constantFrom(...ProtocolErrorCodes),
  message: fc.string({ maxLength: 50 }),
});

const agentMessage: fc.Arbitrary<AgentMessage> = fc.oneof(
  fc.record(
    {
      type: fc.constant('hello' as const),
      v: fc.nat(5),
      node: name,
      revision: rev,
      inventory: fc.array(fc.tuple(key, rev), { maxLength: 10 }),
      agentVersion: fc.string({ minLength: 1, maxLength: 10 }),
      features: fc.constantFrom([], [AgentFeatures.statusWriteBack]),
    },
    { requiredKeys: ['type', 'v', 'node', 'revision', 'inventory'] },
  ),
  fc.record({ type: fc.constant('ack' as const), seq: rev, revision: rev }),
  fc.record({
    type: fc.constant('status' as const),
    seq: rev,
    items: fc.array(statusItem, { maxLength: 5 }),
  }),
  fc.constant({ type: 'heartbeat' as const }),
  errorMessage,
);
const hubMessage: fc.Arbitrary<HubMessage> = fc.oneof(
  fc.record({
    type: fc.constant('welcome' as const),
    v: fc.nat(5),
    serverRevision: rev,
    heartbeatSeconds: fc.integer({ min: 1, max: 600 }),
  }),
  fc.record({
    type: fc.constant('batch' as const),
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    revision: rev,
    items: fc.uniqueArray(syncItem, { maxLength: 6, selector: (i) => i.key }),
  }),
  fc.record(
    {
      type: fc.constant('status-ack' as const),
      seq: rev,
      written: fc.array(
        fc
          .tuple(key, fc.integer({ min: 1, max: 2 ** 40 }), fc.integer({ min: 1, max: 2 ** 40 }))
          .map(([k, from, step]) => [k, from, from + step] as const),
        { maxLength: 4 },
      ),
    },
    { requiredKeys: ['type', 'seq'] },
  ),
  errorMessage,
);

function throwsProtocol(fn: () => unknown, pattern?: RegExp, code: 'bad-frame' | 'too-large' = 'bad-frame') {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isKedgeError(err, 'KEDGE_PROTOCOL_INVALID'), `expected KEDGE_PROTOCOL_INVALID, got ${err}`);
    if (pattern !== undefined) assert.match(err.message, pattern);
    assert.equal(protocolCodeOf(err), code);
    return true;
  });
}

describe('protocol codec', () => {
  it('round-trips every agent message (string and Buffer frames)', () => {
    fc.assert(
      fc.property(agentMessage, (m) => {
        const text = encodeMessage(m);
        // Compared with the plain JSON form: generated records may have a null prototype.
        const plain = JSON.parse(JSON.stringify(m));
        assert.deepEqual(decodeAgentMessage(text), plain);
        assert.deepEqual(decodeAgentMessage(Buffer.from(text)), plain);
      }),
    );
  });

  it('round-trips every hub message', () => {
    fc.assert(
      fc.property(hubMessage, (m) => {
        assert.deepEqual(decodeHubMessage(encodeMessage(m)), JSON.parse(JSON.stringify(m)));
      }),
    );
  });

  it('never throws anything but KEDGE_PROTOCOL_INVALID on random bytes or random JSON', () => {
    const check = (frame: string | Buffer) => {
      for (const decode of [decodeAgentMessage, decodeHubMessage]) {
        try {
          decode(frame);
        } catch (err) {
          assert.ok(isKedgeError(err, 'KEDGE_PROTOCOL_INVALID'), `unexpected ${String(err)}`);
        }
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => check(Buffer.from(b))));
    fc.assert(fc.property(fc.string(), (s) => check(s)));
    fc.assert(fc.property(fc.jsonValue(), (v) => check(JSON.stringify(v))));
    // Mutated valid messages: one field replaced by an arbitrary JSON value.
    fc.assert(
      fc.property(
        fc.oneof(agentMessage, hubMessage),
        fc.string({ maxLength: 12 }),
        fc.jsonValue(),
        (m, f, v) => {
          const o: Record<string, unknown> = { ...m };
          const fields = Object.keys(o);
          o[fields.includes(f) ? f : (fields[f.length % fields.length] ?? 'type')] = v;
          check(JSON.stringify(o));
        },
      ),
    );
  });

  it('drops unknown fields so newer peers can add some', () => {
    const m = decodeAgentMessage(JSON.stringify({ type: 'ack', seq: 3, revision: 9, future: { x: 1 } }));
    assert.deepEqual(m, { type: 'ack', seq: 3, revision: 9 });
  });

  it('keeps the hello features it knows and drops the others', () => {
    const m = decodeAgentMessage(
      JSON.stringify({
        type: 'hello',
        v: 1,
        node: 'n',
        revision: 0,
        inventory: [],
        features: ['from-the-future', 'status-write-back'],
      }),
    );
    assert.deepEqual(m.type === 'hello' && m.features, ['status-write-back']);
    throwsProtocol(
      () =>
        decodeAgentMessage('{"type":"hello","v":1,"node":"n","revision":0,"inventory":[],"features":[7]}'),
      /hello.features\[0\] must be a string/,
    );
  });

  it('refuses status-ack write-backs that are not [key, from, to] with to above from', () => {
    const ack = (written: unknown): string => JSON.stringify({ type: 'status-ack', seq: 1, written });
    throwsProtocol(() => decodeHubMessage(ack({})), /status-ack.written must be an array/);
    throwsProtocol(() => decodeHubMessage(ack([['core/pods/a/b', 2]])), /must be \[key, from, to\]/);
    throwsProtocol(() => decodeHubMessage(ack([['pods/b', 2, 3]])), /written\[0\] key must be a sync key/);
    throwsProtocol(
      () => decodeHubMessage(ack([['core/pods/a/b', 0, 3]])),
      /from must be a whole number >= 1/,
    );
    throwsProtocol(
      () => decodeHubMessage(ack([['core/pods/a/b', 3, 3]])),
      /to must be a whole number above from/,
    );
    assert.deepEqual(decodeHubMessage(ack([['core/pods/a/b', 2, 3]])), {
      type: 'status-ack',
      seq: 1,
      written: [['core/pods/a/b', 2, 3]],
    });
  });

  it('rejects malformed frames with a message that names the problem', () => {
    throwsProtocol(() => decodeAgentMessage('{"type":'), /not valid JSON/);
    throwsProtocol(() => decodeAgentMessage('[1,2]'), /must be a JSON object, got an array/);
    throwsProtocol(() => decodeAgentMessage('{"type":"bogus"}'), /"bogus" is not one an agent sends/);
    throwsProtocol(() => decodeAgentMessage('{"type":"welcome","v":1}'), /not one an agent sends/);
    throwsProtocol(() => decodeHubMessage('{"type":"hello"}'), /not one the hub sends/);
    throwsProtocol(() => decodeAgentMessage('{"type":"ack","seq":-1,"revision":0}'), /ack.seq .* got -1/);
    throwsProtocol(() => decodeAgentMessage('{"type":"ack","seq":1.5,"revision":0}'), /ack.seq/);
    throwsProtocol(() => decodeAgentMessage('{"type":"ack","seq":"1","revision":0}'), /ack.seq/);
    throwsProtocol(() => decodeAgentMessage('{"type":"ack","seq":1e300,"revision":0}'), /ack.seq/);
    throwsProtocol(
      () => decodeAgentMessage('{"type":"hello","v":1,"node":"n","revision":0,"inventory":[["bad",1]]}'),
      /hello.inventory\[0\] key must be a sync key/,
    );
    throwsProtocol(
      () => decodeAgentMessage('{"type":"hello","v":1,"node":"","revision":0,"inventory":[]}'),
      /hello.node/,
    );
    throwsProtocol(
      () => decodeAgentMessage('{"type":"status","seq":1,"items":[{"kind":"Nope"}]}'),
      /status.items\[0\].kind "Nope"/,
    );
    throwsProtocol(
      () =>
        decodeAgentMessage(
          '{"type":"status","seq":1,"items":[{"kind":"PodStatus","namespace":"a","name":"b"}]}',
        ),
      /status.items\[0\].uid/,
    );
    throwsProtocol(() => decodeAgentMessage('{"type":"error","code":"nope","message":""}'), /error.code/);
    throwsProtocol(() => decodeAgentMessage(Buffer.from([0x7b, 0xff, 0x7d])), /not valid UTF-8/);
  });

  it('rejects a batch with a key twice, both object and deleted, or deleted not true', () => {
    const k = 'core/pods/ns/p';
    throwsProtocol(
      () =>
        decodeHubMessage(
          JSON.stringify({
            type: 'batch',
            seq: 1,
            revision: 2,
            items: [
              { key: k, revision: 1, deleted: true },
              { key: k, revision: 2, deleted: true },
            ],
          }),
        ),
      /appears twice/,
    );
    throwsProtocol(
      () =>
        decodeHubMessage(
          JSON.stringify({
            type: 'batch',
            seq: 1,
            revision: 2,
            items: [{ key: k, revision: 1, deleted: true, object: {} }],
          }),
        ),
      /both object and deleted/,
    );
    throwsProtocol(
      () =>
        decodeHubMessage(
          JSON.stringify({
            type: 'batch',
            seq: 1,
            revision: 2,
            items: [{ key: k, revision: 1, deleted: false }],
          }),
        ),
      /deleted must be true/,
    );
    throwsProtocol(
      () => decodeHubMessage(JSON.stringify({ type: 'batch', seq: 0, revision: 0, items: [] })),
      /batch.seq/,
    );
  });

  it('bounds frame size and array lengths', () => {
    const big = JSON.stringify({ type: 'heartbeat', pad: 'x'.repeat(MAX_FRAME_BYTES) });
    throwsProtocol(() => decodeAgentMessage(big), /larger than the limit/, 'too-large');
    throwsProtocol(() => decodeAgentMessage(Buffer.from(big)), /larger than the limit/, 'too-large');
    // Multi-byte characters: under the limit in characters, over it in bytes.
    const wide = JSON.stringify({ type: 'heartbeat', pad: 'é'.repeat(MAX_FRAME_BYTES / 2) });
    throwsProtocol(() => decodeAgentMessage(wide), /larger than the limit/, 'too-large');
    throwsProtocol(
      () =>
        encodeMessage({
          type: 'status',
          seq: 1,
          items: [{ kind: 'Event', namespace: 'a', event: { m: big } }],
        }),
      /larger than the limit/,
      'too-large',
    );
    const items = Array.from({ length: MAX_BATCH_ITEMS + 1 }, () => ({
      kind: 'NodeStatus',
      name: 'n',
      status: {},
    }));
    throwsProtocol(
      () => decodeAgentMessage(JSON.stringify({ type: 'status', seq: 1, items })),
      /more than the limit/,
    );
  });
});
