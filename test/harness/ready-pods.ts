/**
 * Stands in for kubelets (and, when asked, the scheduler) in workload tests: every bound pod is marked
 * Running and Ready through the status subresource; unbound pods are bound to `bindTo` when given.
 * `shouldMarkReady` holds pods back (a stuck rollout); call `recheck()` after changing what it answers.
 */
import type { KubeObject } from '../../src/api/meta.ts';
import { isApiError } from '../../src/api/status-error.ts';
import { Informer, objectKeyOf } from '../../src/client/informer.ts';
import { type Cluster, type ResourceRef, Resources } from '../../src/client/types.ts';
import { silentLogger } from '../../src/lib/log.ts';

export interface ReadyPodsOptions {
  /** Bind pods that have no spec.nodeName to this node (a stand-in scheduler). */
  readonly bindTo?: string;
  /** Which bound pods to mark ready (default: all). */
  shouldMarkReady?: (pod: KubeObject) => boolean;
}

export interface ReadyPods {
  /** Pods marked ready so far, by namespace/name. */
  readonly marked: ReadonlySet<string>;
  /** Change which pods get marked and look at every pod again. */
  setShouldMarkReady(fn: (pod: KubeObject) => boolean): void;
  /** Resolves when no write is in flight. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

function isReady(pod: KubeObject): boolean {
  const status = pod['status'] as { conditions?: Array<{ type: string; status: string }> } | undefined;
  return status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function nodeNameOf(pod: KubeObject): string {
  const spec = pod['spec'] as { nodeName?: string } | undefined;
  return spec?.nodeName ?? '';
}

export function startReadyPods(cluster: Cluster, options: ReadyPodsOptions = {}): ReadyPods {
  let shouldMarkReady = options.shouldMarkReady ?? (() => true);
  const informer = new Informer(cluster, Resources.pods, silentLogger());
  const marked = new Set<string>();
  const inFlight = new Set<Promise<void>>();

  const act = async (pod: KubeObject): Promise<void> => {
    if (pod.metadata.deletionTimestamp !== undefined) return;
    const ns = pod.metadata.namespace;
    const name = pod.metadata.name ?? '';
    try {
      if (nodeNameOf(pod) === '') {
        if (options.bindTo === undefined) return;
        await cluster.createSubresource(Resources.pods, ns, name, 'binding', {
          apiVersion: 'v1',
          kind: 'Binding',
          metadata: { name, namespace: ns },
          target: { apiVersion: 'v1', kind: 'Node', name: options.bindTo },
        });
        return;
      }
      if (isReady(pod) || !shouldMarkReady(pod)) return;
      const at = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
      const containers = ((pod['spec'] as { containers?: Array<{ name: string; image: string }> })
        ?.containers ?? []) as Array<{ name: string; image: string }>;
      await cluster.patch(
        Resources.pods,
        ns,
        name,
        'merge',
        {
          status: {
            phase: 'Running',
            startTime: at,
            conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({
              type,
              status: 'True',
              lastProbeTime: null,
              lastTransitionTime: at,
            })),
            containerStatuses: containers.map((c) => ({
              name: c.name,
              image: c.image,
              imageID: '',
              ready: true,
              started: true,
              restartCount: 0,
              state: { running: { startedAt: at } },
            })),
          },
        },
        { subresource: 'status' },
      );
      marked.add(objectKeyOf(pod));
    } catch (err) {
      if (!isApiError(err, 404) && !isApiError(err, 409)) throw err;
    }
  };
  const schedule = (pod: KubeObject): void => {
    const p = act(pod).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  informer.onAdd(schedule);
  informer.onUpdate((_, pod) => schedule(pod));
  informer.start();
  return {
    marked,
    setShouldMarkReady(fn) {
      shouldMarkReady = fn;
      for (const pod of informer.list()) schedule(pod);
    },
    async idle() {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    },
    async stop() {
      await informer.stop();
      await Promise.allSettled([...inFlight]);
    },
  };
}

/**
 * Wait until `check` returns something other than undefined for the objects of a collection in a
 * namespace; re-checks on every watch event (no polling). Fails after `timeoutMs` with the last state.
 */
export async function waitUntil<T>(
  cluster: Cluster,
  ref: ResourceRef,
  namespace: string | undefined,
  check: (items: KubeObject[]) => T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const signal = AbortSignal.timeout(timeoutMs);
  let last: KubeObject[] = [];
  while (!signal.aborted) {
    const list = await cluster.list(ref, namespace === undefined ? {} : { namespace });
    last = list.items;
    const result = check(list.items);
    if (result !== undefined) return result;
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const ev of cluster.watch(ref, {
        resourceVersion: list.metadata.resourceVersion ?? '',
        signal: controller.signal,
        ...(namespace === undefined ? {} : { namespace }),
      })) {
        if (ev.type !== 'BOOKMARK') break;
      }
    } catch (err) {
      if (!signal.aborted && !isApiError(err, 410)) throw err;
    } finally {
      controller.abort();
      signal.removeEventListener('abort', onAbort);
    }
  }
  const brief = last.map((o) => ({ name: o.metadata.name, spec: o['spec'], status: o['status'] }));
  throw new Error(`Timed out after ${timeoutMs} ms waiting on ${ref.resource}: ${JSON.stringify(brief)}`);
}
