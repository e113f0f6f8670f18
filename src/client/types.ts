/**
 * The Cluster interface: how controllers, the hub and tools talk to a Kubernetes API. Two
 * implementations: in-process (apiserver's LocalCluster, no HTTP, no auth: the server's own loops) and
 * remote (RemoteCluster, HTTPS with a kubeconfig: kedge or any Kubernetes). Failures are ApiError
 * (src/api/status-error.ts) with the HTTP code and reason of the Status (404 NotFound, 409 Conflict...).
 */
import type { KubeList, KubeObject } from '../api/meta.ts';

/** Which collection: group ('' for core), version and plural resource name, e.g. {group:'apps', version:'v1', resource:'deployments'}. */
export interface ResourceRef {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
}

export interface ListOptions {
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly limit?: number;
  readonly continue?: string;
  readonly resourceVersion?: string;
}

export interface WatchOptions {
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  /** Changes after this revision; '' or '0' starts with the current objects as ADDED events. */
  readonly resourceVersion: string;
  readonly allowWatchBookmarks?: boolean;
  /** Ends the watch (iteration finishes normally). */
  readonly signal?: AbortSignal;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface ClusterWatchEvent<T extends KubeObject = KubeObject> {
  readonly type: WatchEventType;
  /** For BOOKMARK only metadata.resourceVersion is meaningful. Treat as read-only: it may be shared. */
  readonly object: T;
}

export interface WriteOptions {
  readonly dryRun?: boolean;
  readonly fieldManager?: string;
}

export interface UpdateOptions extends WriteOptions {
  /** 'status' writes only the status (the object's other changes are ignored). */
  readonly subresource?: 'status';
}

export type PatchType = 'json' | 'merge' | 'strategic';

export interface DeleteOptions extends WriteOptions {
  readonly propagationPolicy?: 'Orphan' | 'Background' | 'Foreground';
  readonly preconditions?: { readonly uid?: string; readonly resourceVersion?: string };
  readonly gracePeriodSeconds?: number;
}

export interface Cluster {
  get<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
  ): Promise<T>;
  list<T extends KubeObject = KubeObject>(ref: ResourceRef, options?: ListOptions): Promise<KubeList<T>>;
  /**
   * Watch a collection. The iterable ends when the signal aborts or the server ends the watch; an expired
   * resourceVersion throws ApiError 410 (re-list and watch again).
   */
  watch<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    options: WatchOptions,
  ): AsyncIterable<ClusterWatchEvent<T>>;
  create<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    obj: T,
    options?: WriteOptions,
  ): Promise<T>;
  /** PUT; metadata.resourceVersion, when set, is a precondition (409 Conflict when stale). */
  update<T extends KubeObject = KubeObject>(ref: ResourceRef, obj: T, options?: UpdateOptions): Promise<T>;
  patch<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    patch: unknown,
    options?: UpdateOptions,
  ): Promise<T>;
  /** Returns the object as it was deleted, or as it now is when deletion waits for finalizers. */
  delete(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    options?: DeleteOptions,
  ): Promise<KubeObject>;
  /** PUT to a subresource such as namespaces/finalize; returns the object as it now is. */
  updateSubresource(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    subresource: string,
    body: unknown,
  ): Promise<KubeObject>;
  /**
   * Read-modify-write as one call, where the cluster can do it cheaper than get + update (in process: no
   * second read or copy, retried on conflict inside). `change` gets a private copy and returns the object to
   * write, or undefined to write nothing. Resolves with the object as written, or undefined when `change`
   * wrote nothing. Optional: use modifyObject() from client/modify.ts, which falls back to get + update.
   */
  modify?<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    change: (current: T) => T | undefined,
    options?: UpdateOptions,
  ): Promise<T | undefined>;
  /** POST to a subresource such as pods/binding or pods/eviction. */
  createSubresource(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    subresource: string,
    body: unknown,
  ): Promise<unknown>;
}

/** Refs of the built-in resources controllers and the hub use. */
export const Resources = {
  namespaces: { group: '', version: 'v1', resource: 'namespaces' },
  nodes: { group: '', version: 'v1', resource: 'nodes' },
  pods: { group: '', version: 'v1', resource: 'pods' },
  configmaps: { group: '', version: 'v1', resource: 'configmaps' },
  secrets: { group: '', version: 'v1', resource: 'secrets' },
  services: { group: '', version: 'v1', resource: 'services' },
  endpoints: { group: '', version: 'v1', resource: 'endpoints' },
  events: { group: '', version: 'v1', resource: 'events' },
  serviceaccounts: { group: '', version: 'v1', resource: 'serviceaccounts' },
  leases: { group: 'coordination.k8s.io', version: 'v1', resource: 'leases' },
  deployments: { group: 'apps', version: 'v1', resource: 'deployments' },
  replicasets: { group: 'apps', version: 'v1', resource: 'replicasets' },
  daemonsets: { group: 'apps', version: 'v1', resource: 'daemonsets' },
  controllerrevisions: { group: 'apps', version: 'v1', resource: 'controllerrevisions' },
  jobs: { group: 'batch', version: 'v1', resource: 'jobs' },
  customresourcedefinitions: {
    group: 'apiextensions.k8s.io',
    version: 'v1',
    resource: 'customresourcedefinitions',
  },
} as const satisfies Record<string, ResourceRef>;
