/**
 * Node lifecycle for edge nodes. A node whose Lease (kube-node-lease/<node>) has not been renewed for
 * the grace period gets Ready=Unknown (NodeStatusUnknown) and the `node.kubernetes.io/unreachable`
 * taints (NoSchedule, NoExecute). Edge autonomy: its pods are neither evicted nor marked not ready;
 * they keep running on the disconnected node. Only a node annotated `kedge.io/autonomy-duration`
 * (Go-style duration) has its pods deleted once it has been unreachable that long. When the Lease is
 * renewed again the unreachable taints go; Ready is left to the node's own status report. A node that
 * reports Ready=False gets the `node.kubernetes.io/not-ready` taints.
 *
 * Renewals are timed by when this controller observes them (like Kubernetes), so clock skew between
 * the node and the server does not matter.
 */
import type { Condition, KubeObject } from '../../api/meta.ts';
import { isPlainObject } from '../../api/meta.ts';
import { isApiError } from '../../api/status-error.ts';
import { type InformerFactory, runWorkers, WorkQueue } from '../../client/informer.ts';
import { type Cluster, Resources } from '../../client/types.ts';
import { parseDuration } from '../../lib/duration.ts';
import { KedgeError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { objectReference, recordEvent } from '../events.ts';

export const LEASE_NAMESPACE = 'kube-node-lease';
export const AUTONOMY_ANNOTATION = 'kedge.io/autonomy-duration';
export const TAINT_UNREACHABLE = 'node.kubernetes.io/unreachable';
export const TAINT_NOT_READY = 'node.kubernetes.io/not-ready';
const COMPONENT = 'node-lifecycle-controller';
const UNKNOWN_REASON = 'NodeStatusUnknown';
const UNKNOWN_MESSAGE = 'Kubelet stopped posting node status.';

export interface NodeLifecycleOptions {
  /** How long a Lease may go unrenewed before the node is unreachable (default 40s). */
  readonly gracePeriodMs?: number;
  /** Clock, for tests (default Date.now). */
  readonly now?: () => number;
}

export interface ResolvedNodeLifecycleOptions {
  readonly gracePeriodMs: number;
  readonly now: () => number;
}

/** Check the options once, naming the bad one. */
export function resolveNodeLifecycleOptions(
  options: NodeLifecycleOptions = {},
): ResolvedNodeLifecycleOptions {
  const grace = options.gracePeriodMs ?? 40_000;
  if (!Number.isFinite(grace) || grace <= 0) {
    throw new KedgeError(
      'KEDGE_CONFIG_INVALID',
      `nodeLifecycle.gracePeriodMs ${grace} must be a positive number`,
    );
  }
  return { gracePeriodMs: grace, now: options.now ?? Date.now };
}

export interface NodeLifecycleControllerOptions extends NodeLifecycleOptions {
  readonly cluster: Cluster;
  readonly factory: InformerFactory;
  readonly logger: Logger;
}

export interface NodeLifecycleController {
  stop(): Promise<void>;
}

interface Taint {
  key: string;
  value?: string;
  effect: string;
  timeAdded?: string;
}

interface Observed {
  /** The Lease's renewTime (or '' before any Lease was seen) and when this controller saw it change. */
  renewTime: string;
  observedAt: number;
  /** Ready status last seen, for NodeReady / NodeNotReady events on transitions. */
  ready: string | undefined;
}

function timestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function conditionsOf(node: KubeObject): Condition[] {
  const status = isPlainObject(node['status']) ? node['status'] : {};
  return Array.isArray(status['conditions']) ? (status['conditions'] as Condition[]) : [];
}

function readyOf(node: KubeObject): Condition | undefined {
  return conditionsOf(node).find((c) => c.type === 'Ready');
}

function taintsOf(node: KubeObject): Taint[] {
  const spec = isPlainObject(node['spec']) ? node['spec'] : {};
  return Array.isArray(spec['taints']) ? (spec['taints'] as Taint[]) : [];
}

function renewTimeOf(lease: KubeObject | undefined): string {
  const spec = lease !== undefined && isPlainObject(lease['spec']) ? lease['spec'] : {};
  return typeof spec['renewTime'] === 'string' ? spec['renewTime'] : '';
}

/** Start the node lifecycle controller. */
export function startNodeLifecycleController(
  options: NodeLifecycleControllerOptions,
): NodeLifecycleController {
  const { cluster, factory } = options;
  const { gracePeriodMs, now } = resolveNodeLifecycleOptions(options);
  const log = options.logger;
  const nodes = factory.informer(Resources.nodes);
  const leases = factory.informer(Resources.leases);
  const queue = new WorkQueue<string>();
  const observed = new Map<string, Observed>();
  const badAnnotations = new Map<string, string>();

  nodes.onAdd((n) => queue.add(n.metadata.name ?? ''));
  nodes.onUpdate((_o, n) => queue.add(n.metadata.name ?? ''));
  nodes.onDelete((n) => {
    observed.delete(n.metadata.name ?? '');
    badAnnotations.delete(n.metadata.name ?? '');
  });
  const onLease = (lease: KubeObject): void => {
    if (lease.metadata.namespace === LEASE_NAMESPACE) queue.add(lease.metadata.name ?? '');
  };
  leases.onAdd(onLease);
  leases.onUpdate((_o, l) => onLease(l));

  const event = (node: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): void => {
    void recordEvent(cluster, {
      involvedObject: { ...objectReference(node), uid: node.metadata.name ?? '' },
      type,
      reason,
      message,
      component: COMPONENT,
    });
  };

  /** Write spec.taints so that exactly `want` of the controller's taint keys are present. */
  const setTaints = async (node: KubeObject, want: readonly Taint[]): Promise<KubeObject> => {
    const ours = new Set([TAINT_UNREACHABLE, TAINT_NOT_READY]);
    const current = taintsOf(node);
    const same = (a: Taint, b: Taint): boolean => a.key === b.key && a.effect === b.effect;
    const kept = current.filter((t) => !ours.has(t.key) || want.some((w) => same(w, t)));
    const added = want.filter((w) => !current.some((t) => same(w, t)));
    if (kept.length === current.length && added.length === 0) return node;
    return cluster.patch(Resources.nodes, undefined, node.metadata.name ?? '', 'merge', {
      metadata: { resourceVersion: node.metadata.resourceVersion },
      spec: { taints: [...kept, ...added] },
    });
  };

  const markUnknown = async (node: KubeObject, at: number): Promise<KubeObject> => {
    const time = timestamp(at);
    const conditions = conditionsOf(node).map((c) =>
      c.status === 'Unknown'
        ? c
        : {
            ...c,
            status: 'Unknown' as const,
            reason: UNKNOWN_REASON,
            message: UNKNOWN_MESSAGE,
            lastTransitionTime: time,
          },
    );
    if (!conditions.some((c) => c.type === 'Ready')) {
      conditions.push({
        type: 'Ready',
        status: 'Unknown',
        reason: UNKNOWN_REASON,
        message: UNKNOWN_MESSAGE,
        lastHeartbeatTime: time,
        lastTransitionTime: time,
      });
    }
    const status = isPlainObject(node['status']) ? node['status'] : {};
    return cluster.update(
      Resources.nodes,
      { ...node, status: { ...status, conditions } },
      { subresource: 'status' },
    );
  };

  /** The autonomy duration of a node, or undefined (no annotation, or one that does not parse: warned once). */
  const autonomyOf = (node: KubeObject): number | undefined => {
    const name = node.metadata.name ?? '';
    const text = node.metadata.annotations?.[AUTONOMY_ANNOTATION];
    if (text === undefined) return undefined;
    try {
      return parseDuration(text, `annotation ${AUTONOMY_ANNOTATION}`);
    } catch (err) {
      if (badAnnotations.get(name) !== text) {
        badAnnotations.set(name, text);
        event(node, 'Warning', 'InvalidAutonomyDuration', err instanceof Error ? err.message : String(err));
      }
      return undefined;
    }
  };

  const evictPods = async (node: KubeObject, unreachableForMs: number): Promise<void> => {
    const name = node.metadata.name ?? '';
    const pods = await cluster.list(Resources.pods, { fieldSelector: `spec.nodeName=${name}` });
    let deleted = 0;
    for (const pod of pods.items) {
      if (pod.metadata.deletionTimestamp !== undefined) continue;
      try {
        await cluster.delete(Resources.pods, pod.metadata.namespace, pod.metadata.name ?? '', {
          preconditions: { uid: pod.metadata.uid ?? '' },
        });
        deleted++;
        void recordEvent(cluster, {
          involvedObject: objectReference(pod),
          type: 'Normal',
          reason: 'NodeAutonomyExpired',
          message: `Deleting pod: node ${name} has been unreachable longer than its autonomy duration`,
          component: COMPONENT,
        });
      } catch (err) {
        if (isApiError(err, 404) || isApiError(err, 409)) continue;
        throw err;
      }
    }
    if (deleted > 0) {
      log.info({ node: name, pods: deleted, unreachableForMs }, 'autonomy duration expired: deleted pods');
      event(
        node,
        'Normal',
        'DeletingAllPods',
        `Deleting ${deleted} pods: node ${name} unreachable beyond its autonomy duration`,
      );
    }
  };

  const handle = async (name: string): Promise<void> => {
    let node = nodes.get(undefined, name);
    if (node === undefined) return;
    const t = now();
    const renewTime = renewTimeOf(leases.get(LEASE_NAMESPACE, name));
    let obs = observed.get(name);
    if (obs === undefined) {
      obs = { renewTime, observedAt: t, ready: readyOf(node)?.status };
      observed.set(name, obs);
    } else if (obs.renewTime !== renewTime) {
      obs.renewTime = renewTime;
      obs.observedAt = t;
    }
    const silentFor = t - obs.observedAt;
    if (silentFor > gracePeriodMs) {
      const ready = readyOf(node);
      if (ready?.status !== 'Unknown') {
        node = await markUnknown(node, t);
        log.info({ node: name, silentForMs: silentFor }, 'node lease expired: Ready=Unknown');
      }
      node = await setTaints(node, [
        { key: TAINT_UNREACHABLE, effect: 'NoSchedule', timeAdded: timestamp(t) },
        { key: TAINT_UNREACHABLE, effect: 'NoExecute', timeAdded: timestamp(t) },
      ]);
      const autonomy = autonomyOf(node);
      if (autonomy !== undefined) {
        const since = Date.parse(readyOf(node)?.lastTransitionTime ?? '') || obs.observedAt + gracePeriodMs;
        const unreachableFor = t - since;
        if (unreachableFor >= autonomy) await evictPods(node, unreachableFor);
        else queue.addAfter(name, autonomy - unreachableFor + 1);
      }
    } else {
      const ready = readyOf(node)?.status;
      const want: Taint[] =
        ready === 'False'
          ? [
              { key: TAINT_NOT_READY, effect: 'NoSchedule', timeAdded: timestamp(t) },
              { key: TAINT_NOT_READY, effect: 'NoExecute', timeAdded: timestamp(t) },
            ]
          : [];
      node = await setTaints(node, want);
      queue.addAfter(name, gracePeriodMs - silentFor + 1);
    }
    const ready = readyOf(node)?.status;
    if (ready !== obs.ready) {
      if (ready === 'True') event(node, 'Normal', 'NodeReady', `Node ${name} status is now: NodeReady`);
      else if (obs.ready === 'True' || obs.ready === undefined) {
        event(node, 'Normal', 'NodeNotReady', `Node ${name} status is now: NodeNotReady`);
      }
      obs.ready = ready;
    }
  };

  const stopped = Promise.withResolvers<void>();
  const workers = (async () => {
    await Promise.race([Promise.all([nodes.hasSynced(), leases.hasSynced()]), stopped.promise]);
    await runWorkers(queue, 2, handle, (name, err) => {
      if (isApiError(err, 409)) log.debug({ node: name }, 'node changed meanwhile; retrying');
      else log.warn({ err, node: name }, 'node lifecycle failed; retrying');
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
