/** Checks that a CRD version's openAPIV3Schema is structural, the way Kubernetes does on CRD create/update. */
import { isPlainObject } from '../meta.ts';
import { defaultValue } from './defaults.ts';
import {
  child,
  type FieldError,
  forbidden,
  invalid,
  notSupported,
  required,
  typeInvalid,
} from './field-error.ts';
import { compilePattern, getOwn, jsonEqual } from './json.ts';
import { pruneValue } from './prune.ts';
import type { JSONSchemaProps } from './types.ts';
import { validateValue } from './validate.ts';

const SCHEMA_TYPES = ['array', 'boolean', 'integer', 'number', 'object', 'string'];
const SCALAR_TYPES = new Set(['boolean', 'integer', 'number', 'string']);
const UNSUPPORTED = [
  '$ref',
  '$schema',
  'id',
  'definitions',
  'patternProperties',
  'dependencies',
  'additionalItems',
];
/** Keys a value validation (inside allOf/anyOf/oneOf/not) must leave to the structural part. */
const STRUCTURAL_ONLY = [
  'type',
  'default',
  'nullable',
  'additionalProperties',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-int-or-string',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
];
const METADATA_ALLOWED = new Set(['type', 'properties', 'description', 'title']);

type Shape = 'string' | 'boolean' | 'number' | 'integer' | 'object' | 'array' | 'string[]';

const SHAPES: Readonly<Record<string, Shape>> = {
  type: 'string',
  format: 'string',
  title: 'string',
  description: 'string',
  pattern: 'string',
  properties: 'object',
  required: 'string[]',
  enum: 'array',
  nullable: 'boolean',
  minimum: 'number',
  maximum: 'number',
  exclusiveMinimum: 'boolean',
  exclusiveMaximum: 'boolean',
  multipleOf: 'number',
  minLength: 'integer',
  maxLength: 'integer',
  minItems: 'integer',
  maxItems: 'integer',
  minProperties: 'integer',
  maxProperties: 'integer',
  uniqueItems: 'boolean',
  allOf: 'array',
  anyOf: 'array',
  oneOf: 'array',
  not: 'object',
  externalDocs: 'object',
  'x-kubernetes-preserve-unknown-fields': 'boolean',
  'x-kubernetes-int-or-string': 'boolean',
  'x-kubernetes-embedded-resource': 'boolean',
  'x-kubernetes-list-type': 'string',
  'x-kubernetes-list-map-keys': 'string[]',
  'x-kubernetes-map-type': 'string',
  'x-kubernetes-validations': 'array',
};

function hasShape(value: unknown, shape: Shape): boolean {
  switch (shape) {
    case 'string':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value) && value >= 0;
    case 'object':
      return isPlainObject(value);
    case 'array':
      return Array.isArray(value);
    case 'string[]':
      return Array.isArray(value) && value.every((v) => typeof v === 'string');
  }
}

interface Ctx {
  /** Where the node sits: the root, a property, array items or additionalProperties. */
  readonly where: 'root' | 'property' | 'items' | 'additionalProperties';
  /** Inside allOf/anyOf/oneOf/not. */
  readonly junctor: boolean;
  /** The structural node a value validation node must mirror (for junctors). */
  readonly outer: JSONSchemaProps | undefined;
  /** The parent allows `type` in value validations (x-kubernetes-int-or-string's anyOf pattern). */
  readonly intOrString: boolean;
  /** The node is `metadata` of the root or of an embedded resource. */
  readonly metadata: boolean;
}

/**
 * Errors that make `schema` (at `path`, e.g. `spec.versions[0].schema.openAPIV3Schema`) non-structural or
 * invalid; defaults are checked against their schema once the schema itself is sound.
 */
export function validateStructuralSchema(schema: unknown, path: string): FieldError[] {
  const errors: FieldError[] = [];
  checkNode(schema, path, errors, {
    where: 'root',
    junctor: false,
    outer: undefined,
    intOrString: false,
    metadata: false,
  });
  if (errors.length === 0) checkDefaults(schema as JSONSchemaProps, path, '', errors);
  return errors;
}

function checkNode(node: unknown, path: string, errors: FieldError[], ctx: Ctx): void {
  if (!isPlainObject(node)) {
    errors.push(typeInvalid(path, node, 'must be a schema object'));
    return;
  }
  const before = errors.length;
  for (const [key, shape] of Object.entries(SHAPES)) {
    if (node[key] !== undefined && !hasShape(node[key], shape)) {
      const detail = shape === 'integer' ? 'must be a non-negative integer' : `must be of type ${shape}`;
      errors.push(typeInvalid(child(path, key), node[key], detail));
    }
  }
  for (const key of UNSUPPORTED) {
    if (node[key] !== undefined) errors.push(forbidden(child(path, key), `${key} is not supported`));
  }
  const items = node['items'];
  if (Array.isArray(items)) {
    errors.push(forbidden(child(path, 'items'), 'items must be a schema object and not an array'));
  } else if (items !== undefined && !isPlainObject(items)) {
    errors.push(typeInvalid(child(path, 'items'), items, 'must be a schema object'));
  }
  const ap = node['additionalProperties'];
  if (ap !== undefined && typeof ap !== 'boolean' && !isPlainObject(ap)) {
    errors.push(typeInvalid(child(path, 'additionalProperties'), ap, 'must be a boolean or a schema object'));
  }
  if (errors.length > before) return;
  const s = node as JSONSchemaProps;

  if (ctx.junctor) checkValueValidation(s, path, errors, ctx);
  else checkStructuralNode(s, path, errors, ctx);

  if (s.pattern !== undefined) {
    const re = compilePattern(s.pattern);
    if (re instanceof Error) {
      errors.push(
        invalid(
          child(path, 'pattern'),
          s.pattern,
          `must be a valid regular expression, but isn't: ${re.message}`,
        ),
      );
    }
  }
  if (s.uniqueItems === true) {
    errors.push(
      forbidden(
        child(path, 'uniqueItems'),
        'uniqueItems cannot be set to true since the runtime complexity becomes quadratic',
      ),
    );
  }
  if (s.multipleOf !== undefined && s.multipleOf <= 0) {
    errors.push(invalid(child(path, 'multipleOf'), s.multipleOf, 'must be greater than zero'));
  }
  const rules = s['x-kubernetes-validations'];
  if (rules !== undefined) {
    rules.forEach((r: unknown, i) => {
      const rp = `${path}.x-kubernetes-validations[${i}]`;
      if (!isPlainObject(r)) errors.push(typeInvalid(rp, r, 'must be an object'));
      else if (typeof r['rule'] !== 'string' || r['rule'] === '') errors.push(required(child(rp, 'rule')));
    });
  }

  // Children.
  const embedded = s['x-kubernetes-embedded-resource'] === true;
  for (const [key, prop] of Object.entries(s.properties ?? {})) {
    const isMeta = !ctx.junctor && (ctx.where === 'root' || embedded) && key === 'metadata';
    checkNode(prop, `${path}.properties[${key}]`, errors, {
      where: 'property',
      junctor: ctx.junctor,
      outer: getOwn(ctx.outer?.properties, key) as JSONSchemaProps | undefined,
      intOrString: false,
      metadata: isMeta,
    });
    if (ctx.junctor && ctx.outer !== undefined && getOwn(ctx.outer.properties, key) === undefined) {
      errors.push(
        required(
          `${path}.properties[${key}]`,
          'must be specified in the structural part of the schema as well',
        ),
      );
    }
  }
  if (s.items !== undefined) {
    checkNode(s.items, `${path}.items`, errors, {
      where: 'items',
      junctor: ctx.junctor,
      outer: ctx.outer?.items,
      intOrString: false,
      metadata: false,
    });
  }
  if (isPlainObject(s.additionalProperties)) {
    checkNode(s.additionalProperties, `${path}.additionalProperties`, errors, {
      where: 'additionalProperties',
      junctor: ctx.junctor,
      outer: undefined,
      intOrString: false,
      metadata: false,
    });
  }
  const outer = ctx.junctor ? ctx.outer : s;
  const intOrString = !ctx.junctor && s['x-kubernetes-int-or-string'] === true;
  for (const j of ['allOf', 'anyOf', 'oneOf'] as const) {
    s[j]?.forEach((sub, i) => {
      checkNode(sub, `${path}.${j}[${i}]`, errors, {
        where: ctx.where,
        junctor: true,
        outer,
        intOrString,
        metadata: false,
      });
    });
  }
  if (s.not !== undefined) {
    checkNode(s.not, `${path}.not`, errors, {
      where: ctx.where,
      junctor: true,
      outer,
      intOrString,
      metadata: false,
    });
  }
  if (ctx.metadata) checkMetadata(s, path, errors);
  if (!ctx.junctor && (ctx.where === 'root' || embedded)) {
    for (const key of ['apiVersion', 'kind']) {
      const t = s.properties?.[key]?.type;
      if (t !== undefined && t !== 'string') {
        errors.push(invalid(`${path}.properties[${key}].type`, t, 'must be string'));
      }
    }
  }
}

function checkStructuralNode(s: JSONSchemaProps, path: string, errors: FieldError[], ctx: Ctx): void {
  const typePath = child(path, 'type');
  const intOrString = s['x-kubernetes-int-or-string'] === true;
  const preserve = s['x-kubernetes-preserve-unknown-fields'];
  const type = s.type ?? '';
  if (type !== '' && !SCHEMA_TYPES.includes(type)) errors.push(notSupported(typePath, type, SCHEMA_TYPES));
  if (ctx.where === 'root') {
    if (type === '') errors.push(required(typePath, 'must not be empty at the root'));
    else if (type !== 'object') errors.push(invalid(typePath, type, 'must be object at the root'));
  } else if (type === '' && !intOrString && preserve !== true) {
    const what =
      ctx.where === 'items'
        ? 'must not be empty for specified array items'
        : 'must not be empty for specified object fields';
    errors.push(required(typePath, what));
  }
  if (intOrString && type !== '') {
    errors.push(invalid(typePath, type, 'must be empty if x-kubernetes-int-or-string is true'));
  }
  if (preserve === false) {
    errors.push(
      invalid(child(path, 'x-kubernetes-preserve-unknown-fields'), false, 'must be true or undefined'),
    );
  }
  if (s['x-kubernetes-embedded-resource'] === true) {
    if (type !== 'object') {
      errors.push(invalid(typePath, type, 'must be object if x-kubernetes-embedded-resource is true'));
    }
    if (preserve !== true && Object.keys(s.properties ?? {}).length === 0) {
      errors.push(
        required(
          child(path, 'x-kubernetes-preserve-unknown-fields'),
          'must be true if x-kubernetes-embedded-resource is true and properties is empty',
        ),
      );
    }
  }
  if (s.additionalProperties !== undefined) {
    const apPath = child(path, 'additionalProperties');
    if (s.properties !== undefined) {
      errors.push(forbidden(apPath, 'additionalProperties and properties are mutual exclusive'));
    } else if (s.additionalProperties === false) {
      errors.push(forbidden(apPath, 'additionalProperties cannot be set to false'));
    }
    if (type !== '' && type !== 'object') errors.push(forbidden(apPath, 'must be empty for type != object'));
  }
  if (s.properties !== undefined && type !== '' && type !== 'object') {
    errors.push(forbidden(child(path, 'properties'), 'must be empty for type != object'));
  }
  if (type === 'array' && s.items === undefined)
    errors.push(required(child(path, 'items'), 'must be specified'));
  if (s.items !== undefined && type !== '' && type !== 'array') {
    errors.push(forbidden(child(path, 'items'), 'must be empty for type != array'));
  }
  checkListAndMapType(s, path, errors);
}

function checkListAndMapType(s: JSONSchemaProps, path: string, errors: FieldError[]): void {
  const listType = s['x-kubernetes-list-type'];
  const keys = s['x-kubernetes-list-map-keys'];
  const ltPath = child(path, 'x-kubernetes-list-type');
  const keysPath = child(path, 'x-kubernetes-list-map-keys');
  if (listType !== undefined) {
    if (!['atomic', 'set', 'map'].includes(listType)) {
      errors.push(notSupported(ltPath, listType, ['atomic', 'set', 'map']));
    } else if (s.type !== 'array') {
      errors.push(invalid(ltPath, listType, 'must only be used if type is array'));
    }
  }
  if (listType === 'map') {
    const items = s.items;
    if (keys === undefined || keys.length === 0) {
      errors.push(required(keysPath, 'must not be empty if x-kubernetes-list-type is map'));
    } else if (items !== undefined) {
      if (items.type !== 'object') {
        errors.push(
          invalid(
            `${path}.items.type`,
            items.type ?? '',
            'must be object if parent array is a list of type map',
          ),
        );
      }
      const seen = new Set<string>();
      keys.forEach((k, i) => {
        const kp = `${keysPath}[${i}]`;
        if (seen.has(k)) errors.push(invalid(kp, k, 'must not contain duplicates'));
        seen.add(k);
        const prop = getOwn(items.properties, k) as JSONSchemaProps | undefined;
        if (prop === undefined) {
          errors.push(invalid(keysPath, keys, 'entries must all be names of item properties'));
        } else if (!SCALAR_TYPES.has(prop.type ?? '') && prop['x-kubernetes-int-or-string'] !== true) {
          errors.push(
            invalid(
              `${path}.items.properties[${k}].type`,
              prop.type ?? '',
              'must be a scalar type if parent array is a list of type map',
            ),
          );
        }
      });
    }
  } else if (keys !== undefined && keys.length > 0) {
    errors.push(forbidden(keysPath, 'must be empty if x-kubernetes-list-type is not map'));
  }
  if (listType === 'set' && isPlainObject(s.items)) {
    const items = s.items;
    if (items.type === 'object' && items['x-kubernetes-map-type'] !== 'atomic') {
      errors.push(
        forbidden(
          `${path}.items.x-kubernetes-map-type`,
          'must be atomic as item of a list with x-kubernetes-list-type=set',
        ),
      );
    } else if (items.type === 'array' && (items['x-kubernetes-list-type'] ?? 'atomic') !== 'atomic') {
      errors.push(
        forbidden(
          `${path}.items.x-kubernetes-list-type`,
          'must be atomic as item of a list with x-kubernetes-list-type=set',
        ),
      );
    }
  }
  const mapType = s['x-kubernetes-map-type'];
  if (mapType !== undefined) {
    const mtPath = child(path, 'x-kubernetes-map-type');
    if (!['granular', 'atomic'].includes(mapType)) {
      errors.push(notSupported(mtPath, mapType, ['granular', 'atomic']));
    } else if (s.type !== 'object') {
      errors.push(invalid(mtPath, mapType, 'must only be used if type is object'));
    }
  }
}

function checkValueValidation(s: JSONSchemaProps, path: string, errors: FieldError[], ctx: Ctx): void {
  for (const key of STRUCTURAL_ONLY) {
    if (key === 'type' && ctx.intOrString) continue;
    if (s[key as keyof JSONSchemaProps] !== undefined) {
      errors.push(forbidden(child(path, key), 'must be empty to be structural'));
    }
  }
}

function checkMetadata(s: JSONSchemaProps, path: string, errors: FieldError[]): void {
  const extra = Object.keys(s).filter((k) => !METADATA_ALLOWED.has(k));
  const props = Object.keys(s.properties ?? {}).filter((k) => k !== 'name' && k !== 'generateName');
  if (extra.length > 0 || props.length > 0) {
    errors.push(
      forbidden(
        path,
        'must not specify anything other than name and generateName, but metadata is implicitly specified',
      ),
    );
  }
  if (s.type !== undefined && s.type !== 'object')
    errors.push(invalid(child(path, 'type'), s.type, 'must be object'));
  for (const key of ['name', 'generateName']) {
    const t = s.properties?.[key]?.type;
    if (t !== undefined && t !== 'string')
      errors.push(invalid(`${path}.properties[${key}].type`, t, 'must be string'));
  }
}

/** Every default must survive pruning unchanged and validate against its own schema. */
function checkDefaults(s: JSONSchemaProps, path: string, dataPath: string, errors: FieldError[]): void {
  if (s.default !== undefined) {
    const dp = child(path, 'default');
    const pruned = pruneValue(s, s.default);
    if (!jsonEqual(pruned, s.default)) {
      errors.push(invalid(dp, s.default, 'must not have unknown fields'));
    } else {
      const value = defaultValue(s, s.default);
      for (const e of validateValue(s, value, dataPath)) {
        const suffix = e.field.startsWith(dataPath) ? e.field.slice(dataPath.length) : '';
        errors.push({
          ...e,
          field: dp + (suffix === '' || suffix.startsWith('[') ? suffix : `.${suffix.replace(/^\./, '')}`),
        });
      }
    }
  }
  for (const [key, prop] of Object.entries(s.properties ?? {})) {
    checkDefaults(prop, `${path}.properties[${key}]`, child(dataPath, key), errors);
  }
  if (isPlainObject(s.items)) checkDefaults(s.items, `${path}.items`, `${dataPath}[0]`, errors);
  if (isPlainObject(s.additionalProperties)) {
    checkDefaults(s.additionalProperties, `${path}.additionalProperties`, child(dataPath, '*'), errors);
  }
}
