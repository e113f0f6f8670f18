/**
 * Garbage collection by ownerReferences, as Kubernetes does it:
 * - background: a dependent whose owners are all gone (deleted, or replaced by an object with another
 *   uid) is deleted; an owner that still exists keeps it;
 * - foreground: an owner with deletionTimestamp and the `foregroundDeletion` finalizer gets its dependents
 *   deleted, and loses the finalizer (so the API removes it) once no dependent that blocks it
 *   (blockOwnerDeletion) is left;
 * - orphan: an owner with the `orphan` finalizer has its ownerReference removed from every dependent,
 *   then loses the finalizer.
 * The graph is the informers' owner-uid index; every decision to delete is confirmed with a live read.
 */
import type { KubeObject, OwnerReference } from '../../api/meta.ts';
import { isApiError } from '../../api/status-error.ts';
import {
  type Informer,
  type InformerFactory,
  objectKeyOf,
  runWorkers,
  WorkQueue,
} from '../../client/informer.ts';
import type { Cluster, DeleteOptions } from '../../client/types.ts';
import type { Logger } from '../../lib/log.ts';
import { recordEvent } from '../events.ts';
import { refId, resourceCatalog, type ServedType } from './resources.ts';

export const FOREGROUND_FINALIZER = 'foregroundDeletion';
export const ORPHAN_FINALIZER = 'orphan';
const OWNER_INDEX = 'gc-owner-uid';
const COMPONENT = 'garbage-collector-controller';

export interface GarbageCollectorOptions {
  readonly cluster: Cluster;
  readonly factory: InformerFactory;
  readonly logger: Logger;
  /** Concurrent workers (default 4). */
  readonly workers?: number;
}

export interface GarbageCollector {
  stop(): Promise<void>;
}

interface Monitor {
  readonly type: ServedType;
  readonly informer: Informer;
}

type OwnerState = 'solid' | 'absent' | 'waiting';

function hasFinalizer(obj: KubeObject, finalizer: string): boolean {
  return (obj.metadata.finalizers ?? []).includes(finalizer);
}

function isDeletingDependents(obj: KubeObject): boolean {
  return obj.metadata.deletionTimestamp !== undefined && hasFinalizer(obj, FOREGROUND_FINALIZER);
}

function ownerUids(obj: KubeObject): readonly string[] {
  return (obj.metadata.ownerReferences ?? []).map((r) => r.uid);
}

/** Start the garbage collector: informers for every collection (CRDs included), workers after sync. */
export function startGarbageCollector(options: GarbageCollectorOptions): GarbageCollector {
  const { cluster, factory } = options;
  const log = options.logger;
  const catalog = resourceCatalog(factory);
  const monitors = new Map<string, Monitor>();
  const queue = new WorkQueue<string>();

  const enqueue = (m: Monitor, obj: KubeObject): void =>
    queue.add(`${refId(m.type.ref)} ${objectKeyOf(obj)}`);

  /** Every object (in any collection) that names `uid` as an owner. */
  const dependentsOf = (uid: string): Array<{ m: Monitor; obj: KubeObject }> => {
    const out: Array<{ m: Monitor; obj: KubeObject }> = [];
    for (const m of monitors.values())
      for (const obj of m.informer.byIndex(OWNER_INDEX, uid)) out.push({ m, obj });
    return out;
  };

  const monitorOfOwner = (ref: OwnerReference): Monitor | undefined => {
    const type = catalog.byKind(ref.apiVersion, ref.kind);
    return type === undefined ? undefined : monitors.get(refId(type.ref));
  };

  /** Owners being deleted in the foreground wait for this object: tell them it changed. */
  const poke = (obj: KubeObject): void => {
    for (const ref of obj.metadata.ownerReferences ?? []) {
      const m = monitorOfOwner(ref);
      if (m === undefined) continue;
      const ns = m.type.namespaced ? obj.metadata.namespace : undefined;
      const owner = m.informer.get(ns, ref.name);
      if (owner !== undefined && owner.metadata.uid === ref.uid && isDeletingDependents(owner))
        enqueue(m, owner);
    }
  };

  const interesting = (obj: KubeObject): boolean =>
    (obj.metadata.ownerReferences ?? []).length > 0 ||
    (obj.metadata.deletionTimestamp !== undefined &&
      (hasFinalizer(obj, ORPHAN_FINALIZER) || hasFinalizer(obj, FOREGROUND_FINALIZER)));

  const monitor = (type: ServedType): void => {
    const id = refId(type.ref);
    const existing = monitors.get(id);
    if (existing !== undefined) {
      existing.informer.start();
      return;
    }
    const informer = factory.informer(type.ref);
    const m: Monitor = { type, informer };
    informer.addIndex(OWNER_INDEX, ownerUids);
    informer.onAdd((obj) => {
      if (interesting(obj)) enqueue(m, obj);
    });
    informer.onUpdate((old, obj) => {
      if (interesting(obj)) enqueue(m, obj);
      if (JSON.stringify(old.metadata.ownerReferences) !== JSON.stringify(obj.metadata.ownerReferences))
        poke(old);
      // An owner that went into foreground deletion: its dependents must go.
      if (isDeletingDependents(obj) && !isDeletingDependents(old)) {
        for (const d of dependentsOf(obj.metadata.uid ?? '')) enqueue(d.m, d.obj);
      }
    });
    informer.onDelete((obj) => {
      for (const d of dependentsOf(obj.metadata.uid ?? '')) enqueue(d.m, d.obj);
      poke(obj);
    });
    monitors.set(id, m);
  };

  for (const type of catalog.collections()) if (!type.isEvent) monitor(type);
  catalog.onChange((added, removed) => {
    for (const type of added) monitor(type);
    for (const type of removed) {
      const m = monitors.get(refId(type.ref));
      // The collection is gone with its CRD; stop watching it (it restarts if the CRD comes back).
      if (m !== undefined) void m.informer.stop();
    }
  });

  /** Is the owner there (and is it waiting for its dependents)? Absence is confirmed with a live read. */
  const ownerState = async (ref: OwnerReference, dependent: KubeObject): Promise<OwnerState> => {
    const type = catalog.byKind(ref.apiVersion, ref.kind);
    if (type === undefined) return 'solid'; // Unknown kind: never collect on a guess.
    if (type.namespaced && dependent.metadata.namespace === undefined) {
      void recordEvent(cluster, {
        involvedObject: {
          kind: dependent.kind ?? '',
          name: dependent.metadata.name ?? '',
          ...(dependent.apiVersion === undefined ? {} : { apiVersion: dependent.apiVersion }),
          ...(dependent.metadata.uid === undefined ? {} : { uid: dependent.metadata.uid }),
        },
        type: 'Warning',
        reason: 'OwnerRefInvalidNamespace',
        message: `ownerRef [${ref.apiVersion}/${ref.kind}, namespace: , name: ${ref.name}, uid: ${ref.uid}] does not exist in namespace ""`,
        component: COMPONENT,
      });
      return 'solid';
    }
    const ns = type.namespaced ? dependent.metadata.namespace : undefined;
    const cached = monitors.get(refId(type.ref))?.informer.get(ns, ref.name);
    let owner: KubeObject | undefined = cached?.metadata.uid === ref.uid ? cached : undefined;
    if (owner === undefined) {
      try {
        owner = await cluster.get(type.ref, ns, ref.name);
      } catch (err) {
        if (isApiError(err, 404)) return 'absent';
        throw err;
      }
      if (owner.metadata.uid !== ref.uid) return 'absent';
    }
    return isDeletingDependents(owner) ? 'waiting' : 'solid';
  };

  const remove = async (
    m: Monitor,
    obj: KubeObject,
    policy: DeleteOptions['propagationPolicy'],
  ): Promise<void> => {
    try {
      await cluster.delete(m.type.ref, obj.metadata.namespace, obj.metadata.name ?? '', {
        preconditions: { uid: obj.metadata.uid ?? '' },
        ...(policy === undefined ? {} : { propagationPolicy: policy }),
      });
      log.debug({ resource: m.type.ref.resource, key: objectKeyOf(obj), policy }, 'collected');
    } catch (err) {
      // Gone already, or replaced by a new object of the same name: nothing to collect.
      if (isApiError(err, 404) || isApiError(err, 409)) return;
      throw err;
    }
  };

  /** Read-modify-write of metadata on the live object (same uid), retried on conflicts. */
  const updateMeta = async (
    m: Monitor,
    obj: KubeObject,
    change: (live: KubeObject) => Record<string, unknown> | undefined,
  ): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      let live: KubeObject;
      try {
        live = await cluster.get(m.type.ref, obj.metadata.namespace, obj.metadata.name ?? '');
      } catch (err) {
        if (isApiError(err, 404)) return;
        throw err;
      }
      if (live.metadata.uid !== obj.metadata.uid) return;
      const meta = change(live);
      if (meta === undefined) return;
      try {
        await cluster.patch(m.type.ref, live.metadata.namespace, live.metadata.name ?? '', 'merge', {
          metadata: { ...meta, resourceVersion: live.metadata.resourceVersion },
        });
        return;
      } catch (err) {
        if (isApiError(err, 404)) return;
        if (isApiError(err, 409) && attempt < 5) continue;
        throw err;
      }
    }
  };

  const removeFinalizer = (m: Monitor, obj: KubeObject, finalizer: string): Promise<void> =>
    updateMeta(m, obj, (live) => {
      const fins = live.metadata.finalizers ?? [];
      return fins.includes(finalizer) ? { finalizers: fins.filter((f) => f !== finalizer) } : undefined;
    });

  const removeOwnerRefs = (m: Monitor, obj: KubeObject, uids: ReadonlySet<string>): Promise<void> =>
    updateMeta(m, obj, (live) => {
      const refs = live.metadata.ownerReferences ?? [];
      const kept = refs.filter((r) => !uids.has(r.uid));
      if (kept.length === refs.length) return undefined;
      return { ownerReferences: kept.length === 0 ? null : kept };
    });

  const orphanDependents = async (m: Monitor, owner: KubeObject): Promise<void> => {
    const uid = new Set([owner.metadata.uid ?? '']);
    for (const d of dependentsOf(owner.metadata.uid ?? '')) await removeOwnerRefs(d.m, d.obj, uid);
    await removeFinalizer(m, owner, ORPHAN_FINALIZER);
  };

  const processDeletingDependents = async (m: Monitor, owner: KubeObject): Promise<void> => {
    const uid = owner.metadata.uid ?? '';
    const dependents = dependentsOf(uid);
    const blocking = dependents.filter((d) =>
      (d.obj.metadata.ownerReferences ?? []).some((r) => r.uid === uid && r.blockOwnerDeletion === true),
    );
    if (blocking.length === 0) {
      await removeFinalizer(m, owner, FOREGROUND_FINALIZER);
      return;
    }
    for (const d of dependents) enqueue(d.m, d.obj);
  };

  const attemptToDelete = async (m: Monitor, obj: KubeObject): Promise<void> => {
    const refs = obj.metadata.ownerReferences ?? [];
    if (refs.length === 0) return;
    const solid: OwnerReference[] = [];
    const gone: OwnerReference[] = [];
    let waiting = false;
    for (const ref of refs) {
      const state = await ownerState(ref, obj);
      if (state === 'solid') solid.push(ref);
      else gone.push(ref);
      if (state === 'waiting') waiting = true;
    }
    if (gone.length === 0) return;
    if (solid.length > 0) {
      // Another owner keeps it: only forget the owners that are gone or going.
      await removeOwnerRefs(m, obj, new Set(gone.map((r) => r.uid)));
      return;
    }
    if (waiting && dependentsOf(obj.metadata.uid ?? '').length > 0) {
      await remove(m, obj, 'Foreground');
      return;
    }
    const policy = hasFinalizer(obj, ORPHAN_FINALIZER)
      ? 'Orphan'
      : hasFinalizer(obj, FOREGROUND_FINALIZER)
        ? 'Foreground'
        : 'Background';
    await remove(m, obj, policy);
  };

  const handle = async (key: string): Promise<void> => {
    const space = key.indexOf(' ');
    const m = monitors.get(key.slice(0, space));
    const obj = m?.informer.getByKey(key.slice(space + 1));
    if (m === undefined || obj === undefined) return;
    if (obj.metadata.deletionTimestamp !== undefined) {
      if (hasFinalizer(obj, ORPHAN_FINALIZER)) await orphanDependents(m, obj);
      if (hasFinalizer(obj, FOREGROUND_FINALIZER)) await processDeletingDependents(m, obj);
      return;
    }
    await attemptToDelete(m, obj);
  };

  const stopped = Promise.withResolvers<void>();
  const workers = (async () => {
    await Promise.race([
      Promise.all([...monitors.values()].map((m) => m.informer.hasSynced())),
      stopped.promise,
    ]);
    await runWorkers(queue, options.workers ?? 4, handle, (key, err) =>
      log.warn({ err, key }, 'garbage collection failed; retrying'),
    );
  })();

  return {
    async stop() {
      stopped.resolve();
      queue.shutDown();
      await workers;
    },
  };
}
