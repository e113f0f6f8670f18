/** RFC 6902 JSON Patch (application/json-patch+json) with RFC 6901 JSON Pointers. */
import { KedgeError } from '../../lib/errors.ts';
import {
  clone,
  deepEqual,
  getKey,
  invalid,
  isObject,
  type Json,
  type JsonObject,
  setKey,
  show,
  toJson,
} from './json.ts';

export const JsonPatchOps = ['add', 'remove', 'replace', 'move', 'copy', 'test'] as const;
export type JsonPatchOp = (typeof JsonPatchOps)[number];

/** Splits a JSON Pointer into unescaped reference tokens; '' is the whole document. */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/'))
    throw invalid(`JSON pointer "${pointer}" does not start with "/"`, { pointer });
  return pointer
    .slice(1)
    .split('/')
    .map((token) => {
      if (/~[^01]|~$/.test(token)) {
        throw invalid(
          `JSON pointer "${pointer}" has a bad escape in "${token}" (only ~0 and ~1 are allowed)`,
          {
            pointer,
          },
        );
      }
      return token.replaceAll('~1', '/').replaceAll('~0', '~');
    });
}

/** The array index a token names, or undefined when it is not a valid index (leading zeros, signs...). */
function arrayIndex(token: string): number | undefined {
  if (!/^(0|[1-9][0-9]*)$/.test(token)) return undefined;
  const n = Number(token);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** What failed and where, for error messages. */
interface OpContext {
  readonly index: number;
  readonly op: string;
  readonly path: string;
}

function fail(ctx: OpContext, why: string): KedgeError {
  return invalid(`JSON patch operation ${ctx.index} (${ctx.op} at "${ctx.path}") failed: ${why}`, { ...ctx });
}

function get(root: Json, tokens: readonly string[], ctx: OpContext, pointer: string): Json {
  let node: Json = root;
  for (const token of tokens) {
    if (Array.isArray(node)) {
      const i = arrayIndex(token);
      if (i === undefined || i >= node.length) throw fail(ctx, `path "${pointer}" does not exist`);
      node = node[i] as Json;
    } else if (isObject(node)) {
      const next = getKey(node, token);
      if (next === undefined) throw fail(ctx, `path "${pointer}" does not exist`);
      node = next;
    } else {
      throw fail(ctx, `path "${pointer}" does not exist`);
    }
  }
  return node;
}

/** The container that holds the last token of `tokens` (which must be non-empty). */
function parentOf(root: Json, tokens: readonly string[], ctx: OpContext, pointer: string): Json {
  return get(root, tokens.slice(0, -1), ctx, pointer);
}

function add(root: Json, tokens: string[], value: Json, ctx: OpContext, pointer: string): Json {
  const last = tokens.at(-1);
  if (last === undefined) return value;
  const parent = parentOf(root, tokens, ctx, pointer);
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : arrayIndex(last);
    if (i === undefined || i > parent.length) {
      throw fail(ctx, `index "${last}" is out of range for an array of ${parent.length} in "${pointer}"`);
    }
    parent.splice(i, 0, value);
  } else if (isObject(parent)) {
    setKey(parent, last, value);
  } else {
    throw fail(ctx, `the parent of "${pointer}" is not an object or array`);
  }
  return root;
}

function remove(root: Json, tokens: string[], ctx: OpContext, pointer: string): Json {
  const last = tokens.at(-1);
  if (last === undefined) throw fail(ctx, 'the whole document cannot be removed');
  const parent = parentOf(root, tokens, ctx, pointer);
  if (Array.isArray(parent)) {
    const i = arrayIndex(last);
    if (i === undefined || i >= parent.length) throw fail(ctx, `path "${pointer}" does not exist`);
    parent.splice(i, 1);
  } else if (isObject(parent) && Object.hasOwn(parent, last)) {
    delete parent[last];
  } else {
    throw fail(ctx, `path "${pointer}" does not exist`);
  }
  return root;
}

function replace(root: Json, tokens: string[], value: Json, ctx: OpContext, pointer: string): Json {
  const last = tokens.at(-1);
  if (last === undefined) return value;
  const parent = parentOf(root, tokens, ctx, pointer);
  if (Array.isArray(parent)) {
    const i = arrayIndex(last);
    if (i === undefined || i >= parent.length) throw fail(ctx, `path "${pointer}" does not exist`);
    parent[i] = value;
  } else if (isObject(parent) && Object.hasOwn(parent, last)) {
    setKey(parent, last, value);
  } else {
    throw fail(ctx, `path "${pointer}" does not exist`);
  }
  return root;
}

function stringField(op: JsonObject, field: string, ctx: OpContext): string {
  const v = getKey(op, field);
  if (typeof v !== 'string') throw fail(ctx, `"${field}" must be a string, got ${show(v)}`);
  return v;
}

function valueField(op: JsonObject, ctx: OpContext): Json {
  const v = getKey(op, 'value');
  if (v === undefined) throw fail(ctx, 'it has no "value"');
  return v;
}

/**
 * Applies an RFC 6902 JSON Patch (an array of operations) to `doc` and returns the result. The input is
 * never mutated. A failed `test` is KEDGE_PATCH_TEST_FAILED; anything malformed or impossible is
 * KEDGE_PATCH_INVALID, naming the operation and path.
 */
export function applyJsonPatch(doc: unknown, patch: unknown): unknown {
  const ops = toJson(patch, 'patch');
  if (!Array.isArray(ops)) throw invalid(`A JSON patch must be an array of operations, got ${show(patch)}`);
  let root = toJson(doc, 'document');
  ops.forEach((raw, index) => {
    if (!isObject(raw))
      throw invalid(`JSON patch operation ${index} is not an object: ${show(raw)}`, { index });
    const opName = getKey(raw, 'op');
    const rawPath = getKey(raw, 'path');
    const ctx: OpContext = {
      index,
      op: typeof opName === 'string' ? opName : show(opName),
      path: typeof rawPath === 'string' ? rawPath : show(rawPath),
    };
    if (!(JsonPatchOps as readonly unknown[]).includes(opName)) {
      throw fail(ctx, `unknown op ${show(opName)} (expected one of ${JsonPatchOps.join(', ')})`);
    }
    const path = stringField(raw, 'path', ctx);
    const tokens = parsePointerFor(path, ctx);
    switch (opName as JsonPatchOp) {
      case 'add':
        root = add(root, tokens, clone(valueField(raw, ctx)), ctx, path);
        break;
      case 'remove':
        root = remove(root, tokens, ctx, path);
        break;
      case 'replace':
        root = replace(root, tokens, clone(valueField(raw, ctx)), ctx, path);
        break;
      case 'move': {
        const from = stringField(raw, 'from', ctx);
        const fromTokens = parsePointerFor(from, ctx);
        if (from === path) break;
        if (path.startsWith(`${from}/`))
          throw fail(ctx, `cannot move "${from}" into its own child "${path}"`);
        const value = get(root, fromTokens, ctx, from);
        root = remove(root, fromTokens, ctx, from);
        root = add(root, tokens, value, ctx, path);
        break;
      }
      case 'copy': {
        const from = stringField(raw, 'from', ctx);
        const value = clone(get(root, parsePointerFor(from, ctx), ctx, from));
        root = add(root, tokens, value, ctx, path);
        break;
      }
      case 'test': {
        const expected = valueField(raw, ctx);
        const actual = get(root, tokens, ctx, path);
        if (!deepEqual(actual, expected)) {
          throw new KedgeError(
            'KEDGE_PATCH_TEST_FAILED',
            `JSON patch test at "${path}" failed: expected ${show(expected)}, found ${show(actual)}`,
            { context: { index, path } },
          );
        }
        break;
      }
    }
  });
  return root;
}

function parsePointerFor(pointer: string, ctx: OpContext): string[] {
  try {
    return parsePointer(pointer);
  } catch (err) {
    throw fail(ctx, err instanceof Error ? err.message : String(err));
  }
}
