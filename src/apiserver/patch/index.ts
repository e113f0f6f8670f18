/** The three Kubernetes patch formats as pure functions on JSON values. */
export { applyJsonPatch, type JsonPatchOp, JsonPatchOps, parsePointer } from './json-patch.ts';
export { applyMergePatch } from './merge-patch.ts';
export {
  DEFAULT_PATCH_META,
  type FieldPatchMeta,
  lookupPatchMeta,
  type PatchMeta,
  PatchStrategies,
  type PatchStrategy,
  patchMetaFor,
} from './patch-meta.ts';
export { applyStrategicMergePatch } from './strategic-merge-patch.ts';
