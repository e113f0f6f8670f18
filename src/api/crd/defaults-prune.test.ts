import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cronTabCrdExample, deviceCrdExample, deviceExample } from './examples.ts';
import { applySchemaDefaults, type JSONSchemaProps, pruneUnknownFields, versionSchema } from './index.ts';

const device = versionSchema(deviceCrdExample(), 'v1beta1')!;
const cronTab = versionSchema(cronTabCrdExample(), 'v1')!;

function spec(s: JSONSchemaProps): JSONSchemaProps {
  return { type: 'object', properties: { spec: s } };
}

describe('applySchemaDefaults', () => {
  const cases: { name: string; schema: JSONSchemaProps; input: unknown; expect: unknown }[] = [
    {
      name: 'fills a missing field',
      schema: cronTab,
      input: { spec: { cronSpec: '* * * * *', image: 'x' } },
      expect: { spec: { cronSpec: '* * * * *', image: 'x', replicas: 1 } },
    },
    {
      name: 'keeps a field that is set',
      schema: cronTab,
      input: { spec: { replicas: 4 } },
      expect: { spec: { replicas: 4 } },
    },
    {
      name: 'does not create a missing parent',
      schema: cronTab,
      input: { metadata: { name: 'x' } },
      expect: { metadata: { name: 'x' } },
    },
    {
      name: 'defaults inside array items',
      schema: device,
      input: { spec: { properties: [{ name: 'a' }, { name: 'b', reportToCloud: false }] } },
      expect: {
        spec: {
          properties: [
            { name: 'a', collectCycle: 10000, reportToCloud: true },
            { name: 'b', collectCycle: 10000, reportToCloud: false },
          ],
        },
      },
    },
    {
      name: 'defaults inside additionalProperties values',
      schema: spec({
        type: 'object',
        additionalProperties: { type: 'object', properties: { port: { type: 'integer', default: 80 } } },
      }),
      input: { spec: { web: {}, api: { port: 8080 } } },
      expect: { spec: { web: { port: 80 }, api: { port: 8080 } } },
    },
    {
      name: 'defaults inside a default',
      schema: spec({
        type: 'object',
        properties: {
          probe: { type: 'object', default: {}, properties: { period: { type: 'integer', default: 10 } } },
        },
      }),
      input: { spec: {} },
      expect: { spec: { probe: { period: 10 } } },
    },
    {
      name: 'replaces a null that is not nullable',
      schema: spec({ type: 'object', properties: { a: { type: 'string', default: 'x' } } }),
      input: { spec: { a: null } },
      expect: { spec: { a: 'x' } },
    },
    {
      name: 'drops a null that is not nullable and has no default',
      schema: spec({ type: 'object', properties: { a: { type: 'string' } } }),
      input: { spec: { a: null } },
      expect: { spec: {} },
    },
    {
      name: 'keeps a null that is nullable',
      schema: spec({ type: 'object', properties: { a: { type: 'string', nullable: true, default: 'x' } } }),
      input: { spec: { a: null } },
      expect: { spec: { a: null } },
    },
    {
      name: 'replaces null array items when the items have a default',
      schema: spec({ type: 'array', items: { type: 'string', default: 'z' } }),
      input: { spec: ['a', null] },
      expect: { spec: ['a', 'z'] },
    },
    {
      name: 'leaves apiVersion, kind and metadata alone',
      schema: {
        type: 'object',
        properties: { kind: { type: 'string', default: 'X' }, spec: { type: 'object' } },
      },
      input: { metadata: {} },
      expect: { metadata: {} },
    },
    { name: 'leaves non-objects alone', schema: cronTab, input: 'text', expect: 'text' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const input = structuredClone(c.input);
      assert.deepEqual(applySchemaDefaults(c.schema, input), c.expect);
      assert.deepEqual(input, c.input, 'the input is not modified');
    });
  }

  it('gives every object its own copy of a default', () => {
    const out = applySchemaDefaults(
      spec({
        type: 'array',
        items: {
          type: 'object',
          properties: { tags: { type: 'array', items: { type: 'string' }, default: [] } },
        },
      }),
      { spec: [{}, {}] },
    ) as { spec: { tags: string[] }[] };
    out.spec[0]!.tags.push('x');
    assert.deepEqual(out.spec[1]!.tags, []);
  });
});

describe('pruneUnknownFields', () => {
  const cases: { name: string; schema: JSONSchemaProps; input: unknown; expect: unknown }[] = [
    {
      name: 'drops unknown fields at every level',
      schema: cronTab,
      input: { spec: { image: 'x', extra: 1 }, status: { replicas: 1, bogus: true }, other: {} },
      expect: { spec: { image: 'x' }, status: { replicas: 1 } },
    },
    {
      name: 'keeps apiVersion, kind and metadata at the root',
      schema: cronTab,
      input: {
        apiVersion: 'stable.example.com/v1',
        kind: 'CronTab',
        metadata: { name: 'a', labels: { x: 'y' } },
      },
      expect: {
        apiVersion: 'stable.example.com/v1',
        kind: 'CronTab',
        metadata: { name: 'a', labels: { x: 'y' } },
      },
    },
    {
      name: 'drops unknown fields inside array items',
      schema: device,
      input: { spec: { properties: [{ name: 'a', color: 'red' }] } },
      expect: { spec: { properties: [{ name: 'a' }] } },
    },
    {
      name: 'keeps everything under preserve-unknown-fields',
      schema: device,
      input: {
        spec: {
          protocol: { protocolName: 'modbus', configData: { slave: 1, nested: { deep: true } }, junk: 1 },
        },
      },
      expect: {
        spec: { protocol: { protocolName: 'modbus', configData: { slave: 1, nested: { deep: true } } } },
      },
    },
    {
      name: 'prunes known fields below preserve-unknown-fields',
      schema: spec({
        type: 'object',
        'x-kubernetes-preserve-unknown-fields': true,
        properties: { inner: { type: 'object', properties: { a: { type: 'string' } } } },
      }),
      input: { spec: { free: 1, inner: { a: 'x', b: 'y' } } },
      expect: { spec: { free: 1, inner: { a: 'x' } } },
    },
    {
      name: 'prunes inside additionalProperties values',
      schema: spec({
        type: 'object',
        additionalProperties: { type: 'object', properties: { a: { type: 'string' } } },
      }),
      input: { spec: { k1: { a: 'x', b: 'y' }, k2: {} } },
      expect: { spec: { k1: { a: 'x' }, k2: {} } },
    },
    {
      name: 'keeps apiVersion, kind and metadata of embedded resources',
      schema: spec({
        type: 'object',
        properties: {
          template: {
            type: 'object',
            'x-kubernetes-embedded-resource': true,
            properties: { spec: { type: 'object', properties: { image: { type: 'string' } } } },
          },
        },
      }),
      input: {
        spec: {
          template: {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: 'p' },
            spec: { image: 'x', cpu: 1 },
            other: 1,
          },
        },
      },
      expect: {
        spec: { template: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { image: 'x' } } },
      },
    },
    {
      name: 'drops apiVersion below the root when the schema does not declare it',
      schema: spec({ type: 'object', properties: { a: { type: 'string' } } }),
      input: { spec: { apiVersion: 'v1', a: 'x' } },
      expect: { spec: { a: 'x' } },
    },
    {
      name: 'leaves values of the wrong type for validation to report',
      schema: cronTab,
      input: { spec: 'not an object' },
      expect: { spec: 'not an object' },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const input = structuredClone(c.input);
      assert.deepEqual(pruneUnknownFields(c.schema, input), c.expect);
      assert.deepEqual(input, c.input, 'the input is not modified');
    });
  }

  it('treats a field named __proto__ as a field, not as the prototype', () => {
    const schema = spec({
      type: 'object',
      properties: { ['__proto__']: { type: 'object', properties: { a: { type: 'integer', default: 1 } } } },
    });
    const input = JSON.parse('{"spec":{"__proto__":{"b":2},"x":1}}');
    const pruned = pruneUnknownFields(schema, input) as { spec: Record<string, unknown> };
    assert.deepEqual(Object.keys(pruned.spec), ['__proto__']);
    assert.equal(Object.getPrototypeOf(pruned.spec), Object.prototype);
    const defaulted = applySchemaDefaults(schema, pruned) as { spec: Record<string, unknown> };
    assert.deepEqual(JSON.stringify(defaulted), '{"spec":{"__proto__":{"a":1}}}');
  });

  it('keeps a valid Device intact', () => {
    assert.deepEqual(pruneUnknownFields(device, deviceExample()), deviceExample());
  });
});
