/**
 * API discovery documents, built from the resource types served right now (built-ins plus whatever
 * CustomResourceDefinitions exist): the legacy per-group-version documents and the aggregated
 * (apidiscovery.k8s.io) list that kubectl asks for first. Pure functions; the caller passes the
 * current list on every call.
 */
import { createHash } from 'node:crypto';
import { apiVersionOf, type ResourceType } from '../api/resource.ts';

export interface GroupVersionKind {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
}

/** One subresource as discovery and OpenAPI describe it. */
export interface SubresourceInfo {
  /** `status`, `scale`, `binding`, later `log`, `exec`, ... */
  readonly name: string;
  readonly verbs: readonly string[];
  /** What the subresource returns; absent: the parent's kind. */
  readonly kind?: GroupVersionKind;
}

export interface DiscoveryOptions {
  /** More subresources per resource type (the handlers must serve them). Added after the built-in ones. */
  readonly extraSubresources?: (rt: ResourceType) => readonly SubresourceInfo[];
}

const UPDATE_VERBS = ['get', 'patch', 'update'] as const;

/** The subresources kedge serves for a resource type: status, scale, binding, then the caller's extras. */
export function subresourcesOf(rt: ResourceType, options: DiscoveryOptions = {}): SubresourceInfo[] {
  const out: SubresourceInfo[] = [];
  if (rt.subresources.status === true) out.push({ name: 'status', verbs: UPDATE_VERBS });
  if (rt.subresources.scale !== undefined) {
    out.push({
      name: 'scale',
      verbs: UPDATE_VERBS,
      kind: { group: 'autoscaling', version: 'v1', kind: 'Scale' },
    });
  }
  if (rt.subresources.binding === true) {
    out.push({ name: 'binding', verbs: ['create'], kind: { group: '', version: 'v1', kind: 'Binding' } });
  }
  if (options.extraSubresources !== undefined) out.push(...options.extraSubresources(rt));
  return out;
}

/** A stable short hash of the stored version, as Kubernetes publishes in `storageVersionHash`. */
export function storageVersionHash(rt: Pick<ResourceType, 'group' | 'version' | 'kind'>): string {
  return createHash('sha256')
    .update(`${rt.group}/${rt.version}/${rt.kind}`)
    .digest()
    .subarray(0, 8)
    .toString('base64');
}

/** Kubernetes version priority: GA before beta before alpha, higher numbers first, then others by name. */
export function compareVersionPriority(a: string, b: string): number {
  const rank = (v: string): [number, number, number, string] => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (m === null) return [3, 0, 0, v];
    const level = m[2] === undefined ? 0 : m[2] === 'beta' ? 1 : 2;
    return [level, -Number(m[1]), -Number(m[3] ?? 0), v];
  };
  const ra = rank(a);
  const rb = rank(b);
  for (let i = 0; i < 3; i++) {
    const d = (ra[i] as number) - (rb[i] as number);
    if (d !== 0) return d;
  }
  return ra[3] < rb[3] ? -1 : ra[3] > rb[3] ? 1 : 0;
}

interface GroupEntry {
  readonly name: string;
  /** Versions in preference order (the first is preferred). */
  readonly versions: string[];
}

/** Groups in first-seen order (core excluded), each with its versions in priority order. */
export function servedGroups(resources: readonly ResourceType[]): GroupEntry[] {
  const groups = new Map<string, Set<string>>();
  for (const rt of resources) {
    if (rt.group === '') continue;
    let versions = groups.get(rt.group);
    if (versions === undefined) {
      versions = new Set();
      groups.set(rt.group, versions);
    }
    versions.add(rt.version);
  }
  return [...groups].map(([name, versions]) => ({
    name,
    versions: [...versions].sort(compareVersionPriority),
  }));
}

// ---- Legacy discovery -------------------------------------------------------------------------------

export interface APIResource {
  name: string;
  singularName: string;
  namespaced: boolean;
  group?: string;
  version?: string;
  kind: string;
  verbs: string[];
  shortNames?: string[];
  categories?: string[];
  storageVersionHash?: string;
}

export interface APIResourceList {
  kind: 'APIResourceList';
  apiVersion: 'v1';
  groupVersion: string;
  resources: APIResource[];
}

export interface GroupVersionForDiscovery {
  groupVersion: string;
  version: string;
}

export interface APIGroup {
  name: string;
  versions: GroupVersionForDiscovery[];
  preferredVersion: GroupVersionForDiscovery;
}

export interface APIGroupList {
  kind: 'APIGroupList';
  apiVersion: 'v1';
  groups: APIGroup[];
}

export interface APIVersions {
  kind: 'APIVersions';
  versions: string[];
  serverAddressByClientCIDRs: { clientCIDR: string; serverAddress: string }[];
}

/** `/api`: the core group's versions. `serverAddress` is host:port as clients reach this server. */
export function apiVersions(serverAddress: string): APIVersions {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

/** `/apis`: every non-core group with its versions. */
export function apiGroupList(resources: readonly ResourceType[]): APIGroupList {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: servedGroups(resources).map((g) => {
      const versions = g.versions.map((version) => ({ groupVersion: `${g.name}/${version}`, version }));
      return { name: g.name, versions, preferredVersion: versions[0]! };
    }),
  };
}

/** `/apis/{group}`: one group, or undefined when it is not served. */
export function apiGroup(resources: readonly ResourceType[], group: string): APIGroup | undefined {
  return apiGroupList(resources).groups.find((g) => g.name === group);
}

/**
 * `/api/v1` (group '') or `/apis/{group}/{version}`: the resources and subresources of one group-version,
 * or undefined when nothing is served there.
 */
export function apiResourceList(
  resources: readonly ResourceType[],
  group: string,
  version: string,
  options: DiscoveryOptions = {},
): APIResourceList | undefined {
  const served = resources.filter((rt) => rt.group === group && rt.version === version);
  if (served.length === 0) return undefined;
  const out: APIResource[] = [];
  for (const rt of served) {
    out.push({
      name: rt.plural,
      singularName: rt.singular,
      namespaced: rt.namespaced,
      kind: rt.kind,
      verbs: [...rt.verbs],
      ...(rt.shortNames.length > 0 ? { shortNames: [...rt.shortNames] } : {}),
      ...(rt.categories.length > 0 ? { categories: [...rt.categories] } : {}),
      storageVersionHash: storageVersionHash(rt),
    });
    for (const sub of subresourcesOf(rt, options)) {
      out.push({
        name: `${rt.plural}/${sub.name}`,
        singularName: '',
        namespaced: rt.namespaced,
        ...(sub.kind === undefined
          ? { kind: rt.kind }
          : { group: sub.kind.group, version: sub.kind.version, kind: sub.kind.kind }),
        verbs: [...sub.verbs],
      });
    }
  }
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: apiVersionOf({ group, version }),
    resources: out,
  };
}

// ---- Aggregated discovery ---------------------------------------------------------------------------

export const DiscoveryFormats = {
  v2: 'v2',
  v2beta1: 'v2beta1',
  legacy: 'legacy',
} as const;
export type DiscoveryFormat = (typeof DiscoveryFormats)[keyof typeof DiscoveryFormats];
export type AggregatedVersion = Exclude<DiscoveryFormat, 'legacy'>;

/** The exact response Content-Type for an aggregated discovery document. */
export function aggregatedContentType(version: AggregatedVersion): string {
  return `application/json;g=apidiscovery.k8s.io;v=${version};as=APIGroupDiscoveryList`;
}

interface MediaRange {
  readonly type: string;
  readonly params: ReadonlyMap<string, string>;
  readonly q: number;
  readonly index: number;
}

function parseAccept(accept: string): MediaRange[] {
  const out: MediaRange[] = [];
  accept.split(',').forEach((part, index) => {
    const [rawType, ...rawParams] = part.split(';');
    const type = (rawType ?? '').trim().toLowerCase();
    if (type === '') return;
    const params = new Map<string, string>();
    let q = 1;
    for (const p of rawParams) {
      const eq = p.indexOf('=');
      if (eq < 0) continue;
      const key = p.slice(0, eq).trim().toLowerCase();
      const value = p
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/, '$1');
      if (key === 'q') {
        const n = Number(value);
        q = Number.isFinite(n) ? n : 0;
      } else params.set(key, value);
    }
    out.push({ type, params, q, index });
  });
  return out.sort((a, b) => b.q - a.q || a.index - b.index);
}

/**
 * Which discovery document to answer `/api` or `/apis` with, from the request's Accept header: the
 * first acceptable (by q, then order) of aggregated v2, aggregated v2beta1 (JSON only: kedge serves no
 * protobuf) or plain JSON. 'legacy' also when nothing matches; the caller may then answer 406.
 */
export function negotiateDiscovery(accept: string | undefined): DiscoveryFormat {
  if (accept === undefined || accept.trim() === '') return 'legacy';
  for (const range of parseAccept(accept)) {
    if (range.q <= 0) continue;
    const g = range.params.get('g');
    const as = range.params.get('as');
    if (g === undefined && as === undefined) {
      if (range.type === 'application/json' || range.type === 'application/*' || range.type === '*/*') {
        return 'legacy';
      }
      continue;
    }
    if (range.type !== 'application/json') continue;
    if (g !== 'apidiscovery.k8s.io' || as !== 'APIGroupDiscoveryList') continue;
    const v = range.params.get('v');
    if (v === 'v2' || v === 'v2beta1') return v;
  }
  return 'legacy';
}

export interface DiscoveryGVK {
  group: string;
  version: string;
  kind: string;
}

export interface APISubresourceDiscovery {
  subresource: string;
  responseKind?: DiscoveryGVK;
  acceptedTypes?: DiscoveryGVK[];
  verbs: string[];
}

export interface APIResourceDiscovery {
  resource: string;
  responseKind?: DiscoveryGVK;
  scope: 'Cluster' | 'Namespaced';
  singularResource: string;
  verbs: string[];
  shortNames?: string[];
  categories?: string[];
  subresources?: APISubresourceDiscovery[];
}

export interface APIVersionDiscovery {
  version: string;
  resources: APIResourceDiscovery[];
  freshness: 'Current' | 'Stale';
}

export interface APIGroupDiscovery {
  metadata: { name?: string; creationTimestamp: null };
  versions: APIVersionDiscovery[];
}

export interface APIGroupDiscoveryList {
  kind: 'APIGroupDiscoveryList';
  apiVersion: `apidiscovery.k8s.io/${AggregatedVersion}`;
  metadata: Record<string, never>;
  items: APIGroupDiscovery[];
}

function resourceDiscovery(rt: ResourceType, options: DiscoveryOptions): APIResourceDiscovery {
  const subs = subresourcesOf(rt, options).map((sub): APISubresourceDiscovery => {
    // responseKind in discovery leaves group/version empty when they equal the parent's (as Kubernetes does).
    const kind = sub.kind ?? { group: '', version: '', kind: rt.kind };
    return { subresource: sub.name, responseKind: { ...kind }, verbs: [...sub.verbs] };
  });
  return {
    resource: rt.plural,
    responseKind: { group: '', version: '', kind: rt.kind },
    scope: rt.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: rt.singular,
    verbs: [...rt.verbs],
    ...(rt.shortNames.length > 0 ? { shortNames: [...rt.shortNames] } : {}),
    ...(rt.categories.length > 0 ? { categories: [...rt.categories] } : {}),
    ...(subs.length > 0 ? { subresources: subs } : {}),
  };
}

/**
 * The aggregated discovery document for `/api` (scope 'api': the core group only) or `/apis`. v2 and
 * v2beta1 have the same JSON shape (checked against k8s.io/api/apidiscovery); only apiVersion differs.
 * Serve it with Content-Type `aggregatedContentType(version)` and `Vary: Accept`.
 */
export function aggregatedDiscovery(
  resources: readonly ResourceType[],
  scope: 'api' | 'apis',
  version: AggregatedVersion,
  options: DiscoveryOptions = {},
): APIGroupDiscoveryList {
  const versionDiscovery = (group: string, v: string): APIVersionDiscovery => ({
    version: v,
    resources: resources
      .filter((rt) => rt.group === group && rt.version === v)
      .map((rt) => resourceDiscovery(rt, options)),
    freshness: 'Current',
  });
  const items: APIGroupDiscovery[] =
    scope === 'api'
      ? resources.some((rt) => rt.group === '')
        ? [{ metadata: { creationTimestamp: null }, versions: [versionDiscovery('', 'v1')] }]
        : []
      : servedGroups(resources).map((g) => ({
          metadata: { name: g.name, creationTimestamp: null },
          versions: g.versions.map((v) => versionDiscovery(g.name, v)),
        }));
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: `apidiscovery.k8s.io/${version}`,
    metadata: {},
    items,
  };
}
