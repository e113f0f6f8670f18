/**
 * The ReplicaSet controller: keeps spec.replicas active pods matching the selector, owned by the set;
 * adopts orphans, releases pods that stop matching, deletes surplus pods in Kubernetes' order, and
 * reports replicas, fullyLabeledReplicas, readyReplicas, availableReplicas and observedGeneration.
 */
import type { KubeObject } from '../../api/meta.ts';
import { labelSelectorFromSpec, matchesLabels } from '../../api/selectors.ts';
import { isApiError } from '../../api/status-error.ts';
import { type Informer, type InformerFactory, objectKeyOf, splitKey } from '../../client/informer.ts';
import { type Cluster, Resources } from '../../client/types.ts';
import type { Logger } from '../../lib/log.ts';
import { objectReference, recordEvent } from '../events.ts';
import {
  addWorkloadIndexes,
  BY_CONTROLLER,
  BY_NAMESPACE,
  claimCandidates,
  controllerRef,
  Expectations,
  errorMessage,
  getCondition,
  ignoreNotFound,
  isPodActive,
  isPodAvailable,
  isPodReady,
  labelsOf,
  nameOf,
  newControllerRef,
  nextAvailabilityCheck,
  nowIso,
  type Pod,
  podChangeMatters,
  type ReplicaSet,
  slowStartBatch,
  type WorkloadCondition,
} from './common.ts';
import { ControllerLoop } from './loop.ts';
import { claimObjects, podFromTemplate, podsToDelete } from './pods.ts';

const COMPONENT = 'replicaset-controller';
/** At most this many creates or deletes per sync, like Kubernetes' burstReplicas. */
const BURST = 500;

export interface ReplicaSetControllerOptions {
  readonly cluster: Cluster;
  readonly informers: InformerFactory;
  readonly logger: Logger;
}

export class ReplicaSetController {
  readonly #cluster: Cluster;
  readonly #log: Logger;
  readonly #sets: Informer<ReplicaSet>;
  readonly #pods: Informer<Pod>;
  readonly #expectations = new Expectations();
  readonly #loop: ControllerLoop;

  constructor(options: ReplicaSetControllerOptions) {
    this.#cluster = options.cluster;
    this.#log = options.logger.child({ component: COMPONENT });
    this.#sets = options.informers.informer<ReplicaSet>(Resources.replicasets);
    this.#pods = options.informers.informer<Pod>(Resources.pods);
    addWorkloadIndexes(this.#sets);
    addWorkloadIndexes(this.#pods);
    this.#loop = new ControllerLoop(this.#log, (key) => this.sync(key));
    const enqueue = (rs: KubeObject): void => this.#loop.queue.add(objectKeyOf(rs));
    this.#sets.onAdd(enqueue);
    this.#sets.onUpdate((_, rs) => enqueue(rs));
    this.#sets.onDelete((rs) => {
      this.#expectations.forget(objectKeyOf(rs));
      enqueue(rs);
    });
    this.#pods.onAdd((pod) => this.#podAdded(pod));
    this.#pods.onUpdate((old, pod) => this.#podUpdated(old, pod));
    this.#pods.onDelete((pod) => this.#podDeleted(pod));
  }

  start(workers = 4): void {
    this.#loop.start(workers, Promise.all([this.#sets.hasSynced(), this.#pods.hasSynced()]));
  }

  stop(): Promise<void> {
    return this.#loop.stop();
  }

  #owner(pod: Pod): ReplicaSet | undefined {
    const ref = controllerRef(pod);
    if (ref === undefined || ref.kind !== 'ReplicaSet') return undefined;
    const rs = this.#sets.get(pod.metadata.namespace, ref.name);
    return rs?.metadata.uid === ref.uid ? rs : undefined;
  }

  #enqueueMatching(pod: Pod): void {
    for (const rs of this.#sets.byIndex(BY_NAMESPACE, pod.metadata.namespace ?? '')) {
      if (matchesSelector(rs, pod)) this.#loop.queue.add(objectKeyOf(rs));
    }
  }

  #podAdded(pod: Pod): void {
    if (pod.metadata.deletionTimestamp !== undefined) {
      this.#podDeleted(pod);
      return;
    }
    const rs = this.#owner(pod);
    if (rs !== undefined) {
      this.#expectations.creationObserved(objectKeyOf(rs));
      this.#enqueueForPod(objectKeyOf(rs));
    } else if (controllerRef(pod) === undefined) this.#enqueueMatching(pod);
  }

  #podUpdated(old: Pod, pod: Pod): void {
    // A binding or status churn changes none of the set's counts: no need to walk its pods again.
    if (!podChangeMatters(old, pod)) return;
    if (pod.metadata.deletionTimestamp !== undefined && old.metadata.deletionTimestamp === undefined) {
      this.#podDeleted(pod);
      return;
    }
    const oldRef = controllerRef(old);
    const ref = controllerRef(pod);
    if (oldRef?.uid !== ref?.uid) {
      const prev = this.#owner(old);
      if (prev !== undefined) this.#loop.queue.add(objectKeyOf(prev));
    }
    const rs = this.#owner(pod);
    if (rs !== undefined) this.#loop.addBatched(objectKeyOf(rs));
    else if (ref === undefined) this.#enqueueMatching(pod);
  }

  #podDeleted(pod: Pod): void {
    const rs = this.#owner(pod);
    if (rs === undefined) return;
    const key = objectKeyOf(rs);
    this.#expectations.deletionObserved(key, objectKeyOf(pod));
    this.#enqueueForPod(key);
  }

  /**
   * Sync at once when the set may act (its expectations are met, maybe by this very event); while it
   * still waits for its own creates or deletes to show up, gather the events into one batched sync.
   */
  #enqueueForPod(key: string): void {
    if (this.#expectations.satisfied(key)) this.#loop.queue.add(key);
    else this.#loop.addBatched(key);
  }

  /** Reconcile one ReplicaSet by `namespace/name`. */
  async sync(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const rs = this.#sets.get(namespace, name);
    if (rs === undefined) {
      this.#expectations.forget(key);
      return;
    }
    const needsSync = this.#expectations.satisfied(key);
    const selector = labelSelectorFromSpec(rs.spec?.selector);
    const candidates = claimCandidates(this.#pods, rs).filter(isPodActive);
    const pods = await claimObjects(
      this.#cluster,
      rs,
      { apiVersion: 'apps/v1', kind: 'ReplicaSet', resource: Resources.replicasets },
      selector,
      candidates,
    );
    let failure: { reason: string; err: unknown } | undefined;
    if (needsSync && rs.metadata.deletionTimestamp === undefined) {
      failure = await this.#manageReplicas(key, rs, pods);
    }
    const now = Date.now();
    await this.#updateStatus(rs, calculateStatus(rs, pods, failure, now));
    if (failure !== undefined) throw failure.err;
    const minReady = rs.spec?.minReadySeconds ?? 0;
    const next = minReady > 0 ? nextAvailabilityCheck(pods, minReady, now) : undefined;
    if (next !== undefined) this.#loop.queue.addAfter(key, next - now + 50);
  }

  async #manageReplicas(
    key: string,
    rs: ReplicaSet,
    pods: Pod[],
  ): Promise<{ reason: string; err: unknown } | undefined> {
    const want = rs.spec?.replicas ?? 1;
    const diff = pods.length - want;
    if (diff < 0) {
      const count = Math.min(-diff, BURST);
      this.#expectations.expect(key, count, []);
      const ref = newControllerRef(rs, 'apps/v1', 'ReplicaSet');
      const { successes, error } = await slowStartBatch(count, 1, async () => {
        const created = await this.#cluster.create<Pod>(
          Resources.pods,
          rs.metadata.namespace,
          podFromTemplate(rs.spec?.template, rs, ref),
        );
        this.#event(rs, 'Normal', 'SuccessfulCreate', `Created pod: ${nameOf(created)}`);
      });
      if (error !== undefined) {
        this.#expectations.lowerCreations(key, count - successes);
        this.#event(rs, 'Warning', 'FailedCreate', `Error creating: ${errorMessage(error)}`);
        return { reason: 'FailedCreate', err: error };
      }
    } else if (diff > 0) {
      const count = Math.min(diff, BURST);
      const victims = podsToDelete(pods, this.#relatedPods(rs), count);
      this.#expectations.expect(key, 0, victims.map(objectKeyOf));
      const results = await Promise.allSettled(
        victims.map(async (pod) => {
          try {
            await this.#cluster.delete(Resources.pods, pod.metadata.namespace, nameOf(pod), {
              preconditions: { uid: pod.metadata.uid ?? '' },
            });
            this.#event(rs, 'Normal', 'SuccessfulDelete', `Deleted pod: ${nameOf(pod)}`);
          } catch (err) {
            this.#expectations.deletionObserved(key, objectKeyOf(pod));
            if (isApiError(err, 409)) return; // replaced by a new pod of the same name: not ours to delete
            ignoreNotFound(err);
          }
        }),
      );
      const failed = results.find((r) => r.status === 'rejected');
      if (failed !== undefined) {
        const err = (failed as PromiseRejectedResult).reason;
        this.#event(rs, 'Warning', 'FailedDelete', `Error deleting: ${errorMessage(err)}`);
        return { reason: 'FailedDelete', err };
      }
    }
    return undefined;
  }

  /** Pods of the sets that share this set's controller (a Deployment's other ReplicaSets), for ranking. */
  #relatedPods(rs: ReplicaSet): Pod[] {
    const owner = controllerRef(rs);
    const sets = owner === undefined ? [rs] : this.#sets.byIndex(BY_CONTROLLER, owner.uid);
    return sets.flatMap((s) => this.#pods.byIndex(BY_CONTROLLER, s.metadata.uid ?? '')).filter(isPodActive);
  }

  async #updateStatus(rs: ReplicaSet, status: NonNullable<ReplicaSet['status']>): Promise<void> {
    const current = rs.status ?? {};
    if (sameStatus(current, status)) return;
    try {
      await this.#cluster.patch(
        Resources.replicasets,
        rs.metadata.namespace,
        nameOf(rs),
        'merge',
        { status: { ...status, conditions: status.conditions ?? null } },
        { subresource: 'status' },
      );
    } catch (err) {
      ignoreNotFound(err);
    }
  }

  #event(rs: ReplicaSet, type: 'Normal' | 'Warning', reason: string, message: string): void {
    void recordEvent(
      this.#cluster,
      { involvedObject: objectReference(rs), type, reason, message, component: COMPONENT },
      { logger: this.#log },
    );
  }
}

function matchesSelector(rs: ReplicaSet, pod: Pod): boolean {
  try {
    const sel = labelSelectorFromSpec(rs.spec?.selector);
    return sel.requirements.length > 0 && matchesLabels(sel, labelsOf(pod));
  } catch {
    return false;
  }
}

/** The status a ReplicaSet should report for the pods it controls. */
export function calculateStatus(
  rs: ReplicaSet,
  pods: readonly Pod[],
  failure: { reason: string; err: unknown } | undefined,
  now: number,
): NonNullable<ReplicaSet['status']> {
  const templateLabels = Object.entries(rs.spec?.template?.metadata?.labels ?? {});
  const minReady = rs.spec?.minReadySeconds ?? 0;
  let fullyLabeled = 0;
  let ready = 0;
  let available = 0;
  for (const pod of pods) {
    const labels = labelsOf(pod);
    if (templateLabels.every(([k, v]) => labels[k] === v)) fullyLabeled++;
    if (isPodReady(pod)) ready++;
    if (isPodAvailable(pod, minReady, now)) available++;
  }
  let conditions = (rs.status?.conditions ?? []).filter((c) => c.type !== 'ReplicaFailure');
  if (failure !== undefined) {
    const prev = getCondition(rs.status?.conditions, 'ReplicaFailure');
    const cond: WorkloadCondition = {
      type: 'ReplicaFailure',
      status: 'True',
      reason: failure.reason,
      message: errorMessage(failure.err),
      lastTransitionTime: prev?.status === 'True' ? (prev.lastTransitionTime ?? nowIso(now)) : nowIso(now),
    };
    conditions = [...conditions, cond];
  }
  return {
    replicas: pods.length,
    fullyLabeledReplicas: fullyLabeled,
    readyReplicas: ready,
    availableReplicas: available,
    observedGeneration: rs.metadata.generation ?? 1,
    ...(conditions.length > 0 ? { conditions } : {}),
  };
}

function sameStatus(a: NonNullable<ReplicaSet['status']>, b: NonNullable<ReplicaSet['status']>): boolean {
  return (
    (a.replicas ?? 0) === (b.replicas ?? 0) &&
    (a.fullyLabeledReplicas ?? 0) === (b.fullyLabeledReplicas ?? 0) &&
    (a.readyReplicas ?? 0) === (b.readyReplicas ?? 0) &&
    (a.availableReplicas ?? 0) === (b.availableReplicas ?? 0) &&
    (a.observedGeneration ?? 0) === (b.observedGeneration ?? 0) &&
    JSON.stringify(a.conditions ?? []) === JSON.stringify(b.conditions ?? [])
  );
}
