/** JSON values as the patch code handles them, and the helpers every patch format shares. */
import { KedgeError } from '../../lib/errors.ts';

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

/** Deeper than this is refused: real Kubernetes objects are far shallower, and it bounds recursion. */
const MAX_DEPTH = 1000;

export function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A KEDGE_PATCH_INVALID error. */
export function invalid(message: string, context: Record<string, unknown> = {}): KedgeError {
  return new KedgeError('KEDGE_PATCH_INVALID', message, { context });
}

/**
 * Checks that `value` is plain JSON and returns a deep copy the caller owns. Anything else (undefined,
 * functions, class instances, non-finite numbers, cycles) is KEDGE_PATCH_INVALID, naming `what`.
 */
export function toJson(value: unknown, what: string): Json {
  return copyChecked(value, what, 0);
}

function copyChecked(value: unknown, at: string, depth: number): Json {
  if (depth > MAX_DEPTH) throw invalid(`The ${at} is nested more than ${MAX_DEPTH} levels deep`);
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) throw invalid(`The ${at} holds a non-finite number ${value}`);
      return value;
    case 'object': {
      if (value === null) return null;
      if (Array.isArray(value)) return value.map((v, i) => copyChecked(v, `${at}[${i}]`, depth + 1));
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) throw invalid(`The ${at} is not a plain JSON object`);
      const out: JsonObject = {};
      for (const [k, v] of Object.entries(value)) setKey(out, k, copyChecked(v, `${at}.${k}`, depth + 1));
      return out;
    }
    default:
      throw invalid(`The ${at} holds a ${typeof value}, which is not JSON`);
  }
}

/** Deep copy of a value already known to be JSON. */
export function clone<T extends Json>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => clone(v)) as T;
  const out: JsonObject = {};
  for (const k of Object.keys(value)) setKey(out, k, clone(value[k] as Json));
  return out as T;
}

/** Sets an own property, also for `__proto__` (plain assignment would change the prototype instead). */
export function setKey(obj: JsonObject, key: string, value: Json): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

/** The own property `key`, or undefined (never something inherited from Object.prototype). */
export function getKey(obj: JsonObject, key: string): Json | undefined {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

export function deepEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => deepEqual(v, b[i]));
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
}

/** A short rendering of a value for error messages. */
export function show(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
