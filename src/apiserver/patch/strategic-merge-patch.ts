/**
 * Kubernetes strategic merge patch (application/strategic-merge-patch+json) for built-in kinds.
 *
 * Follows the behaviour of apimachinery's strategicpatch when the API server applies a patch, with
 * two deliberate differences that make results cleaner and never less correct: a patch value for a
 * field the document lacks is merged into an empty value (so directives and nulls inside it are
 * processed, not stored), and `$patch: merge` is accepted as a no-op on maps and list elements.
 */
import { getKey, invalid, isObject, type Json, type JsonObject, setKey, show, toJson } from './json.ts';
import type { FieldPatchMeta, PatchMeta } from './patch-meta.ts';

const PATCH = '$patch';
const RETAIN_KEYS = '$retainKeys';
const SET_ELEMENT_ORDER = '$setElementOrder';
const DELETE_FROM_PRIMITIVE_LIST = '$deleteFromPrimitiveList';

/**
 * Applies a strategic merge patch to `doc` (both JSON objects) using `meta` for list strategies and
 * merge keys, and returns the result. The inputs are never mutated. A malformed patch is
 * KEDGE_PATCH_INVALID, naming the path.
 */
export function applyStrategicMergePatch(doc: unknown, patch: unknown, meta: PatchMeta): unknown {
  const p = toJson(patch, 'patch');
  if (!isObject(p)) throw invalid(`A strategic merge patch must be a JSON object, got ${show(patch)}`);
  const d = toJson(doc, 'document');
  if (!isObject(d)) throw invalid(`A strategic merge patch applies only to a JSON object, got ${show(doc)}`);
  return mergeMap(d, p, meta, '');
}

function where(path: string): string {
  return path === '' ? 'the top level' : `"${path}"`;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** Identity of a list element: its merge key value (maps) or itself (scalars); undefined if it has none. */
function identity(value: Json | undefined, mergeKey: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (mergeKey === undefined) return JSON.stringify(value);
  if (!isObject(value)) return undefined;
  const key = getKey(value, mergeKey);
  return key === undefined ? undefined : JSON.stringify(key);
}

/** Merges `patch` into `orig`; both are owned by this module (copies), so they may be changed. */
function mergeMap(orig: JsonObject, patch: JsonObject, meta: PatchMeta, path: string): JsonObject {
  const directive = getKey(patch, PATCH);
  if (directive === 'delete') return {};
  if (directive === 'replace') {
    const rest: JsonObject = { ...patch };
    delete rest[PATCH];
    return mergeMap({}, rest, meta, path);
  }
  if (directive !== undefined && directive !== 'merge') {
    throw invalid(
      `Unknown ${PATCH} directive ${show(directive)} at ${where(path)} (expected replace, merge or delete)`,
      { path },
    );
  }

  const fields: [string, Json][] = [];
  const orders: [string, Json][] = [];
  const deletions: [string, Json][] = [];
  let retainKeys: Json | undefined;
  for (const [key, value] of Object.entries(patch)) {
    if (key === PATCH) continue;
    if (key === RETAIN_KEYS) retainKeys = value;
    else if (key.startsWith(SET_ELEMENT_ORDER))
      orders.push([directiveField(key, SET_ELEMENT_ORDER, path), value]);
    else if (key.startsWith(DELETE_FROM_PRIMITIVE_LIST)) {
      deletions.push([directiveField(key, DELETE_FROM_PRIMITIVE_LIST, path), value]);
    } else fields.push([key, value]);
  }

  if (retainKeys !== undefined) applyRetainKeys(orig, retainKeys, fields, path);
  for (const [field, values] of deletions) deleteFromPrimitiveList(orig, field, values, path);
  const done = new Set<string>();
  for (const [field, order] of orders) {
    if (applyElementOrder(orig, field, order, getKey(patch, field), meta, path)) done.add(field);
  }
  for (const [key, value] of fields) {
    if (!done.has(key)) mergeField(orig, key, value, meta, path);
  }
  return orig;
}

function directiveField(key: string, prefix: string, path: string): string {
  const field = key.slice(prefix.length + 1);
  if (key[prefix.length] !== '/' || field === '') {
    throw invalid(`Bad directive "${key}" at ${where(path)}: expected "${prefix}/<field>"`, { path });
  }
  return field;
}

function mergeField(orig: JsonObject, key: string, value: Json, meta: PatchMeta, path: string): void {
  if (value === null) {
    delete orig[key];
    return;
  }
  const at = join(path, key);
  const field = meta.field(key);
  const current = getKey(orig, key);
  if (isObject(value)) {
    const base = field.strategy !== 'replace' && isObject(current) ? current : {};
    setKey(orig, key, mergeMap(base, value, meta.child(key), at));
  } else if (Array.isArray(value)) {
    setKey(orig, key, mergeList(Array.isArray(current) ? current : [], value, field, meta.child(key), at));
  } else {
    setKey(orig, key, value);
  }
}

/** `$retainKeys`: drop every field of `orig` not listed; every field the patch sets must be listed. */
function applyRetainKeys(orig: JsonObject, retainKeys: Json, fields: [string, Json][], path: string): void {
  if (!Array.isArray(retainKeys) || !retainKeys.every((k) => typeof k === 'string')) {
    throw invalid(`${RETAIN_KEYS} at ${where(path)} must be a list of field names, got ${show(retainKeys)}`, {
      path,
    });
  }
  const keep = new Set<string>(retainKeys as string[]);
  for (const [key, value] of fields) {
    if (value !== null && !keep.has(key)) {
      throw invalid(`Field "${key}" at ${where(path)} is set by the patch but missing from ${RETAIN_KEYS}`, {
        path,
        field: key,
      });
    }
  }
  for (const key of Object.keys(orig)) {
    if (!keep.has(key)) delete orig[key];
  }
}

/** `$deleteFromPrimitiveList/<field>`: remove the listed values from the scalar list `field`. */
function deleteFromPrimitiveList(orig: JsonObject, field: string, values: Json, path: string): void {
  if (!Array.isArray(values)) {
    throw invalid(
      `${DELETE_FROM_PRIMITIVE_LIST}/${field} at ${where(path)} must be a list, got ${show(values)}`,
      {
        path,
      },
    );
  }
  const current = getKey(orig, field);
  if (!Array.isArray(current)) return;
  const drop = new Set(values.map((v) => JSON.stringify(v)));
  setKey(
    orig,
    field,
    current.filter((v) => !drop.has(JSON.stringify(v))),
  );
}

/** Checks a merge list's elements are all maps or all scalars, and says which. */
function elementKind(lists: readonly Json[][], path: string): 'map' | 'scalar' {
  let maps = 0;
  let scalars = 0;
  for (const list of lists) {
    for (const v of list) {
      if (Array.isArray(v))
        throw invalid(`The list at ${where(path)} holds a list; lists of lists cannot be merged`);
      if (isObject(v)) maps++;
      else scalars++;
    }
  }
  if (maps > 0 && scalars > 0)
    throw invalid(`The list at ${where(path)} mixes objects and scalars`, { path });
  return maps > 0 ? 'map' : 'scalar';
}

function mergeList(
  orig: Json[],
  patch: Json[],
  field: FieldPatchMeta,
  elem: PatchMeta,
  path: string,
): Json[] {
  if (field.strategy !== 'merge') return patch;
  if (orig.length === 0 && patch.length === 0) return orig;
  if (elementKind([orig, patch], path) === 'scalar') {
    const seen = new Set<string>();
    const merged = [...orig, ...patch].filter((v) => {
      const id = JSON.stringify(v);
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
    return enforceOrder(merged, patch, orig, undefined);
  }

  const mergeKey = field.mergeKey;
  if (mergeKey === undefined)
    throw invalid(`The list at ${where(path)} has no merge key to merge objects by`);
  let base = orig;
  let replace = false;
  const plain: JsonObject[] = [];
  patch.forEach((raw, i) => {
    const element = raw as JsonObject;
    const directive = getKey(element, PATCH);
    if (directive === undefined) {
      plain.push(element);
    } else if (directive === 'delete') {
      const id = identity(element, mergeKey);
      if (id === undefined) {
        throw invalid(`Element ${i} of ${where(path)} has ${PATCH}: delete but no merge key "${mergeKey}"`, {
          path,
          mergeKey,
        });
      }
      base = base.filter((o) => identity(o, mergeKey) !== id);
    } else if (directive === 'replace') {
      replace = true;
    } else if (directive === 'merge') {
      const rest: JsonObject = { ...element };
      delete rest[PATCH];
      if (Object.keys(rest).length > 0) plain.push(rest);
    } else {
      throw invalid(
        `Unknown ${PATCH} directive ${show(directive)} in element ${i} of ${where(path)} (expected replace, merge or delete)`,
        { path },
      );
    }
  });
  if (replace) return plain.map((e, i) => mergeMap({}, e, elem, `${path}[${i}]`));

  const merged = [...base];
  const positions = new Map<string, number>();
  merged.forEach((o, i) => {
    const id = identity(o, mergeKey);
    if (id !== undefined && !positions.has(id)) positions.set(id, i);
  });
  plain.forEach((element, i) => {
    const id = identity(element, mergeKey);
    if (id === undefined) {
      throw invalid(`Element ${i} of ${where(path)} has no merge key "${mergeKey}"`, { path, mergeKey });
    }
    const at = `${path}[${mergeKey}=${id}]`;
    const j = positions.get(id);
    if (j === undefined) {
      positions.set(id, merged.length);
      merged.push(mergeMap({}, element, elem, at));
    } else {
      merged[j] = mergeMap(merged[j] as JsonObject, element, elem, at);
    }
  });
  return enforceOrder(merged, plain, base, mergeKey);
}

/**
 * Orders a merged list like apimachinery: items named in `patchOrder` keep that relative order,
 * the other (server-only) items keep their order in `serverOrder`, and the two are interleaved so a
 * server-only item goes before a patch item only when it came first in `serverOrder`.
 */
function enforceOrder(
  merged: Json[],
  patchOrder: readonly Json[],
  serverOrder: readonly Json[],
  mergeKey: string | undefined,
): Json[] {
  const indexIn = (list: readonly Json[]): Map<string, number> => {
    const index = new Map<string, number>();
    list.forEach((v, i) => {
      const id = identity(v, mergeKey);
      if (id !== undefined && !index.has(id)) index.set(id, i);
    });
    return index;
  };
  const inPatch = indexIn(patchOrder);
  const inServer = indexIn(serverOrder);
  const pos = (index: Map<string, number>, v: Json): number => {
    const id = identity(v, mergeKey);
    return id === undefined ? -1 : (index.get(id) ?? -1);
  };
  const patchItems = merged.filter((v) => pos(inPatch, v) >= 0);
  const serverOnly = merged.filter((v) => pos(inPatch, v) < 0);
  const byPatch = patchItems
    .map((v, i) => ({ v, i, p: pos(inPatch, v) }))
    .sort((a, b) => a.p - b.p || a.i - b.i)
    .map((x) => x.v);

  const out: Json[] = [];
  let i = 0;
  let j = 0;
  while (i < serverOnly.length || j < byPatch.length) {
    const left = serverOnly[i];
    const right = byPatch[j];
    if (right === undefined) {
      out.push(left as Json);
      i++;
    } else if (left === undefined) {
      out.push(right);
      j++;
    } else {
      const li = pos(inServer, left);
      const ri = pos(inServer, right);
      if (li >= 0 && ri >= 0 && li < ri) {
        out.push(left);
        i++;
      } else {
        out.push(right);
        j++;
      }
    }
  }
  return out;
}

/**
 * `$setElementOrder/<field>`: merges the field's list (if the patch has one) and orders the result by
 * the given order. Returns whether the patch's own value for the field was consumed.
 */
function applyElementOrder(
  orig: JsonObject,
  field: string,
  order: Json,
  patchValue: Json | undefined,
  meta: PatchMeta,
  path: string,
): boolean {
  const at = join(path, field);
  if (!Array.isArray(order)) {
    throw invalid(`${SET_ELEMENT_ORDER}/${field} at ${where(path)} must be a list, got ${show(order)}`, {
      path,
    });
  }
  if (patchValue === null) return false;
  if (patchValue !== undefined && !Array.isArray(patchValue)) {
    throw invalid(
      `"${at}" must be a list when ${SET_ELEMENT_ORDER}/${field} is given, got ${show(patchValue)}`,
      {
        path: at,
      },
    );
  }
  const fieldMeta = meta.field(field);
  const current = getKey(orig, field);
  const origList = Array.isArray(current) ? current : undefined;
  if (origList === undefined && patchValue === undefined) return false;

  const lists = [order, origList ?? [], patchValue ?? []];
  const isMapList = elementKind(lists, at) === 'map';
  const mergeKey = isMapList ? fieldMeta.mergeKey : undefined;
  if (mergeKey !== undefined) {
    order.forEach((o, i) => {
      if (identity(o, mergeKey) === undefined) {
        throw invalid(
          `Element ${i} of ${SET_ELEMENT_ORDER}/${field} at ${where(path)} has no merge key "${mergeKey}"`,
          {
            path,
            mergeKey,
          },
        );
      }
    });
  }
  if (patchValue !== undefined) checkPatchFollowsOrder(patchValue, order, mergeKey, field, path);

  const serverOrder = origList === undefined ? [] : [...origList];
  const merged =
    patchValue === undefined
      ? serverOrder
      : mergeList(origList ?? [], patchValue, fieldMeta, meta.child(field), at);
  setKey(orig, field, enforceOrder(merged, order, serverOrder, mergeKey));
  return patchValue !== undefined;
}

/** The patch list's elements (directives aside) must appear in `$setElementOrder`, in the same order. */
function checkPatchFollowsOrder(
  patchList: Json[],
  order: Json[],
  mergeKey: string | undefined,
  field: string,
  path: string,
): void {
  let k = 0;
  for (const element of patchList) {
    if (isObject(element) && getKey(element, PATCH) !== undefined) continue;
    const id = identity(element, mergeKey);
    while (k < order.length && identity(order[k], mergeKey) !== id) k++;
    if (k === order.length) {
      throw invalid(
        `The order of "${join(path, field)}" in the patch does not match ${SET_ELEMENT_ORDER}/${field}: ${show(element)} is missing or out of order`,
        { path },
      );
    }
    k++;
  }
}
