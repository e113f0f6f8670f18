/** RFC 7386 JSON Merge Patch (application/merge-patch+json). */
import { getKey, invalid, isObject, type Json, type JsonObject, setKey, show, toJson } from './json.ts';

/** Merges `patch` into `target`, which the caller owns and may be changed in place. */
export function mergeInto(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return patch;
  const out: JsonObject = isObject(target) ? target : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else setKey(out, key, mergeInto(getKey(out, key), value));
  }
  return out;
}

/**
 * Applies an RFC 7386 JSON merge patch to `doc` and returns the result; the input is never mutated.
 * Like the Kubernetes API, the patch must be a JSON object (KEDGE_PATCH_INVALID otherwise).
 */
export function applyMergePatch(doc: unknown, patch: unknown): unknown {
  const p = toJson(patch, 'patch');
  if (!isObject(p)) throw invalid(`A merge patch must be a JSON object, got ${show(patch)}`);
  return mergeInto(toJson(doc, 'document'), p);
}
