/** Validation of a custom resource against its structural schema, with Kubernetes' paths and messages. */
import { isPlainObject } from '../meta.ts';
import {
  child,
  duplicate,
  type FieldError,
  forbidden,
  invalid,
  notSupported,
  required,
  tooLong,
  tooMany,
  typeInvalid,
} from './field-error.ts';
import { checkNumberFormat, checkStringFormat } from './formats.ts';
import { canonicalJson, compilePattern, getOwn, jsonEqual, jsonTypeOf } from './json.ts';
import type { JSONSchemaProps } from './types.ts';

/** Fields of the root (and of embedded resources) that the API server checks itself. */
export const ROOT_FIELDS: ReadonlySet<string> = new Set(['apiVersion', 'kind', 'metadata']);

/**
 * Validates a custom resource against a structural schema: everything but apiVersion, kind and metadata
 * at the root, which the caller validates. CEL rules (x-kubernetes-validations) are not evaluated.
 */
export function validateCustomResource(schema: JSONSchemaProps, obj: unknown): FieldError[] {
  const errors: FieldError[] = [];
  validateNode(schema, obj, '', errors, true);
  return errors;
}

/** Validates a value at `path` against a schema node (used for defaults too). */
export function validateValue(schema: JSONSchemaProps, value: unknown, path: string): FieldError[] {
  const errors: FieldError[] = [];
  validateNode(schema, value, path, errors, false);
  return errors;
}

function name(path: string): string {
  return path === '' ? '.' : path;
}

function typeError(path: string, type: string, value: unknown): FieldError {
  const actual = jsonTypeOf(value);
  return typeInvalid(
    path,
    actual,
    `${name(path)} in body must be of type ${type}: ${JSON.stringify(actual)}`,
  );
}

function typeMatches(type: string, value: unknown): boolean {
  const actual = jsonTypeOf(value);
  return actual === type || (type === 'number' && actual === 'integer');
}

function validateNode(
  s: JSONSchemaProps,
  value: unknown,
  path: string,
  errors: FieldError[],
  root: boolean,
): void {
  const intOrString = s['x-kubernetes-int-or-string'] === true;
  if (value === null || value === undefined) {
    if (s.nullable === true) return;
    if (intOrString) errors.push(typeError(path, 'integer,string', value));
    else if (s.type !== undefined && s.type !== '') errors.push(typeError(path, s.type, value));
    validateJunctors(s, value, path, errors);
    return;
  }
  if (intOrString) {
    const t = jsonTypeOf(value);
    if (t !== 'integer' && t !== 'string') {
      errors.push(typeError(path, 'integer,string', value));
      return;
    }
  } else if (s.type !== undefined && s.type !== '' && !typeMatches(s.type, value)) {
    errors.push(typeError(path, s.type, value));
    return;
  }

  if (s.enum !== undefined && !s.enum.some((e) => jsonEqual(e, value))) {
    const allowed = s.enum.map((e) => (typeof e === 'string' ? e : JSON.stringify(e)));
    errors.push(notSupported(path, value, allowed));
  }

  if (typeof value === 'number') validateNumber(s, value, path, errors);
  else if (typeof value === 'string') validateString(s, value, path, errors);
  else if (Array.isArray(value)) validateArray(s, value, path, errors);
  else if (isPlainObject(value)) validateObject(s, value, path, errors, root);

  validateJunctors(s, value, path, errors);
}

function validateNumber(s: JSONSchemaProps, v: number, path: string, errors: FieldError[]): void {
  const n = name(path);
  if (s.format !== undefined && !checkNumberFormat(s.format, v)) {
    errors.push(
      typeInvalid(path, v, `${n} in body must be of type ${s.format}: ${JSON.stringify(String(v))}`),
    );
  }
  if (s.maximum !== undefined) {
    if (s.exclusiveMaximum === true ? v >= s.maximum : v > s.maximum) {
      const rel = s.exclusiveMaximum === true ? 'less than' : 'less than or equal to';
      errors.push(invalid(path, v, `${n} in body should be ${rel} ${s.maximum}`));
    }
  }
  if (s.minimum !== undefined) {
    if (s.exclusiveMinimum === true ? v <= s.minimum : v < s.minimum) {
      const rel = s.exclusiveMinimum === true ? 'greater than' : 'greater than or equal to';
      errors.push(invalid(path, v, `${n} in body should be ${rel} ${s.minimum}`));
    }
  }
  if (s.multipleOf !== undefined && s.multipleOf > 0) {
    const q = v / s.multipleOf;
    if (Math.abs(q - Math.round(q)) > 1e-9) {
      errors.push(invalid(path, v, `${n} in body should be a multiple of ${s.multipleOf}`));
    }
  }
}

function validateString(s: JSONSchemaProps, v: string, path: string, errors: FieldError[]): void {
  const n = name(path);
  if (s.format !== undefined && !s['x-kubernetes-int-or-string'] && !checkStringFormat(s.format, v)) {
    errors.push(typeInvalid(path, v, `${n} in body must be of type ${s.format}: ${JSON.stringify(v)}`));
  }
  const length = [...v].length;
  if (s.maxLength !== undefined && length > s.maxLength) errors.push(tooLong(path, v, s.maxLength));
  if (s.minLength !== undefined && length < s.minLength) {
    errors.push(invalid(path, v, `${n} in body should be at least ${s.minLength} chars long`));
  }
  if (s.pattern !== undefined) {
    const re = compilePattern(s.pattern);
    if (re instanceof RegExp && !re.test(v)) {
      errors.push(invalid(path, v, `${n} in body should match '${s.pattern}'`));
    }
  }
}

function validateArray(s: JSONSchemaProps, v: unknown[], path: string, errors: FieldError[]): void {
  const n = name(path);
  if (s.maxItems !== undefined && v.length > s.maxItems) errors.push(tooMany(path, v.length, s.maxItems));
  if (s.minItems !== undefined && v.length < s.minItems) {
    errors.push(invalid(path, v.length, `${n} in body should have at least ${s.minItems} items`));
  }
  if (s.uniqueItems === true && new Set(v.map(canonicalJson)).size !== v.length) {
    errors.push(invalid(path, '', `${n} in body shouldn't contain duplicates`));
  }
  const listType = s['x-kubernetes-list-type'];
  if (listType === 'set') {
    const seen = new Set<string>();
    v.forEach((item, i) => {
      const key = canonicalJson(item);
      if (seen.has(key)) errors.push(duplicate(`${path}[${i}]`, item));
      seen.add(key);
    });
  } else if (listType === 'map') {
    const keys = s['x-kubernetes-list-map-keys'] ?? [];
    const seen = new Set<string>();
    v.forEach((item, i) => {
      if (!isPlainObject(item)) return;
      const tuple: Record<string, unknown> = {};
      for (const k of keys) {
        const prop = getOwn(s.items?.properties, k) as JSONSchemaProps | undefined;
        const kv = getOwn(item, k) ?? prop?.default;
        if (kv !== undefined) tuple[k] = kv;
      }
      const key = canonicalJson(tuple);
      if (seen.has(key)) errors.push(duplicate(`${path}[${i}]`, tuple));
      seen.add(key);
    });
  }
  if (s.items !== undefined && isPlainObject(s.items)) {
    const items = s.items;
    v.forEach((item, i) => {
      validateNode(items, item, `${path}[${i}]`, errors, false);
    });
  }
}

function validateObject(
  s: JSONSchemaProps,
  v: Record<string, unknown>,
  path: string,
  errors: FieldError[],
  root: boolean,
): void {
  const n = name(path);
  const keys = Object.keys(v);
  const count = root ? keys.filter((k) => !ROOT_FIELDS.has(k)).length : keys.length;
  if (s.maxProperties !== undefined && count > s.maxProperties) {
    errors.push(tooMany(path, count, s.maxProperties));
  }
  if (s.minProperties !== undefined && count < s.minProperties) {
    errors.push(invalid(path, count, `${n} in body should have at least ${s.minProperties} properties`));
  }
  for (const key of s.required ?? []) {
    if (root && ROOT_FIELDS.has(key)) continue;
    if (!Object.hasOwn(v, key)) errors.push(required(child(path, key)));
  }
  if (s['x-kubernetes-embedded-resource'] === true) {
    for (const key of ['apiVersion', 'kind']) {
      const field = v[key];
      if (typeof field !== 'string' || field === '')
        errors.push(required(child(path, key), 'must not be empty'));
    }
  }
  const props = s.properties ?? {};
  const additional = s.additionalProperties;
  for (const key of keys) {
    if (root && ROOT_FIELDS.has(key)) continue;
    const p = Object.hasOwn(props, key) ? props[key] : undefined;
    const keyPath = child(path, key);
    if (p !== undefined) {
      validateNode(p, v[key], keyPath, errors, false);
    } else if (isPlainObject(additional)) {
      validateNode(additional, v[key], keyPath, errors, false);
    } else if (additional === false) {
      errors.push(forbidden(keyPath, `${keyPath} in body is a forbidden property`));
    }
  }
}

function validateJunctors(s: JSONSchemaProps, value: unknown, path: string, errors: FieldError[]): void {
  const n = JSON.stringify(name(path));
  if (s.allOf !== undefined) {
    for (const sub of s.allOf) validateNode(sub, value, path, errors, false);
  }
  if (s.anyOf !== undefined && s.anyOf.length > 0) {
    const results = s.anyOf.map((sub) => validateValue(sub, value, path));
    if (!results.some((r) => r.length === 0)) {
      errors.push(invalid(path, '', `${n} must validate at least one schema (anyOf)`));
      errors.push(...fewest(results));
    }
  }
  if (s.oneOf !== undefined && s.oneOf.length > 0) {
    const results = s.oneOf.map((sub) => validateValue(sub, value, path));
    const passing = results.filter((r) => r.length === 0).length;
    if (passing !== 1) {
      errors.push(invalid(path, '', `${n} must validate one and only one schema (oneOf)`));
      if (passing === 0) errors.push(...fewest(results));
    }
  }
  if (s.not !== undefined && validateValue(s.not, value, path).length === 0) {
    errors.push(invalid(path, '', `${n} must not validate the schema (not)`));
  }
}

function fewest(results: FieldError[][]): FieldError[] {
  let best = results[0] ?? [];
  for (const r of results) if (r.length < best.length) best = r;
  return best;
}
