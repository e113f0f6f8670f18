/**
 * Namespace deletion: a namespace being deleted (deletionTimestamp set, phase Terminating, spec.finalizers
 * holding `kubernetes`) has everything in it deleted, every namespaced type, built-in and custom; once
 * nothing is left (objects with finalizers are waited for), the `kubernetes` finalizer is removed through
 * the namespace's `finalize` subresource, and the API removes the namespace.
 */
import type { KubeObject } from '../../api/meta.ts';
import { isPlainObject } from '../../api/meta.ts';
import { isApiError } from '../../api/status-error.ts';
import { type InformerFactory, runWorkers, WorkQueue } from '../../client/informer.ts';
import { type Cluster, Resources } from '../../client/types.ts';
import type { Logger } from '../../lib/log.ts';
import { recordEvent } from '../events.ts';
import { resourceCatalog, type ServedType } from '../gc/resources.ts';

export const NAMESPACE_FINALIZER = 'kubernetes';
const COMPONENT = 'namespace-controller';

export interface NamespaceControllerOptions {
  readonly cluster: Cluster;
  readonly factory: InformerFactory;
  readonly logger: Logger;
  readonly workers?: number;
  /** First wait before checking again for content that is still being finalized (default 200 ms, doubling to 15 s). */
  readonly recheckMs?: number;
}

export interface NamespaceController {
  stop(): Promise<void>;
}

function specFinalizers(ns: KubeObject): string[] {
  const spec = isPlainObject(ns['spec']) ? ns['spec'] : {};
  return Array.isArray(spec['finalizers'])
    ? spec['finalizers'].filter((f): f is string => typeof f === 'string')
    : [];
}

function isBeingDeleted(ns: KubeObject): boolean {
  return ns.metadata.deletionTimestamp !== undefined && specFinalizers(ns).includes(NAMESPACE_FINALIZER);
}

/** Start the namespace controller. Workers start once namespaces and CRDs are listed. */
export function startNamespaceController(options: NamespaceControllerOptions): NamespaceController {
  const { cluster, factory } = options;
  const log = options.logger;
  const catalog = resourceCatalog(factory);
  const namespaces = factory.informer(Resources.namespaces);
  const queue = new WorkQueue<string>();
  const waits = new Map<string, number>();
  const firstWait = options.recheckMs ?? 200;

  namespaces.onAdd((ns) => {
    if (isBeingDeleted(ns)) queue.add(ns.metadata.name ?? '');
  });
  namespaces.onUpdate((_old, ns) => {
    if (isBeingDeleted(ns)) queue.add(ns.metadata.name ?? '');
  });
  namespaces.onDelete((ns) => waits.delete(ns.metadata.name ?? ''));

  /** Delete what is in the namespace; returns how many objects are still there (finalizers pending). */
  const deleteContent = async (namespace: string, types: readonly ServedType[]): Promise<number> => {
    let remaining = 0;
    for (const type of types) {
      let items: KubeObject[];
      try {
        items = (await cluster.list(type.ref, { namespace })).items;
      } catch (err) {
        if (isApiError(err, 404) && type.custom) continue; // Its CRD went away meanwhile.
        throw err;
      }
      for (const item of items) {
        if (item.metadata.deletionTimestamp !== undefined) {
          remaining++;
          continue;
        }
        try {
          const answer = await cluster.delete(type.ref, namespace, item.metadata.name ?? '', {
            propagationPolicy: 'Background',
            preconditions: { uid: item.metadata.uid ?? '' },
          });
          // The answer is the object as it now is when it waits for finalizers.
          if (
            answer.metadata.deletionTimestamp !== undefined &&
            (answer.metadata.finalizers ?? []).length > 0
          ) {
            remaining++;
          }
        } catch (err) {
          if (isApiError(err, 404) || isApiError(err, 409)) continue;
          throw err;
        }
      }
    }
    return remaining;
  };

  const handle = async (name: string): Promise<void> => {
    let ns: KubeObject;
    try {
      ns = await cluster.get(Resources.namespaces, undefined, name);
    } catch (err) {
      if (isApiError(err, 404)) return;
      throw err;
    }
    if (!isBeingDeleted(ns)) return;
    const types = catalog.collections().filter((t) => t.namespaced);
    const remaining = await deleteContent(name, types);
    if (remaining > 0) {
      const wait = waits.get(name) ?? firstWait;
      waits.set(name, Math.min(15_000, wait * 2));
      log.debug({ namespace: name, remaining, recheckInMs: wait }, 'namespace content still being deleted');
      queue.addAfter(name, wait);
      return;
    }
    waits.delete(name);
    try {
      await cluster.updateSubresource(Resources.namespaces, undefined, name, 'finalize', {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name },
        spec: { finalizers: specFinalizers(ns).filter((f) => f !== NAMESPACE_FINALIZER) },
      });
    } catch (err) {
      if (isApiError(err, 404)) return;
      throw err;
    }
    log.info({ namespace: name }, 'namespace finalized');
  };

  const stopped = Promise.withResolvers<void>();
  const workers = (async () => {
    await Promise.race([
      Promise.all([namespaces.hasSynced(), catalog.crdInformer.hasSynced()]),
      stopped.promise,
    ]);
    await runWorkers(queue, options.workers ?? 2, handle, (name, err) => {
      log.warn({ err, namespace: name }, 'namespace deletion failed; retrying');
      void recordEvent(cluster, {
        involvedObject: { apiVersion: 'v1', kind: 'Namespace', name },
        type: 'Warning',
        reason: 'NamespaceDeletionContentFailure',
        message: `Failed to delete all resources in namespace ${name}: ${err instanceof Error ? err.message : String(err)}`,
        component: COMPONENT,
      });
    });
  })();

  return {
    async stop() {
      stopped.resolve();
      queue.shutDown();
      await workers;
    },
  };
}
