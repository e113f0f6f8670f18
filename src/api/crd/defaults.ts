/** Defaulting: structural-schema defaults for custom resources, and the defaults of a CRD itself. */
import { isPlainObject } from '../meta.ts';
import { cloneJson, setOwn } from './json.ts';
import type { CustomResourceDefinition, JSONSchemaProps } from './types.ts';
import { ROOT_FIELDS } from './validate.ts';

/**
 * Returns a copy of `obj` with schema defaults filled in, recursively (properties, array items,
 * additionalProperties). A null is replaced by the default, or dropped when there is none, unless the
 * field is nullable. A default value is itself defaulted further down. apiVersion, kind and metadata at
 * the root are left alone.
 */
export function applySchemaDefaults(schema: JSONSchemaProps, obj: unknown): unknown {
  return defaultNode(schema, cloneJson(obj), true);
}

/** Like applySchemaDefaults, for a value below the root. */
export function defaultValue(schema: JSONSchemaProps, value: unknown): unknown {
  return defaultNode(schema, cloneJson(value), false);
}

function isNonNullableNull(value: unknown, s: JSONSchemaProps): boolean {
  return value === null && s.nullable !== true;
}

/** Defaults `value` in place (it is our own copy) and returns it, or its replacement. */
function defaultNode(s: JSONSchemaProps, value: unknown, root: boolean): unknown {
  if (Array.isArray(value)) {
    const items = s.items;
    if (!isPlainObject(items)) return value;
    for (let i = 0; i < value.length; i++) {
      if (isNonNullableNull(value[i], items) && items.default !== undefined)
        value[i] = cloneJson(items.default);
      value[i] = defaultNode(items, value[i], false);
    }
    return value;
  }
  if (!isPlainObject(value)) return value;
  const props = s.properties ?? {};
  const additional = isPlainObject(s.additionalProperties) ? s.additionalProperties : undefined;
  for (const [key, p] of Object.entries(props)) {
    if (root && ROOT_FIELDS.has(key)) continue;
    if (!Object.hasOwn(value, key)) {
      if (p.default !== undefined) setOwn(value, key, cloneJson(p.default));
    } else if (isNonNullableNull(value[key], p)) {
      if (p.default !== undefined) setOwn(value, key, cloneJson(p.default));
      else delete value[key];
    }
  }
  for (const key of Object.keys(value)) {
    if (root && ROOT_FIELDS.has(key)) continue;
    const p = Object.hasOwn(props, key) ? props[key] : additional;
    if (p === undefined) continue;
    if (p === additional && isNonNullableNull(value[key], p)) {
      if (p.default !== undefined) setOwn(value, key, cloneJson(p.default));
      else {
        delete value[key];
        continue;
      }
    }
    setOwn(value, key, defaultNode(p, value[key], false));
  }
  return value;
}

/** A copy of the CRD with the defaults Kubernetes sets: singular, listKind, conversion strategy, webhook port. */
export function applyCrdDefaults(crd: CustomResourceDefinition): CustomResourceDefinition {
  const out = cloneJson(crd);
  const names = out.spec.names;
  if (typeof names.kind === 'string') {
    if (names.singular === undefined || names.singular === '') names.singular = names.kind.toLowerCase();
    if (names.listKind === undefined || names.listKind === '') names.listKind = `${names.kind}List`;
  }
  if (out.spec.conversion === undefined) out.spec.conversion = { strategy: 'None' };
  const conversion: unknown = out.spec.conversion;
  const service = isPlainObject(conversion) ? out.spec.conversion.webhook?.clientConfig?.service : undefined;
  if (isPlainObject(service) && service.port === undefined) service.port = 443;
  return out;
}
