// Property tests: random structural schemas, values generated from them, and what must hold for those.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { cronTabCrdExample, deviceCrdExample } from './examples.ts';
import {
  applySchemaDefaults,
  formatFieldError,
  type JSONSchemaProps,
  pruneUnknownFields,
  validateCustomResource,
  validateStructuralSchema,
  versionSchema,
} from './index.ts';
import { canonicalJson } from './json.ts';

const propName = fc.constantFrom(
  'a',
  'b',
  'c',
  'name',
  'spec',
  'status',
  'items',
  '__proto__',
  'constructor',
);

const stringSchema: fc.Arbitrary<JSONSchemaProps> = fc.oneof(
  fc
    .record({ min: fc.nat(3), extra: fc.nat(6) })
    .map(({ min, extra }) => ({ type: 'string', minLength: min, maxLength: min + extra })),
  fc
    .uniqueArray(fc.string({ maxLength: 4 }), { minLength: 1, maxLength: 4 })
    .map((e) => ({ type: 'string', enum: e })),
  fc.constantFrom('date-time', 'date', 'uuid', 'ipv4', 'byte').map((format) => ({ type: 'string', format })),
  fc.constant({ type: 'string', pattern: '^[a-z][a-z0-9-]*$' }),
  fc.constant({ type: 'string' }),
);

const integerSchema: fc.Arbitrary<JSONSchemaProps> = fc
  .record({
    min: fc.option(fc.integer({ min: -1000, max: 1000 }), { nil: undefined }),
    span: fc.nat(1000),
    int32: fc.boolean(),
  })
  .map(({ min, span, int32 }) => ({
    type: 'integer',
    ...(min === undefined ? {} : { minimum: min, maximum: min + span }),
    ...(int32 ? { format: 'int32' } : {}),
  }));

const numberSchema: fc.Arbitrary<JSONSchemaProps> = fc
  .option(fc.integer({ min: -100, max: 100 }), { nil: undefined })
  .map((min) => ({ type: 'number', ...(min === undefined ? {} : { minimum: min, maximum: min + 10 }) }));

const scalarSchema = fc.oneof(
  stringSchema,
  integerSchema,
  numberSchema,
  fc.constant<JSONSchemaProps>({ type: 'boolean' }),
  fc.constant<JSONSchemaProps>({ 'x-kubernetes-int-or-string': true }),
);

const leafSchema = fc.oneof(
  { weight: 4, arbitrary: scalarSchema },
  {
    weight: 1,
    arbitrary: fc.constant<JSONSchemaProps>({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true }),
  },
);

function nullable(s: fc.Arbitrary<JSONSchemaProps>): fc.Arbitrary<JSONSchemaProps> {
  return fc.tuple(s, fc.boolean()).map(([schema, n]) => (n ? { ...schema, nullable: true } : schema));
}

const { node: nodeSchema } = fc.letrec<{
  node: JSONSchemaProps;
  object: JSONSchemaProps;
  map: JSONSchemaProps;
  array: JSONSchemaProps;
  set: JSONSchemaProps;
  listMap: JSONSchemaProps;
}>((tie) => ({
  node: nullable(
    fc.oneof(
      { maxDepth: 3, depthIdentifier: 'schema' },
      leafSchema,
      tie('object'),
      tie('map'),
      tie('array'),
      tie('set'),
      tie('listMap'),
    ),
  ),
  object: fc.dictionary(propName, tie('node'), { maxKeys: 4, noNullPrototype: true }).chain((properties) =>
    fc.subarray(Object.keys(properties)).map((req) => ({
      type: 'object',
      properties,
      ...(req.length > 0 ? { required: req } : {}),
    })),
  ),
  map: tie('node').map((ap) => ({ type: 'object', additionalProperties: ap })),
  array: fc
    .record({ items: tie('node'), min: fc.nat(2), extra: fc.nat(3) })
    .map(({ items, min, extra }) => ({ type: 'array', items, minItems: min, maxItems: min + extra })),
  set: fc.constantFrom<JSONSchemaProps>({ type: 'string' }, { type: 'integer' }).map((items) => ({
    type: 'array',
    'x-kubernetes-list-type': 'set',
    items,
  })),
  listMap: fc
    .dictionary(fc.constantFrom('a', 'b', 'c'), tie('node'), { maxKeys: 2, noNullPrototype: true })
    .map((rest) => ({
      type: 'array',
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      items: { type: 'object', required: ['name'], properties: { ...rest, name: { type: 'string' } } },
    })),
}));

const rootSchema: fc.Arbitrary<JSONSchemaProps> = fc
  .dictionary(propName, nodeSchema, { maxKeys: 3, noNullPrototype: true })
  .map((properties) => ({ type: 'object', properties }));

const jsonLeaf = fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.boolean(), fc.constant(null));
const anyJson = fc.jsonValue({ maxDepth: 2 });

function ownObject(entries: [string, unknown][]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries)
    Object.defineProperty(out, k, { value: v, writable: true, enumerable: true, configurable: true });
  return out;
}

/** Values that satisfy `s` (without defaults applied: optional fields may be absent). */
function arbitraryValue(s: JSONSchemaProps): fc.Arbitrary<unknown> {
  const base = baseArbitraryValue(s);
  return s.nullable === true ? fc.oneof(base, fc.constant(null)) : base;
}

function baseArbitraryValue(s: JSONSchemaProps): fc.Arbitrary<unknown> {
  if (s['x-kubernetes-int-or-string'] === true) return fc.oneof(fc.integer(), fc.string({ maxLength: 5 }));
  if (s['x-kubernetes-preserve-unknown-fields'] === true && s.properties === undefined) {
    return fc.dictionary(fc.string({ maxLength: 4 }), anyJson, { maxKeys: 3, noNullPrototype: true });
  }
  switch (s.type) {
    case 'string':
      if (s.enum !== undefined) return fc.constantFrom(...s.enum);
      if (s.pattern !== undefined) return fc.stringMatching(new RegExp(s.pattern));
      switch (s.format) {
        case 'date-time':
          return fc
            .date({ min: new Date(0), max: new Date(Date.UTC(2200, 0)), noInvalidDate: true })
            .map((d) => d.toISOString());
        case 'date':
          return fc
            .date({ min: new Date(0), max: new Date(Date.UTC(2200, 0)), noInvalidDate: true })
            .map((d) => d.toISOString().slice(0, 10));
        case 'uuid':
          return fc.uuid();
        case 'ipv4':
          return fc.ipV4();
        case 'byte':
          return fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b).toString('base64'));
        default:
          return fc.string({ minLength: s.minLength ?? 0, maxLength: s.maxLength ?? 8 });
      }
    case 'integer':
      return fc.integer({ min: s.minimum ?? -(2 ** 31), max: s.maximum ?? 2 ** 31 - 1 });
    case 'number':
      return fc.double({
        min: s.minimum ?? -1e6,
        max: s.maximum ?? 1e6,
        noNaN: true,
        noDefaultInfinity: true,
      });
    case 'boolean':
      return fc.boolean();
    case 'array': {
      const items = s.items!;
      const listType = s['x-kubernetes-list-type'];
      if (listType === 'set')
        return fc.uniqueArray(arbitraryValue(items), { selector: canonicalJson, maxLength: 4 });
      if (listType === 'map') {
        return fc.uniqueArray(arbitraryValue(items), {
          selector: (v) => (v as { name: string }).name,
          maxLength: 4,
        });
      }
      return fc.array(arbitraryValue(items), { minLength: s.minItems ?? 0, maxLength: s.maxItems ?? 4 });
    }
    case 'object': {
      if (s.additionalProperties !== undefined && typeof s.additionalProperties === 'object') {
        return fc.dictionary(fc.string({ maxLength: 4 }), arbitraryValue(s.additionalProperties), {
          maxKeys: 3,
          noNullPrototype: true,
        });
      }
      const props = Object.entries(s.properties ?? {});
      const required = new Set(s.required ?? []);
      return fc
        .tuple(
          ...props.map(([k, p]) =>
            fc.tuple(fc.constant(k), arbitraryValue(p), required.has(k) ? fc.constant(true) : fc.boolean()),
          ),
        )
        .map((entries) => ownObject(entries.filter(([, , keep]) => keep).map(([k, v]) => [k, v])));
    }
    default:
      return jsonLeaf;
  }
}

/** `v` with unknown fields added wherever the schema would prune them. */
function withUnknownFields(s: JSONSchemaProps, v: unknown): fc.Arbitrary<unknown> {
  if (Array.isArray(v)) {
    const items = s.items;
    if (items === undefined) return fc.constant(v);
    return fc.tuple(...v.map((item) => withUnknownFields(items, item)));
  }
  if (typeof v !== 'object' || v === null) return fc.constant(v);
  const obj = v as Record<string, unknown>;
  const props = s.properties ?? {};
  const ap = typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined;
  const known = Object.keys(obj).map((k) => {
    const p = Object.hasOwn(props, k) ? props[k] : ap;
    return fc.tuple(fc.constant(k), p === undefined ? fc.constant(obj[k]) : withUnknownFields(p, obj[k]));
  });
  const addExtras = s.properties !== undefined && s['x-kubernetes-preserve-unknown-fields'] !== true;
  const extras = addExtras
    ? fc.dictionary(
        fc.string({ minLength: 1, maxLength: 4 }).map((k) => `x-${k}`),
        anyJson,
        { maxKeys: 2, noNullPrototype: true },
      )
    : fc.constant({});
  return fc
    .tuple(fc.tuple(...known), extras)
    .map(([entries, more]) => ownObject([...entries, ...Object.entries(more)]));
}

/** The schema with defaults (values valid for their node) sprinkled below the root. */
function withDefaults(s: JSONSchemaProps, root: boolean): fc.Arbitrary<JSONSchemaProps> {
  const props = Object.entries(s.properties ?? {});
  const ap = typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined;
  const childArbs = fc.record({
    props: fc.tuple(...props.map(([k, p]) => withDefaults(p, false).map((d) => [k, d] as const))),
    items: s.items === undefined ? fc.constant(undefined) : withDefaults(s.items, false),
    ap: ap === undefined ? fc.constant(undefined) : withDefaults(ap, false),
  });
  return childArbs.chain(({ props: ps, items, ap: apd }) => {
    const next: JSONSchemaProps = { ...s };
    if (ps.length > 0)
      next.properties = ownObject(ps.map(([k, d]) => [k, d])) as Record<string, JSONSchemaProps>;
    if (items !== undefined) next.items = items;
    if (apd !== undefined) next.additionalProperties = apd;
    if (root) return fc.constant(next);
    return fc
      .option(arbitraryValue(next), { nil: undefined, freq: 3 })
      .map((d) => (d === undefined ? next : { ...next, default: d }));
  });
}

const schemaWithDefaults = rootSchema.chain((s) => withDefaults(s, true));

function errorsOf(schema: JSONSchemaProps, value: unknown): string[] {
  return validateCustomResource(schema, value).map(formatFieldError);
}

const exampleSchemas = [
  versionSchema(deviceCrdExample(), 'v1beta1')!,
  versionSchema(cronTabCrdExample(), 'v1')!,
];

describe('crd property tests', () => {
  it('generated schemas are structural', () => {
    fc.assert(
      fc.property(schemaWithDefaults, (s) => {
        assert.deepEqual(validateStructuralSchema(s, 'schema').map(formatFieldError), []);
      }),
      { numRuns: 300 },
    );
  });

  it('objects generated from a schema always validate', () => {
    const pair = fc
      .oneof(rootSchema, fc.constantFrom(...exampleSchemas))
      .chain((s) => fc.tuple(fc.constant(s), arbitraryValue(s)));
    fc.assert(
      fc.property(pair, ([s, v]) => {
        assert.deepEqual(errorsOf(s, v), []);
      }),
      { numRuns: 500 },
    );
  });

  it('defaulting is idempotent and keeps valid objects valid', () => {
    const pair = schemaWithDefaults.chain((s) => fc.tuple(fc.constant(s), arbitraryValue(s)));
    fc.assert(
      fc.property(pair, ([s, v]) => {
        const once = applySchemaDefaults(s, v);
        assert.deepEqual(applySchemaDefaults(s, once), once);
        assert.deepEqual(errorsOf(s, once), []);
      }),
      { numRuns: 500 },
    );
  });

  it('defaulting is idempotent on arbitrary input', () => {
    const pair = schemaWithDefaults.chain((s) =>
      fc.tuple(
        fc.constant(s),
        fc.dictionary(fc.constantFrom('a', 'b', 'spec', 'name', 'x'), anyJson, { noNullPrototype: true }),
      ),
    );
    fc.assert(
      fc.property(pair, ([s, v]) => {
        const once = applySchemaDefaults(s, v);
        assert.deepEqual(applySchemaDefaults(s, once), once);
      }),
      { numRuns: 300 },
    );
  });

  it('pruning never removes declared fields, removes the unknown ones, and is idempotent', () => {
    const triple = fc
      .oneof(rootSchema, fc.constantFrom(...exampleSchemas))
      .chain((s) =>
        arbitraryValue(s).chain((v) => fc.tuple(fc.constant(s), fc.constant(v), withUnknownFields(s, v))),
      );
    fc.assert(
      fc.property(triple, ([s, clean, dirty]) => {
        assert.deepEqual(pruneUnknownFields(s, clean), clean);
        const pruned = pruneUnknownFields(s, dirty);
        assert.deepEqual(pruned, clean);
        assert.deepEqual(pruneUnknownFields(s, pruned), pruned);
      }),
      { numRuns: 500 },
    );
  });
});
