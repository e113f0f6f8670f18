import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatFieldError, validateStructuralSchema } from './index.ts';

const P = 'spec.versions[0].schema.openAPIV3Schema';

function check(schema: unknown): string[] {
  return validateStructuralSchema(schema, P).map(formatFieldError);
}

/** A root schema with `spec` set to the given node. */
function withSpec(spec: unknown): unknown {
  return { type: 'object', properties: { spec } };
}

describe('validateStructuralSchema', () => {
  const valid: { name: string; schema: unknown }[] = [
    { name: 'an empty object root', schema: { type: 'object' } },
    {
      name: 'preserve-unknown-fields without type below the root',
      schema: withSpec({ 'x-kubernetes-preserve-unknown-fields': true }),
    },
    { name: 'int-or-string without type', schema: withSpec({ 'x-kubernetes-int-or-string': true }) },
    {
      name: 'int-or-string with its anyOf pattern',
      schema: withSpec({
        'x-kubernetes-int-or-string': true,
        anyOf: [{ type: 'integer' }, { type: 'string' }],
      }),
    },
    {
      name: 'a map of strings',
      schema: withSpec({ type: 'object', additionalProperties: { type: 'string' } }),
    },
    {
      name: 'value validations mirroring the structure',
      schema: withSpec({
        type: 'object',
        properties: { a: { type: 'string' }, b: { type: 'string' } },
        oneOf: [{ required: ['a'] }, { required: ['b'] }],
        anyOf: [{ properties: { a: { minLength: 1 } } }],
      }),
    },
    {
      name: 'metadata restricting name',
      schema: {
        type: 'object',
        properties: { metadata: { type: 'object', properties: { name: { type: 'string', maxLength: 20 } } } },
      },
    },
    {
      name: 'an embedded resource',
      schema: withSpec({
        type: 'object',
        'x-kubernetes-embedded-resource': true,
        'x-kubernetes-preserve-unknown-fields': true,
      }),
    },
    {
      name: 'a list map',
      schema: withSpec({
        type: 'array',
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
        items: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
      }),
    },
    {
      name: 'CEL rules (not evaluated)',
      schema: withSpec({ type: 'object', 'x-kubernetes-validations': [{ rule: 'self.a > 0' }] }),
    },
    { name: 'a default matching its schema', schema: withSpec({ type: 'integer', minimum: 1, default: 3 }) },
    {
      name: 'an object default whose own fields default',
      schema: withSpec({
        type: 'object',
        default: {},
        required: ['x'],
        properties: { x: { type: 'string', default: 'a' } },
      }),
    },
  ];
  for (const c of valid) {
    it(`accepts ${c.name}`, () => assert.deepEqual(check(c.schema), []));
  }

  const S = `${P}.properties[spec]`;
  const invalid: { name: string; schema: unknown; expect: string }[] = [
    {
      name: 'a root without type',
      schema: { properties: {} },
      expect: `${P}.type: Required value: must not be empty at the root`,
    },
    {
      name: 'a root that is not an object',
      schema: { type: 'string' },
      expect: `${P}.type: Invalid value: "string": must be object at the root`,
    },
    {
      name: 'array items without type',
      schema: withSpec({ type: 'array', items: { minLength: 1 } }),
      expect: `${S}.items.type: Required value: must not be empty for specified array items`,
    },
    {
      name: 'an unknown type',
      schema: withSpec({ type: 'text' }),
      expect: `${S}.type: Unsupported value: "text": supported values: "array", "boolean", "integer", "number", "object", "string"`,
    },
    {
      name: 'properties with additionalProperties',
      schema: withSpec({
        type: 'object',
        properties: { a: { type: 'string' } },
        additionalProperties: { type: 'string' },
      }),
      expect: `${S}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive`,
    },
    {
      name: 'additionalProperties false',
      schema: withSpec({ type: 'object', additionalProperties: false }),
      expect: `${S}.additionalProperties: Forbidden: additionalProperties cannot be set to false`,
    },
    {
      name: 'an array without items',
      schema: withSpec({ type: 'array' }),
      expect: `${S}.items: Required value: must be specified`,
    },
    {
      name: 'items given as a list',
      schema: withSpec({ type: 'array', items: [{ type: 'string' }] }),
      expect: `${S}.items: Forbidden: items must be a schema object and not an array`,
    },
    {
      name: '$ref',
      schema: withSpec({ type: 'object', $ref: '#/definitions/x' }),
      expect: `${S}.$ref: Forbidden: $ref is not supported`,
    },
    {
      name: 'uniqueItems true',
      schema: withSpec({ type: 'array', items: { type: 'string' }, uniqueItems: true }),
      expect: `${S}.uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic`,
    },
    {
      name: 'preserve-unknown-fields false',
      schema: withSpec({ type: 'object', 'x-kubernetes-preserve-unknown-fields': false }),
      expect: `${S}.x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined`,
    },
    {
      name: 'int-or-string with a type',
      schema: withSpec({ type: 'string', 'x-kubernetes-int-or-string': true }),
      expect: `${S}.type: Invalid value: "string": must be empty if x-kubernetes-int-or-string is true`,
    },
    {
      name: 'metadata restricting labels',
      schema: {
        type: 'object',
        properties: { metadata: { type: 'object', properties: { labels: { type: 'object' } } } },
      },
      expect: `${P}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified`,
    },
    {
      name: 'metadata.name that is not a string',
      schema: {
        type: 'object',
        properties: { metadata: { type: 'object', properties: { name: { type: 'integer' } } } },
      },
      expect: `${P}.properties[metadata].properties[name].type: Invalid value: "integer": must be string`,
    },
    {
      name: 'type in a value validation',
      schema: withSpec({ type: 'object', anyOf: [{ type: 'object' }] }),
      expect: `${S}.anyOf[0].type: Forbidden: must be empty to be structural`,
    },
    {
      name: 'a value validation naming a property the structure lacks',
      schema: withSpec({
        type: 'object',
        properties: { a: { type: 'string' } },
        allOf: [{ properties: { b: { minLength: 1 } } }],
      }),
      expect: `${S}.allOf[0].properties[b]: Required value`,
    },
    {
      name: 'a list map without keys',
      schema: withSpec({ type: 'array', 'x-kubernetes-list-type': 'map', items: { type: 'object' } }),
      expect: `${S}.x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map`,
    },
    {
      name: 'list map keys that are not item properties',
      schema: withSpec({
        type: 'array',
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['id'],
        items: { type: 'object', properties: { name: { type: 'string' } } },
      }),
      expect: 'entries must all be names of item properties',
    },
    {
      name: 'list map keys without list type map',
      schema: withSpec({ type: 'array', 'x-kubernetes-list-map-keys': ['id'], items: { type: 'string' } }),
      expect: `${S}.x-kubernetes-list-map-keys: Forbidden: must be empty if x-kubernetes-list-type is not map`,
    },
    {
      name: 'an unknown list type',
      schema: withSpec({ type: 'array', 'x-kubernetes-list-type': 'bag', items: { type: 'string' } }),
      expect: `${S}.x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", "set", "map"`,
    },
    {
      name: 'a list type on an object',
      schema: withSpec({ type: 'object', 'x-kubernetes-list-type': 'set' }),
      expect: `${S}.x-kubernetes-list-type: Invalid value: "set": must only be used if type is array`,
    },
    {
      name: 'a set of granular objects',
      schema: withSpec({ type: 'array', 'x-kubernetes-list-type': 'set', items: { type: 'object' } }),
      expect: `${S}.items.x-kubernetes-map-type: Forbidden: must be atomic as item of a list with x-kubernetes-list-type=set`,
    },
    {
      name: 'an unknown map type',
      schema: withSpec({ type: 'object', 'x-kubernetes-map-type': 'sparse' }),
      expect: `${S}.x-kubernetes-map-type: Unsupported value: "sparse": supported values: "granular", "atomic"`,
    },
    {
      name: 'an invalid pattern',
      schema: withSpec({ type: 'string', pattern: '([a-z' }),
      expect: `${S}.pattern: Invalid value: "([a-z": must be a valid regular expression`,
    },
    {
      name: 'a negative maxLength',
      schema: withSpec({ type: 'string', maxLength: -1 }),
      expect: `${S}.maxLength: Invalid value: -1: must be a non-negative integer`,
    },
    {
      name: 'an embedded resource that is not an object',
      schema: withSpec({ type: 'string', 'x-kubernetes-embedded-resource': true }),
      expect: `${S}.type: Invalid value: "string": must be object if x-kubernetes-embedded-resource is true`,
    },
    {
      name: 'a default of the wrong type',
      schema: withSpec({ type: 'object', properties: { n: { type: 'integer', default: 'x' } } }),
      expect: `${S}.properties[n].default: Invalid value: "string": spec.n in body must be of type integer: "string"`,
    },
    {
      name: 'a default with unknown fields',
      schema: withSpec({ type: 'object', default: { a: 1, zzz: 2 }, properties: { a: { type: 'integer' } } }),
      expect: `${S}.default: Invalid value: {"a":1,"zzz":2}: must not have unknown fields`,
    },
    {
      name: 'a default not in the enum',
      schema: withSpec({ type: 'string', enum: ['a', 'b'], default: 'c' }),
      expect: `${S}.default: Unsupported value: "c": supported values: "a", "b"`,
    },
    {
      name: 'a CEL rule without its rule',
      schema: withSpec({ type: 'object', 'x-kubernetes-validations': [{ message: 'x' }] }),
      expect: `${S}.x-kubernetes-validations[0].rule: Required value`,
    },
    {
      name: 'a schema that is not an object',
      schema: withSpec('string'),
      expect: `${S}: Invalid value: "string": must be a schema object`,
    },
  ];
  for (const c of invalid) {
    it(`refuses ${c.name}`, () => {
      const got = check(c.schema);
      assert.ok(
        got.some((l) => l.startsWith(c.expect) || l.includes(c.expect)),
        `expected an error like ${JSON.stringify(c.expect)}, got ${JSON.stringify(got, null, 1)}`,
      );
    });
  }
});
