/**
 * Strategic merge patch metadata: for each field of a kind, its patch strategy and merge key, as the
 * Kubernetes Go types declare them with `patchStrategy` / `patchMergeKey` struct tags.
 */

export const PatchStrategies = ['merge', 'replace'] as const;
export type PatchStrategy = (typeof PatchStrategies)[number];

/** How one field is patched. */
export interface FieldPatchMeta {
  /** Absent: the Kubernetes default (maps are merged, lists are replaced). */
  readonly strategy?: PatchStrategy;
  /** For lists of objects merged by a key: the field that identifies an element. */
  readonly mergeKey?: string;
  /** The field also declares `retainKeys` (informational: `$retainKeys` is honoured anywhere). */
  readonly retainKeys?: boolean;
}

/** Patch metadata of one object type: its fields, and the types of their values. */
export interface PatchMeta {
  /** How field `name` of this type is patched. */
  field(name: string): FieldPatchMeta;
  /** The metadata of the value of field `name` (for a list: of its elements). */
  child(name: string): PatchMeta;
}

/** Field `path` (names from the object root; list elements are stepped through) of `meta`. */
export function lookupPatchMeta(meta: PatchMeta, path: readonly string[]): FieldPatchMeta {
  let node = meta;
  for (const name of path.slice(0, -1)) node = node.child(name);
  const last = path.at(-1);
  return last === undefined ? {} : node.field(last);
}

interface FieldSpec extends FieldPatchMeta {
  readonly type?: TypeSpec;
}
type TypeSpec = Readonly<Record<string, FieldSpec>>;

const NO_FIELD: FieldPatchMeta = Object.freeze({});

class TablePatchMeta implements PatchMeta {
  readonly #fields: ReadonlyMap<string, { readonly meta: FieldPatchMeta; readonly type?: TypeSpec }>;
  constructor(spec: TypeSpec) {
    this.#fields = new Map(
      Object.entries(spec).map(([name, { type, ...meta }]) => [
        name,
        type === undefined ? { meta: Object.freeze(meta) } : { meta: Object.freeze(meta), type },
      ]),
    );
  }
  field(name: string): FieldPatchMeta {
    return this.#fields.get(name)?.meta ?? NO_FIELD;
  }
  child(name: string): PatchMeta {
    const type = this.#fields.get(name)?.type;
    return type === undefined ? DEFAULT_PATCH_META : metaOf(type);
  }
}

const built = new WeakMap<TypeSpec, PatchMeta>();
function metaOf(type: TypeSpec): PatchMeta {
  let meta = built.get(type);
  if (meta === undefined) {
    meta = new TablePatchMeta(type);
    built.set(type, meta);
  }
  return meta;
}

/** No metadata anywhere: lists are replaced and maps merged, at every depth (custom resources). */
export const DEFAULT_PATCH_META: PatchMeta = Object.freeze({
  field: () => NO_FIELD,
  child: () => DEFAULT_PATCH_META,
});

// ---- The table: copied by hand from the patch tags of the Kubernetes API types (core/v1, apps/v1, ...).

function mergeBy(mergeKey: string, type?: TypeSpec, retainKeys = false): FieldSpec {
  return {
    strategy: 'merge',
    mergeKey,
    ...(retainKeys ? { retainKeys } : {}),
    ...(type === undefined ? {} : { type }),
  };
}
/** A list of scalars merged as a set. */
const mergeSet: FieldSpec = { strategy: 'merge' };
const obj = (type: TypeSpec): FieldSpec => ({ type });

const objectMeta: TypeSpec = {
  finalizers: mergeSet,
  ownerReferences: mergeBy('uid'),
};

const container: TypeSpec = {
  ports: mergeBy('containerPort'),
  env: mergeBy('name'),
  volumeMounts: mergeBy('mountPath'),
  volumeDevices: mergeBy('devicePath'),
};

const podSpec: TypeSpec = {
  volumes: mergeBy('name', undefined, true),
  initContainers: mergeBy('name', container),
  containers: mergeBy('name', container),
  ephemeralContainers: mergeBy('name', container),
  imagePullSecrets: mergeBy('name'),
  hostAliases: mergeBy('ip'),
  topologySpreadConstraints: mergeBy('topologyKey'),
  schedulingGates: mergeBy('name'),
  resourceClaims: mergeBy('name', undefined, true),
  // tolerations, readinessGates, dnsConfig lists: no tags, so replaced.
};

const podStatus: TypeSpec = {
  conditions: mergeBy('type'),
  podIPs: mergeBy('ip'),
  hostIPs: mergeBy('ip'),
  resourceClaimStatuses: mergeBy('name', undefined, true),
  // containerStatuses, initContainerStatuses, ephemeralContainerStatuses: no tags, so replaced.
};

const podTemplateSpec: TypeSpec = { metadata: obj(objectMeta), spec: obj(podSpec) };
const conditionsByType: TypeSpec = { conditions: mergeBy('type') };

function kind(spec: TypeSpec): TypeSpec {
  return { metadata: obj(objectMeta), ...spec };
}

const KINDS: ReadonlyMap<string, TypeSpec> = new Map<string, TypeSpec>([
  ['/Pod', kind({ spec: obj(podSpec), status: obj(podStatus) })],
  ['/PodTemplate', kind({ template: obj(podTemplateSpec) })],
  [
    '/Node',
    kind({
      spec: obj({ podCIDRs: mergeSet }), // taints: no tags, so replaced
      status: obj({ conditions: mergeBy('type'), addresses: mergeBy('type') }), // images: replaced
    }),
  ],
  ['/Service', kind({ spec: obj({ ports: mergeBy('port') }), status: obj(conditionsByType) })],
  ['/Namespace', kind({ status: obj(conditionsByType) })],
  ['/ConfigMap', kind({})],
  ['/Secret', kind({})],
  ['/Endpoints', kind({})], // subsets: no tags, so replaced
  ['/Event', kind({})],
  ['/ServiceAccount', kind({ secrets: mergeBy('name') })], // imagePullSecrets: no tags
  ['coordination.k8s.io/Lease', kind({})],
  ['events.k8s.io/Event', kind({})],
  [
    'apps/Deployment',
    kind({
      spec: obj({ template: obj(podTemplateSpec), strategy: { retainKeys: true } }),
      status: obj(conditionsByType),
    }),
  ],
  ['apps/ReplicaSet', kind({ spec: obj({ template: obj(podTemplateSpec) }), status: obj(conditionsByType) })],
  ['apps/DaemonSet', kind({ spec: obj({ template: obj(podTemplateSpec) }), status: obj(conditionsByType) })],
  ['apps/ControllerRevision', kind({})],
  ['batch/Job', kind({ spec: obj({ template: obj(podTemplateSpec) }), status: obj(conditionsByType) })],
  ['apiextensions.k8s.io/CustomResourceDefinition', kind({})],
]);

/**
 * Patch metadata for a built-in kind (`group` is '' for the core group). Unknown kinds get
 * DEFAULT_PATCH_META: lists replaced, maps merged (custom resources have no patch tags).
 */
export function patchMetaFor(group: string, kindName: string): PatchMeta {
  const spec = KINDS.get(`${group}/${kindName}`);
  return spec === undefined ? DEFAULT_PATCH_META : metaOf(spec);
}
