import type { KubeObject } from '../api/meta.ts';
import { apiVersionOf, BUILTIN_RESOURCES, type ResourceType } from '../api/resource.ts';

/** What the API needs to know about a custom resource type besides its descriptor. */
export interface CustomTypeInfo {
  /** The CRD object this type comes from. */
  readonly crd: KubeObject;
  /** Schema of this version (openAPIV3Schema), if any. */
  readonly schema: unknown;
  readonly printerColumns: readonly unknown[];
  /** The version objects are stored in (all versions share one key space; conversion is None). */
  readonly storageVersion: string;
}

/** The resource types the API serves right now: the built-in ones plus those of established CRDs. */
export class ResourceRegistry {
  readonly #byPath = new Map<string, ResourceType>();
  readonly #custom = new Map<ResourceType, CustomTypeInfo>();
  readonly #byCrdName = new Map<string, ResourceType[]>();
  #generation = 0;

  constructor(builtins: readonly ResourceType[] = BUILTIN_RESOURCES) {
    for (const rt of builtins) this.#byPath.set(pathKey(rt.group, rt.version, rt.plural), rt);
  }

  /** Changes whenever the set of types changes (discovery caches key on it). */
  get generation(): number {
    return this.#generation;
  }

  lookup(group: string, version: string, plural: string): ResourceType | undefined {
    return this.#byPath.get(pathKey(group, version, plural));
  }

  /** The preferred type serving a kind in a group (any version), e.g. for owner references. */
  byKind(apiVersion: string, kind: string): ResourceType | undefined {
    for (const rt of this.#byPath.values())
      if (apiVersionOf(rt) === apiVersion && rt.kind === kind) return rt;
    return undefined;
  }

  all(): ResourceType[] {
    return [...this.#byPath.values()];
  }

  groupVersions(): Array<{ group: string; version: string }> {
    const seen = new Map<string, { group: string; version: string }>();
    for (const rt of this.#byPath.values())
      seen.set(`${rt.group}/${rt.version}`, { group: rt.group, version: rt.version });
    return [...seen.values()];
  }

  customInfo(rt: ResourceType): CustomTypeInfo | undefined {
    return this.#custom.get(rt);
  }

  /** Replace the types served for one CRD (by its name) with these. An empty list removes them. */
  setCustomTypes(crdName: string, types: ReadonlyArray<{ rt: ResourceType; info: CustomTypeInfo }>): void {
    for (const old of this.#byCrdName.get(crdName) ?? []) {
      this.#byPath.delete(pathKey(old.group, old.version, old.plural));
      this.#custom.delete(old);
    }
    const added: ResourceType[] = [];
    for (const { rt, info } of types) {
      const key = pathKey(rt.group, rt.version, rt.plural);
      const existing = this.#byPath.get(key);
      if (existing !== undefined && !existing.custom) continue; // never shadow a built-in type
      this.#byPath.set(key, rt);
      this.#custom.set(rt, info);
      added.push(rt);
    }
    if (added.length > 0) this.#byCrdName.set(crdName, added);
    else this.#byCrdName.delete(crdName);
    this.#generation++;
  }
}

function pathKey(group: string, version: string, plural: string): string {
  return `${group}/${version}/${plural}`;
}

/** Store key of an object: /registry/<group|core>/<plural>/[<namespace>/]<name>. */
export function objectKey(
  rt: Pick<ResourceType, 'group' | 'plural' | 'namespaced'>,
  namespace: string | undefined,
  name: string,
): string {
  return `${collectionPrefix(rt, namespace)}${name}`;
}

/** Store prefix of a collection, across all namespaces when `namespace` is undefined. */
export function collectionPrefix(
  rt: Pick<ResourceType, 'group' | 'plural' | 'namespaced'>,
  namespace: string | undefined,
): string {
  const group = storageGroup(rt);
  const base = `/registry/${group}/${rt.plural}/`;
  return rt.namespaced && namespace !== undefined ? `${base}${namespace}/` : base;
}

/** events.k8s.io Events share storage with core Events, as in Kubernetes. */
function storageGroup(rt: Pick<ResourceType, 'group' | 'plural'>): string {
  if (rt.group === 'events.k8s.io' && rt.plural === 'events') return 'core';
  return rt.group === '' ? 'core' : rt.group;
}
