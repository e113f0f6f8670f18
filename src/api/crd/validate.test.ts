import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cronTabCrdExample, deviceCrdExample, deviceExample } from './examples.ts';
import { formatFieldError, type JSONSchemaProps, validateCustomResource, versionSchema } from './index.ts';

const cronTab = versionSchema(cronTabCrdExample(), 'v1')!;
const device = versionSchema(deviceCrdExample(), 'v1beta1')!;

function check(schema: JSONSchemaProps, obj: unknown): string[] {
  return validateCustomResource(schema, obj).map(formatFieldError);
}

function spec(s: JSONSchemaProps): JSONSchemaProps {
  return { type: 'object', properties: { spec: s } };
}

describe('validateCustomResource', () => {
  it('accepts the example objects', () => {
    assert.deepEqual(check(device, deviceExample()), []);
    assert.deepEqual(
      check(cronTab, {
        apiVersion: 'stable.example.com/v1',
        kind: 'CronTab',
        metadata: { name: 'c' },
        spec: { cronSpec: '*/5 * * * *', image: 'busybox', replicas: 3 },
      }),
      [],
    );
  });

  it('leaves apiVersion, kind and metadata to the caller', () => {
    const schema: JSONSchemaProps = {
      type: 'object',
      required: ['metadata', 'kind'],
      properties: {
        kind: { type: 'integer' },
        metadata: { type: 'object', properties: { name: { type: 'string' } } },
      },
    };
    assert.deepEqual(check(schema, { kind: 'X', metadata: { name: 42 } }), []);
  });

  const cases: { name: string; schema: JSONSchemaProps; obj: unknown; expect: string[] }[] = [
    {
      name: 'a string where an integer belongs',
      schema: cronTab,
      obj: { spec: { cronSpec: '* * * * *', image: 'x', replicas: 'three' } },
      expect: [
        'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
      ],
    },
    {
      name: 'a fraction where an integer belongs',
      schema: cronTab,
      obj: { spec: { cronSpec: '* * * * *', image: 'x', replicas: 1.5 } },
      expect: [
        'spec.replicas: Invalid value: "number": spec.replicas in body must be of type integer: "number"',
      ],
    },
    {
      name: 'missing required fields',
      schema: cronTab,
      obj: { spec: {} },
      expect: ['spec.cronSpec: Required value', 'spec.image: Required value'],
    },
    {
      name: 'a value above the maximum',
      schema: cronTab,
      obj: { spec: { cronSpec: '* * * * *', image: 'x', replicas: 11 } },
      expect: ['spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10'],
    },
    {
      name: 'a value below the minimum',
      schema: cronTab,
      obj: { spec: { cronSpec: '* * * * *', image: 'x', replicas: 0 } },
      expect: ['spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1'],
    },
    {
      name: 'a string not matching the pattern',
      schema: cronTab,
      obj: { spec: { cronSpec: 'every minute', image: 'x' } },
      expect: [
        'spec.cronSpec: Invalid value: "every minute": spec.cronSpec in body should match \'^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$\'',
      ],
    },
    {
      name: 'a value outside the enum',
      schema: device,
      obj: { spec: { deviceModelRef: { name: 'm' }, protocol: { protocolName: 'zigbee' } } },
      expect: [
        'spec.protocol.protocolName: Unsupported value: "zigbee": supported values: "modbus", "opcua", "bluetooth", "mqtt", "virtual"',
      ],
    },
    {
      name: 'an item of an array with the wrong type, and a missing key',
      schema: device,
      obj: {
        spec: {
          deviceModelRef: { name: 'm' },
          properties: [{ name: 'a' }, { name: 'b', reportCycle: -1 }, {}],
        },
      },
      expect: [
        'spec.properties[1].reportCycle: Invalid value: -1: spec.properties[1].reportCycle in body should be greater than or equal to 0',
        'spec.properties[2].name: Required value',
      ],
    },
    {
      name: 'duplicate keys in a list map',
      schema: device,
      obj: {
        spec: { deviceModelRef: { name: 'm' }, properties: [{ name: 'a' }, { name: 'b' }, { name: 'a' }] },
      },
      expect: ['spec.properties[2]: Duplicate value: {"name":"a"}'],
    },
    {
      name: 'duplicate items in a set',
      schema: spec({ type: 'array', 'x-kubernetes-list-type': 'set', items: { type: 'string' } }),
      obj: { spec: ['a', 'b', 'a'] },
      expect: ['spec[2]: Duplicate value: "a"'],
    },
    {
      name: 'a map value of the wrong type',
      schema: device,
      obj: {
        spec: {
          deviceModelRef: { name: 'm' },
          properties: [{ name: 'a', desired: { metadata: { unit: 3 } } }],
        },
      },
      expect: [
        'spec.properties[0].desired.metadata.unit: Invalid value: "integer": spec.properties[0].desired.metadata.unit in body must be of type string: "integer"',
      ],
    },
    {
      name: 'a bad date-time',
      schema: device,
      obj: { spec: { deviceModelRef: { name: 'm' } }, status: { lastOnlineTime: 'yesterday' } },
      expect: [
        'status.lastOnlineTime: Invalid value: "yesterday": status.lastOnlineTime in body must be of type date-time: "yesterday"',
      ],
    },
    {
      name: 'null where the field is not nullable',
      schema: spec({ type: 'object', properties: { a: { type: 'string' } } }),
      obj: { spec: { a: null } },
      expect: ['spec.a: Invalid value: "null": spec.a in body must be of type string: "null"'],
    },
    {
      name: 'a string longer than maxLength',
      schema: spec({ type: 'string', maxLength: 3 }),
      obj: { spec: 'abcd' },
      expect: ['spec: Too long: may not be longer than 3'],
    },
    {
      name: 'a string shorter than minLength',
      schema: spec({ type: 'string', minLength: 2 }),
      obj: { spec: 'a' },
      expect: ['spec: Invalid value: "a": spec in body should be at least 2 chars long'],
    },
    {
      name: 'too many items',
      schema: spec({ type: 'array', maxItems: 1, items: { type: 'integer' } }),
      obj: { spec: [1, 2] },
      expect: ['spec: Too many: 2: must have at most 1 items'],
    },
    {
      name: 'too few items',
      schema: spec({ type: 'array', minItems: 2, items: { type: 'integer' } }),
      obj: { spec: [1] },
      expect: ['spec: Invalid value: 1: spec in body should have at least 2 items'],
    },
    {
      name: 'too many properties',
      schema: spec({ type: 'object', maxProperties: 1, additionalProperties: { type: 'string' } }),
      obj: { spec: { a: 'x', b: 'y' } },
      expect: ['spec: Too many: 2: must have at most 1 items'],
    },
    {
      name: 'too few properties',
      schema: spec({ type: 'object', minProperties: 1, additionalProperties: { type: 'string' } }),
      obj: { spec: {} },
      expect: ['spec: Invalid value: 0: spec in body should have at least 1 properties'],
    },
    {
      name: 'an exclusive maximum reached',
      schema: spec({ type: 'number', maximum: 1, exclusiveMaximum: true }),
      obj: { spec: 1 },
      expect: ['spec: Invalid value: 1: spec in body should be less than 1'],
    },
    {
      name: 'an int32 out of range',
      schema: spec({ type: 'integer', format: 'int32' }),
      obj: { spec: 2 ** 31 },
      expect: ['spec: Invalid value: 2147483648: spec in body must be of type int32: "2147483648"'],
    },
    {
      name: 'a boolean for int-or-string',
      schema: spec({ 'x-kubernetes-int-or-string': true }),
      obj: { spec: true },
      expect: ['spec: Invalid value: "boolean": spec in body must be of type integer,string: "boolean"'],
    },
    {
      name: 'an object where an array belongs',
      schema: spec({ type: 'array', items: { type: 'string' } }),
      obj: { spec: { a: 1 } },
      expect: ['spec: Invalid value: "object": spec in body must be of type array: "object"'],
    },
    {
      name: 'an embedded resource without kind',
      schema: spec({
        type: 'object',
        'x-kubernetes-embedded-resource': true,
        'x-kubernetes-preserve-unknown-fields': true,
      }),
      obj: { spec: { apiVersion: 'v1' } },
      expect: ['spec.kind: Required value: must not be empty'],
    },
    {
      name: 'no anyOf alternative matching',
      schema: spec({
        type: 'object',
        properties: { a: { type: 'string' }, b: { type: 'string' } },
        anyOf: [{ required: ['a'] }, { required: ['b'] }],
      }),
      obj: { spec: {} },
      expect: [
        'spec: Invalid value: "": "spec" must validate at least one schema (anyOf)',
        'spec.a: Required value',
      ],
    },
    {
      name: 'two oneOf alternatives matching',
      schema: spec({
        type: 'object',
        properties: { a: { type: 'string' }, b: { type: 'string' } },
        oneOf: [{ required: ['a'] }, { required: ['b'] }],
      }),
      obj: { spec: { a: 'x', b: 'y' } },
      expect: ['spec: Invalid value: "": "spec" must validate one and only one schema (oneOf)'],
    },
    {
      name: 'a value the not schema matches',
      schema: spec({ type: 'string', not: { enum: ['forbidden'] } }),
      obj: { spec: 'forbidden' },
      expect: ['spec: Invalid value: "": "spec" must not validate the schema (not)'],
    },
    {
      name: 'an allOf constraint failing',
      schema: spec({ type: 'integer', allOf: [{ minimum: 5 }] }),
      obj: { spec: 1 },
      expect: ['spec: Invalid value: 1: spec in body should be greater than or equal to 5'],
    },
  ];
  for (const c of cases) {
    it(`reports ${c.name}`, () => assert.deepEqual(check(c.schema, c.obj), c.expect));
  }

  it('accepts what the schema allows', () => {
    const schema = spec({
      type: 'object',
      properties: {
        n: { type: 'number' },
        ios: { 'x-kubernetes-int-or-string': true },
        opt: { type: 'string', nullable: true },
        any: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        when: { type: 'string', format: 'date' },
        id: { type: 'string', format: 'uuid' },
        ip: { type: 'string', format: 'ipv4' },
        ip6: { type: 'string', format: 'ipv6' },
        data: { type: 'string', format: 'byte' },
        tags: { type: 'array', 'x-kubernetes-list-type': 'set', items: { type: 'string' } },
      },
    });
    const obj = {
      spec: {
        n: 3,
        ios: '50%',
        opt: null,
        any: { deep: [1, { x: null }] },
        when: '2024-02-29',
        id: '123e4567-e89b-12d3-a456-426614174000',
        ip: '10.0.0.1',
        ip6: 'fe80::1',
        data: 'aGVsbG8=',
        tags: ['a', 'b'],
        unknown: 'ignored by validation',
      },
    };
    assert.deepEqual(check(schema, obj), []);
  });

  it('refuses bad formats', () => {
    const schema = spec({
      type: 'object',
      properties: {
        when: { type: 'string', format: 'date' },
        id: { type: 'string', format: 'uuid' },
        ip: { type: 'string', format: 'ipv4' },
        data: { type: 'string', format: 'byte' },
      },
    });
    const got = check(schema, { spec: { when: '2023-02-29', id: 'x', ip: '10.0.0.256', data: 'a' } });
    assert.deepEqual(
      got.map((l) => l.split(':')[0]),
      ['spec.when', 'spec.id', 'spec.ip', 'spec.data'],
    );
  });
});
