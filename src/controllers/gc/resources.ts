/**
 * The resource types the cluster serves, as the garbage collector and the namespace controller need
 * them: every built-in type that holds objects (events excepted for GC) plus every established
 * CustomResourceDefinition, followed through a shared CRD informer.
 */
import { isPlainObject, type KubeObject } from '../../api/meta.ts';
import { apiVersionOf, BUILTIN_RESOURCES } from '../../api/resource.ts';
import type { Informer, InformerFactory } from '../../client/informer.ts';
import { type ResourceRef, Resources } from '../../client/types.ts';

/** One served resource type: how to reach it, and how objects name it (apiVersion + kind). */
export interface ServedType {
  readonly ref: ResourceRef;
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespaced: boolean;
  readonly custom: boolean;
  /** Events: cleaned up by namespace deletion, never owners or dependents worth collecting. */
  readonly isEvent: boolean;
}

/** `group/version/resource`: the id of a type in maps and queue keys. */
export function refId(ref: ResourceRef): string {
  return `${ref.group}/${ref.version}/${ref.resource}`;
}

export type CatalogListener = (added: readonly ServedType[], removed: readonly ServedType[]) => void;

const BUILTINS: readonly ServedType[] = BUILTIN_RESOURCES.filter((rt) => rt.virtual !== true).map((rt) => ({
  ref: { group: rt.group, version: rt.version, resource: rt.plural },
  apiVersion: apiVersionOf(rt),
  kind: rt.kind,
  namespaced: rt.namespaced,
  custom: false,
  isEvent: rt.kind === 'Event',
}));

/** Served types from one CRD object: its storage version (the collection) and every served version (for kind lookups). */
function typesOfCrd(crd: KubeObject): { storage: ServedType | undefined; served: ServedType[] } {
  const spec = isPlainObject(crd['spec']) ? crd['spec'] : undefined;
  const names = isPlainObject(spec?.['names']) ? spec['names'] : undefined;
  const group = spec?.['group'];
  const plural = names?.['plural'];
  const kind = names?.['kind'];
  const versions = Array.isArray(spec?.['versions']) ? spec['versions'] : [];
  if (typeof group !== 'string' || typeof plural !== 'string' || typeof kind !== 'string') {
    return { storage: undefined, served: [] };
  }
  const status = isPlainObject(crd['status']) ? crd['status'] : {};
  const conditions = Array.isArray(status['conditions']) ? status['conditions'] : [];
  const established = conditions.some(
    (c: unknown) => isPlainObject(c) && c['type'] === 'Established' && c['status'] === 'True',
  );
  if (!established) return { storage: undefined, served: [] };
  const namespaced = spec?.['scope'] === 'Namespaced';
  const make = (version: string): ServedType => ({
    ref: { group, version, resource: plural },
    apiVersion: `${group}/${version}`,
    kind,
    namespaced,
    custom: true,
    isEvent: false,
  });
  const served: ServedType[] = [];
  let storage: ServedType | undefined;
  for (const v of versions) {
    if (!isPlainObject(v) || typeof v['name'] !== 'string' || v['served'] !== true) continue;
    const t = make(v['name']);
    served.push(t);
    if (v['storage'] === true) storage = t;
  }
  return { storage: storage ?? served[0], served };
}

/**
 * Built-in and custom resource types, kept current from the CRD informer. `collections()` has one
 * entry per stored collection (a CRD's storage version); `byKind()` also knows every served version.
 */
export class ResourceCatalog {
  readonly #byKind = new Map<string, ServedType>();
  /** CRD name → its collection and kinds. */
  readonly #crds = new Map<string, { storage: ServedType | undefined; served: ServedType[] }>();
  readonly #listeners: CatalogListener[] = [];
  readonly crdInformer: Informer;

  constructor(factory: InformerFactory) {
    for (const t of BUILTINS) this.#byKind.set(`${t.apiVersion}|${t.kind}`, t);
    this.crdInformer = factory.informer(Resources.customresourcedefinitions);
    this.crdInformer.onAdd((crd) => this.#setCrd(crd));
    this.crdInformer.onUpdate((_old, crd) => this.#setCrd(crd));
    this.crdInformer.onDelete((crd) => this.#removeCrd(crd.metadata.name ?? ''));
  }

  /** Every collection that holds objects: built-ins, then custom resources (storage version). */
  collections(): ServedType[] {
    const out = [...BUILTINS];
    for (const { storage } of this.#crds.values()) if (storage !== undefined) out.push(storage);
    return out;
  }

  /** The type objects call `apiVersion`/`kind` (as owner references do). */
  byKind(apiVersion: string, kind: string): ServedType | undefined {
    return this.#byKind.get(`${apiVersion}|${kind}`);
  }

  /** Called with collections that appeared or went away (CRDs established or deleted). */
  onChange(listener: CatalogListener): void {
    this.#listeners.push(listener);
  }

  #setCrd(crd: KubeObject): void {
    const name = crd.metadata.name ?? '';
    const next = typesOfCrd(crd);
    const prev = this.#crds.get(name);
    if (prev !== undefined && JSON.stringify(prev) === JSON.stringify(next)) return;
    this.#removeCrd(name, next.storage === undefined ? undefined : refId(next.storage.ref));
    this.#crds.set(name, next);
    for (const t of next.served) this.#byKind.set(`${t.apiVersion}|${t.kind}`, t);
    const sameCollection =
      prev?.storage !== undefined &&
      next.storage !== undefined &&
      refId(prev.storage.ref) === refId(next.storage.ref);
    if (next.storage !== undefined && !sameCollection) this.#emit([next.storage], []);
  }

  /** Forget a CRD; `keep` names a collection that stays (the CRD changed but still stores there). */
  #removeCrd(name: string, keep?: string): void {
    const prev = this.#crds.get(name);
    if (prev === undefined) return;
    this.#crds.delete(name);
    for (const t of prev.served) this.#byKind.delete(`${t.apiVersion}|${t.kind}`);
    if (prev.storage !== undefined && refId(prev.storage.ref) !== keep) this.#emit([], [prev.storage]);
  }

  #emit(added: readonly ServedType[], removed: readonly ServedType[]): void {
    for (const l of this.#listeners) l(added, removed);
  }
}

const catalogs = new WeakMap<InformerFactory, ResourceCatalog>();

/** The one catalog of a factory (its CRD informer is shared). */
export function resourceCatalog(factory: InformerFactory): ResourceCatalog {
  let catalog = catalogs.get(factory);
  if (catalog === undefined) {
    catalog = new ResourceCatalog(factory);
    catalogs.set(factory, catalog);
  }
  return catalog;
}
