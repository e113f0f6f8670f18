/** Pruning: dropping the fields a structural schema does not declare. */
import { isPlainObject } from '../meta.ts';
import { cloneJson, setOwn } from './json.ts';
import type { JSONSchemaProps } from './types.ts';
import { ROOT_FIELDS } from './validate.ts';

/**
 * Returns a copy of `obj` without the fields its schema does not declare. Kept: everything under
 * x-kubernetes-preserve-unknown-fields or `additionalProperties: true`, and apiVersion, kind and metadata
 * at the root and in embedded resources (x-kubernetes-embedded-resource).
 */
export function pruneUnknownFields(schema: JSONSchemaProps, obj: unknown): unknown {
  return pruneNode(schema, cloneJson(obj), true);
}

/** Like pruneUnknownFields, for a value below the root (apiVersion, kind and metadata get no special care). */
export function pruneValue(schema: JSONSchemaProps, value: unknown): unknown {
  return pruneNode(schema, cloneJson(value), false);
}

function pruneNode(s: JSONSchemaProps, value: unknown, root: boolean): unknown {
  if (Array.isArray(value)) {
    const items = s.items;
    if (isPlainObject(items)) {
      for (let i = 0; i < value.length; i++) value[i] = pruneNode(items, value[i], false);
    }
    return value;
  }
  if (!isPlainObject(value)) return value;
  const keepMeta = root || s['x-kubernetes-embedded-resource'] === true;
  const preserve = s['x-kubernetes-preserve-unknown-fields'] === true || s.additionalProperties === true;
  const props = s.properties ?? {};
  const additional = isPlainObject(s.additionalProperties) ? s.additionalProperties : undefined;
  for (const key of Object.keys(value)) {
    if (keepMeta && ROOT_FIELDS.has(key)) continue;
    const p = Object.hasOwn(props, key) ? props[key] : additional;
    if (p !== undefined) setOwn(value, key, pruneNode(p, value[key], false));
    else if (!preserve) delete value[key];
  }
  return value;
}
