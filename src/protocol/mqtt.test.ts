import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKedgeError } from '../lib/errors.ts';
import {
  DeviceInTopics,
  DeviceOutTopics,
  deviceTopic,
  eventIdOf,
  legacyDeviceTopic,
  membershipTopic,
  parseStateUpdate,
  parseTopic,
  parseTwinUpdate,
} from './mqtt.ts';

const segment = fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?$/);
const action = fc.constantFrom(...DeviceInTopics, ...DeviceOutTopics);

describe('twin topics', () => {
  it('parses what it builds (namespaced and one-segment forms)', () => {
    fc.assert(
      fc.property(segment, segment, action, (ns, name, a) => {
        assert.deepEqual(parseTopic(deviceTopic(ns, name, a)), {
          kind: 'device',
          namespace: ns,
          name,
          action: a,
          legacy: false,
        });
        assert.deepEqual(parseTopic(legacyDeviceTopic(name, a)), {
          kind: 'device',
          namespace: 'default',
          name,
          action: a,
          legacy: true,
        });
      }),
    );
  });

  it('parses membership/get and nothing else of the node topics', () => {
    fc.assert(
      fc.property(segment, (node) => {
        assert.deepEqual(parseTopic(membershipTopic(node, 'get')), { kind: 'membership-get', node });
        assert.equal(parseTopic(membershipTopic(node, 'updated')), undefined);
        assert.equal(parseTopic(membershipTopic(node, 'get/result')), undefined);
      }),
    );
  });

  it('never throws and refuses topics outside the scheme', () => {
    fc.assert(fc.property(fc.string(), (t) => void parseTopic(t)));
    for (const t of [
      '$hw/events/device/a/b/c/twin/update',
      '$hw/events/device//twin/update',
      '$hw/events/device/+/twin/update',
      '$hw/events/device/a/b/twin/delete',
      'hw/events/device/a/twin/update',
    ])
      assert.equal(parseTopic(t), undefined, t);
  });
});

describe('twin payloads', () => {
  it('accepts KubeEdge payloads with and without versions', () => {
    const u = parseTwinUpdate(
      JSON.stringify({
        event_id: 'x',
        timestamp: 1,
        twin: {
          temperature: {
            actual: { value: '21', metadata: { timestamp: 5 } },
            metadata: { type: 'float' },
            actual_version: { cloud: 0, edge: 3 },
            optional: true,
          },
          gone: null,
        },
      }),
    );
    assert.equal(u.twin['temperature']?.actual?.value, '21');
    assert.equal(u.twin['temperature']?.actual_version?.edge, 3);
    assert.equal(u.twin['gone'], null);
    assert.deepEqual(parseTwinUpdate('{"twin":{}}'), { event_id: '', timestamp: 0, twin: {} });
  });

  it('refuses malformed payloads with KEDGE_MQTT_PAYLOAD_INVALID, never another error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        try {
          parseTwinUpdate(text);
        } catch (err) {
          assert.ok(isKedgeError(err, 'KEDGE_MQTT_PAYLOAD_INVALID'), String(err));
        }
        try {
          parseStateUpdate(text);
        } catch (err) {
          assert.ok(isKedgeError(err, 'KEDGE_MQTT_PAYLOAD_INVALID'), String(err));
        }
        assert.equal(typeof eventIdOf(text), 'string');
      }),
    );
    for (const bad of [
      '[]',
      '{"twin":{"bad key!":{}}}',
      '{"twin":{"t":{"actual":{"value":1}}}}',
      '{"twin":{"t":{"actual_version":{"edge":-1}}}}',
      `{"twin":{"t":{"actual":{"value":"${'x'.repeat(600)}"}}}}`,
      '{"event_id":5,"twin":{}}',
    ])
      assert.throws(() => parseTwinUpdate(bad), /./, bad);
    assert.throws(() => parseStateUpdate('{"state":"sleepy"}'), /state must be/);
  });
});
