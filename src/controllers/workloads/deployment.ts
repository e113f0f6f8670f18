/**
 * The Deployment controller, following Kubernetes' deployment controller: one ReplicaSet per pod
 * template (`<name>-<pod-template-hash>`), RollingUpdate within maxSurge/maxUnavailable, Recreate,
 * proportional scaling while a rollout is under way, pause, revisions (an old ReplicaSet whose template
 * comes back, as after `kubectl rollout undo`, is reused and gets the next revision), revision history
 * cleanup, and the status `kubectl rollout status` reads (conditions Available and Progressing).
 */
import { cloneJson, type KubeObject } from '../../api/meta.ts';
import {
  isEverything,
  type LabelSelector,
  labelSelectorFromSpec,
  matchesLabels,
} from '../../api/selectors.ts';
import { isApiError } from '../../api/status-error.ts';
import { type Informer, type InformerFactory, objectKeyOf, splitKey } from '../../client/informer.ts';
import { type Cluster, Resources } from '../../client/types.ts';
import type { Logger } from '../../lib/log.ts';
import { objectReference, recordEvent } from '../events.ts';
import {
  addWorkloadIndexes,
  BY_CONTROLLER,
  BY_NAMESPACE,
  byCreationThenName,
  claimCandidates,
  controllerRef,
  type Deployment,
  getCondition,
  ignoreNotFound,
  isControlledBy,
  isPodActive,
  labelsOf,
  nameOf,
  newControllerRef,
  nowIso,
  POD_TEMPLATE_HASH,
  type Pod,
  podTemplateHash,
  REVISION_ANNOTATION,
  type ReplicaSet,
  resolveFenceposts,
  templatesEqualIgnoringHash,
  type WorkloadCondition,
} from './common.ts';
import { ControllerLoop } from './loop.ts';
import { claimObjects } from './pods.ts';

const COMPONENT = 'deployment-controller';
const REVISION_HISTORY = 'deployment.kubernetes.io/revision-history';
const DESIRED_REPLICAS = 'deployment.kubernetes.io/desired-replicas';
const MAX_REPLICAS = 'deployment.kubernetes.io/max-replicas';
/** Deployment annotations not copied to its ReplicaSets (kubectl's rollout undo skips the same set). */
const NOT_COPIED = new Set([
  'kubectl.kubernetes.io/last-applied-configuration',
  REVISION_ANNOTATION,
  REVISION_HISTORY,
  DESIRED_REPLICAS,
  MAX_REPLICAS,
  'deprecated.deployment.rollback.to',
]);

/** Progressing condition reasons, as Kubernetes names them (kubectl matches on them). */
export const Reasons = {
  newRSAvailable: 'NewReplicaSetAvailable',
  timedOut: 'ProgressDeadlineExceeded',
  rsUpdated: 'ReplicaSetUpdated',
  newRSCreated: 'NewReplicaSetCreated',
  foundNewRS: 'FoundNewReplicaSet',
  paused: 'DeploymentPaused',
  resumed: 'DeploymentResumed',
  minimumAvailable: 'MinimumReplicasAvailable',
  minimumUnavailable: 'MinimumReplicasUnavailable',
} as const;

type Status = NonNullable<Deployment['status']>;

export interface DeploymentControllerOptions {
  readonly cluster: Cluster;
  readonly informers: InformerFactory;
  readonly logger: Logger;
}

function replicasOf(d: Deployment): number {
  return d.spec?.replicas ?? 1;
}

function rsReplicas(rs: ReplicaSet | undefined): number {
  return rs?.spec?.replicas ?? 0;
}

function isRollingUpdate(d: Deployment): boolean {
  return (d.spec?.strategy?.type ?? 'RollingUpdate') === 'RollingUpdate';
}

export function maxSurge(d: Deployment): number {
  if (!isRollingUpdate(d)) return 0;
  const ru = d.spec?.strategy?.rollingUpdate;
  return resolveFenceposts(ru?.maxSurge ?? '25%', ru?.maxUnavailable ?? '25%', replicasOf(d)).surge;
}

export function maxUnavailable(d: Deployment): number {
  const replicas = replicasOf(d);
  if (!isRollingUpdate(d) || replicas === 0) return 0;
  const ru = d.spec?.strategy?.rollingUpdate;
  const { unavailable } = resolveFenceposts(ru?.maxSurge ?? '25%', ru?.maxUnavailable ?? '25%', replicas);
  return Math.min(unavailable, replicas);
}

function revisionOf(obj: KubeObject): number {
  const v = obj.metadata.annotations?.[REVISION_ANNOTATION];
  const n = v === undefined ? 0 : Number.parseInt(v, 10);
  return Number.isNaN(n) ? 0 : n;
}

function hasProgressDeadline(d: Deployment): boolean {
  const s = d.spec?.progressDeadlineSeconds;
  return s !== undefined && s !== 2147483647;
}

function sum(rss: readonly (ReplicaSet | undefined)[], f: (rs: ReplicaSet) => number | undefined): number {
  let total = 0;
  for (const rs of rss) if (rs !== undefined) total += f(rs) ?? 0;
  return total;
}

const active = (rss: readonly ReplicaSet[]): ReplicaSet[] => rss.filter((rs) => rsReplicas(rs) > 0);

/** How many replicas the new ReplicaSet may have now (NewRSNewReplicas). */
export function newRSNewReplicas(d: Deployment, allRSs: readonly ReplicaSet[], newRS: ReplicaSet): number {
  if (!isRollingUpdate(d)) return replicasOf(d);
  const total = sum(allRSs, (rs) => rs.spec?.replicas);
  const maxTotal = replicasOf(d) + maxSurge(d);
  if (total >= maxTotal) return rsReplicas(newRS);
  const up = Math.min(maxTotal - total, replicasOf(d) - rsReplicas(newRS));
  return rsReplicas(newRS) + up;
}

function deploymentComplete(d: Deployment, s: Status): boolean {
  const r = replicasOf(d);
  return (
    (s.updatedReplicas ?? 0) === r &&
    (s.replicas ?? 0) === r &&
    (s.availableReplicas ?? 0) === r &&
    (s.observedGeneration ?? 0) >= (d.metadata.generation ?? 1)
  );
}

function deploymentProgressing(d: Deployment, s: Status): boolean {
  const old = d.status ?? {};
  const oldOld = (old.replicas ?? 0) - (old.updatedReplicas ?? 0);
  const newOld = (s.replicas ?? 0) - (s.updatedReplicas ?? 0);
  return (
    (s.updatedReplicas ?? 0) > (old.updatedReplicas ?? 0) ||
    newOld < oldOld ||
    (s.readyReplicas ?? 0) > (old.readyReplicas ?? 0) ||
    (s.availableReplicas ?? 0) > (old.availableReplicas ?? 0)
  );
}

function condition(
  type: string,
  status: WorkloadCondition['status'],
  reason: string,
  message: string,
): WorkloadCondition {
  const at = nowIso();
  return { type, status, lastUpdateTime: at, lastTransitionTime: at, reason, message };
}

/** Set a condition; an unchanged status keeps its lastTransitionTime (SetDeploymentCondition). */
function setCond(s: Status, next: WorkloadCondition): void {
  const conditions = s.conditions ?? [];
  const cur = conditions.find((c) => c.type === next.type);
  if (
    cur !== undefined &&
    cur.status === next.status &&
    cur.reason === next.reason &&
    cur.message === next.message
  )
    return;
  if (cur !== undefined && cur.status === next.status && cur.lastTransitionTime !== undefined)
    next.lastTransitionTime = cur.lastTransitionTime;
  s.conditions = [...conditions.filter((c) => c.type !== next.type), next];
}

function removeCond(s: Status, type: string): void {
  if (s.conditions !== undefined) s.conditions = s.conditions.filter((c) => c.type !== type);
}

export class DeploymentController {
  readonly #cluster: Cluster;
  readonly #log: Logger;
  readonly #deployments: Informer<Deployment>;
  readonly #sets: Informer<ReplicaSet>;
  readonly #pods: Informer<Pod>;
  readonly #loop: ControllerLoop;

  constructor(options: DeploymentControllerOptions) {
    this.#cluster = options.cluster;
    this.#log = options.logger.child({ component: COMPONENT });
    this.#deployments = options.informers.informer<Deployment>(Resources.deployments);
    this.#sets = options.informers.informer<ReplicaSet>(Resources.replicasets);
    this.#pods = options.informers.informer<Pod>(Resources.pods);
    addWorkloadIndexes(this.#deployments);
    addWorkloadIndexes(this.#sets);
    addWorkloadIndexes(this.#pods);
    this.#loop = new ControllerLoop(this.#log, (key) => this.sync(key));
    const enqueue = (d: KubeObject): void => this.#loop.queue.add(objectKeyOf(d));
    this.#deployments.onAdd(enqueue);
    this.#deployments.onUpdate((_, d) => enqueue(d));
    this.#deployments.onDelete(enqueue);
    this.#sets.onAdd((rs) => this.#rsChanged(undefined, rs));
    this.#sets.onUpdate((old, rs) => this.#rsChanged(old, rs));
    this.#sets.onDelete((rs) => this.#rsChanged(undefined, rs));
    // Recreate waits for old pods to be gone.
    this.#pods.onDelete((pod) => {
      const rs = this.#ownerOf(this.#sets, pod, 'ReplicaSet');
      const d = rs === undefined ? undefined : this.#ownerOf(this.#deployments, rs, 'Deployment');
      if (d !== undefined && d.spec?.strategy?.type === 'Recreate') enqueue(d);
    });
  }

  start(workers = 4): void {
    this.#loop.start(
      workers,
      Promise.all([this.#deployments.hasSynced(), this.#sets.hasSynced(), this.#pods.hasSynced()]),
    );
  }

  stop(): Promise<void> {
    return this.#loop.stop();
  }

  #ownerOf<T extends KubeObject>(informer: Informer<T>, obj: KubeObject, kind: string): T | undefined {
    const ref = controllerRef(obj);
    if (ref === undefined || ref.kind !== kind) return undefined;
    const owner = informer.get(obj.metadata.namespace, ref.name);
    return owner?.metadata.uid === ref.uid ? owner : undefined;
  }

  #rsChanged(old: ReplicaSet | undefined, rs: ReplicaSet): void {
    if (old !== undefined && controllerRef(old)?.uid !== controllerRef(rs)?.uid) {
      const prev = this.#ownerOf(this.#deployments, old, 'Deployment');
      if (prev !== undefined) this.#loop.queue.add(objectKeyOf(prev));
    }
    const d = this.#ownerOf(this.#deployments, rs, 'Deployment');
    if (d !== undefined) {
      this.#loop.queue.add(objectKeyOf(d));
      return;
    }
    if (controllerRef(rs) !== undefined) return;
    for (const cand of this.#deployments.byIndex(BY_NAMESPACE, rs.metadata.namespace ?? '')) {
      try {
        const sel = labelSelectorFromSpec(cand.spec?.selector);
        if (!isEverything(sel) && matchesLabels(sel, labelsOf(rs))) this.#loop.queue.add(objectKeyOf(cand));
      } catch {
        // An invalid selector selects nothing.
      }
    }
  }

  /** Reconcile one Deployment by `namespace/name`. */
  async sync(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const cached = this.#deployments.get(namespace, name);
    if (cached === undefined) return;
    const d = cloneJson(cached);
    const selector = labelSelectorFromSpec(d.spec?.selector);
    if (isEverything(selector)) {
      this.#event(
        d,
        'Warning',
        'SelectingAll',
        'This deployment is selecting all pods. A non-empty selector is required.',
      );
      if ((d.status?.observedGeneration ?? 0) < (d.metadata.generation ?? 1)) {
        await this.#writeStatus(d, { ...(d.status ?? {}), observedGeneration: d.metadata.generation ?? 1 });
      }
      return;
    }
    const rsList = await this.#claimReplicaSets(d, selector);
    if (d.metadata.deletionTimestamp !== undefined) {
      const { newRS, oldRSs } = await this.#getAll(d, rsList, false);
      await this.#syncStatus(d, [...oldRSs, newRS], newRS);
      return;
    }
    await this.#checkPausedConditions(d);
    if (d.spec?.paused === true || this.#isScalingEvent(d, rsList)) {
      await this.#syncScaling(d, rsList);
      return;
    }
    if (d.spec?.strategy?.type === 'Recreate') await this.#rolloutRecreate(d, rsList);
    else await this.#rolloutRolling(d, rsList);
  }

  async #claimReplicaSets(d: Deployment, selector: LabelSelector): Promise<ReplicaSet[]> {
    const candidates = claimCandidates(this.#sets, d);
    const claimed = await claimObjects<ReplicaSet>(
      this.#cluster,
      d,
      { apiVersion: 'apps/v1', kind: 'Deployment', resource: Resources.deployments },
      selector,
      candidates,
      Resources.replicasets,
    );
    return claimed.map((rs) => cloneJson(rs));
  }

  /** The new ReplicaSet (template equal to the Deployment's, oldest first) and the others. */
  async #getAll(
    d: Deployment,
    rsList: ReplicaSet[],
    create: boolean,
  ): Promise<{ newRS: ReplicaSet | undefined; oldRSs: ReplicaSet[] }> {
    const sorted = [...rsList].sort(byCreationThenName);
    const existing = sorted.find((rs) => templatesEqualIgnoringHash(rs.spec?.template, d.spec?.template));
    const oldRSs = rsList.filter((rs) => rs !== existing);
    const newRS = await this.#getNewReplicaSet(d, rsList, oldRSs, existing, create);
    return { newRS, oldRSs };
  }

  async #getNewReplicaSet(
    d: Deployment,
    rsList: ReplicaSet[],
    oldRSs: ReplicaSet[],
    existing: ReplicaSet | undefined,
    create: boolean,
  ): Promise<ReplicaSet | undefined> {
    const newRevision = String(Math.max(0, ...oldRSs.map(revisionOf)) + 1);
    const status: Status = cloneJson(d.status ?? {});
    if (existing !== undefined) {
      const copy = cloneJson(existing);
      const changed = this.#setNewRSAnnotations(d, copy, newRevision, true);
      const minReady = d.spec?.minReadySeconds ?? 0;
      if (changed || (copy.spec?.minReadySeconds ?? 0) !== minReady) {
        copy.spec = { ...copy.spec, minReadySeconds: minReady };
        Object.assign(existing, await this.#cluster.update<ReplicaSet>(Resources.replicasets, copy));
      }
      await this.#setDeploymentRevision(
        d,
        existing.metadata.annotations?.[REVISION_ANNOTATION] ?? newRevision,
      );
      if (hasProgressDeadline(d) && getCondition(status.conditions, 'Progressing') === undefined) {
        setCond(
          status,
          condition('Progressing', 'True', Reasons.foundNewRS, `Found new replica set "${nameOf(existing)}"`),
        );
        await this.#writeStatus(d, status);
      }
      return existing;
    }
    if (!create) return undefined;
    const collisionCount = d.status?.collisionCount;
    const hash = podTemplateHash(d.spec?.template, collisionCount);
    const template = cloneJson(d.spec?.template ?? {});
    template.metadata = {
      ...template.metadata,
      labels: { ...(template.metadata?.labels ?? {}), [POD_TEMPLATE_HASH]: hash },
    };
    const selector = cloneJson(d.spec?.selector ?? {});
    selector.matchLabels = { ...(selector.matchLabels ?? {}), [POD_TEMPLATE_HASH]: hash };
    const rs: ReplicaSet = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: `${nameOf(d)}-${hash}`,
        namespace: d.metadata.namespace ?? '',
        labels: { ...(template.metadata.labels ?? {}) },
        ownerReferences: [newControllerRef(d, 'apps/v1', 'Deployment')],
      },
      spec: { replicas: 0, minReadySeconds: d.spec?.minReadySeconds ?? 0, selector, template },
    };
    rs.spec!.replicas = newRSNewReplicas(d, [...oldRSs, rs], rs);
    this.#setNewRSAnnotations(d, rs, newRevision, false);
    let created: ReplicaSet;
    try {
      created = await this.#cluster.create<ReplicaSet>(Resources.replicasets, d.metadata.namespace, rs);
    } catch (err) {
      if (!isApiError(err, 409)) throw err;
      // Same name: ours with an equal template (the cache lags) is the new set; otherwise a hash collision.
      const other = await this.#cluster.get<ReplicaSet>(
        Resources.replicasets,
        d.metadata.namespace,
        nameOf(rs),
      );
      if (isControlledBy(other, d) && templatesEqualIgnoringHash(other.spec?.template, d.spec?.template)) {
        rsList.push(other);
        return other;
      }
      status.collisionCount = (collisionCount ?? 0) + 1;
      await this.#writeStatus(d, status);
      throw err;
    }
    rsList.push(created);
    if (rsReplicas(created) > 0) {
      this.#event(
        d,
        'Normal',
        'ScalingReplicaSet',
        `Scaled up replica set ${nameOf(created)} to ${rsReplicas(created)} from 0`,
      );
    }
    await this.#setDeploymentRevision(d, newRevision);
    if (hasProgressDeadline(d)) {
      setCond(
        status,
        condition(
          'Progressing',
          'True',
          Reasons.newRSCreated,
          `Created new replica set "${nameOf(created)}"`,
        ),
      );
      await this.#writeStatus(d, status);
    }
    return created;
  }

  /** Copy annotations, bump the revision (keeping history), set replica annotations on a new set. */
  #setNewRSAnnotations(d: Deployment, rs: ReplicaSet, newRevision: string, exists: boolean): boolean {
    const annotations = { ...(rs.metadata.annotations ?? {}) };
    let changed = false;
    for (const [k, v] of Object.entries(d.metadata.annotations ?? {})) {
      if (NOT_COPIED.has(k) || annotations[k] === v) continue;
      annotations[k] = v;
      changed = true;
    }
    const oldRevision = annotations[REVISION_ANNOTATION];
    const oldInt = oldRevision === undefined ? 0 : Number.parseInt(oldRevision, 10) || 0;
    if (oldInt < Number(newRevision)) {
      annotations[REVISION_ANNOTATION] = newRevision;
      changed = true;
      if (oldRevision !== undefined && oldRevision !== '' && exists) {
        const history = annotations[REVISION_HISTORY];
        annotations[REVISION_HISTORY] =
          history === undefined || history === '' ? oldRevision : `${history},${oldRevision}`;
      }
    }
    if (!exists) {
      annotations[DESIRED_REPLICAS] = String(replicasOf(d));
      annotations[MAX_REPLICAS] = String(replicasOf(d) + maxSurge(d));
      changed = true;
    }
    rs.metadata.annotations = annotations;
    return changed;
  }

  async #setDeploymentRevision(d: Deployment, revision: string): Promise<void> {
    if (d.metadata.annotations?.[REVISION_ANNOTATION] === revision) return;
    const updated = await this.#cluster.patch<Deployment>(
      Resources.deployments,
      d.metadata.namespace,
      nameOf(d),
      'merge',
      {
        metadata: { annotations: { [REVISION_ANNOTATION]: revision } },
      },
    );
    d.metadata.annotations = updated.metadata.annotations ?? {};
  }

  #isScalingEvent(d: Deployment, rsList: ReplicaSet[]): boolean {
    for (const rs of active(rsList)) {
      const desired = rs.metadata.annotations?.[DESIRED_REPLICAS];
      if (desired !== undefined && Number(desired) !== replicasOf(d)) return true;
    }
    return false;
  }

  /** Scale a set (and refresh its replica annotations); true when the size changed. */
  async #scaleRS(rs: ReplicaSet, replicas: number, d: Deployment): Promise<boolean> {
    const from = rsReplicas(rs);
    const desired = String(replicasOf(d));
    const max = String(replicasOf(d) + maxSurge(d));
    const annotations = rs.metadata.annotations ?? {};
    if (from === replicas && annotations[DESIRED_REPLICAS] === desired && annotations[MAX_REPLICAS] === max)
      return false;
    const copy = cloneJson(rs);
    copy.spec = { ...copy.spec, replicas };
    copy.metadata.annotations = { ...annotations, [DESIRED_REPLICAS]: desired, [MAX_REPLICAS]: max };
    Object.assign(rs, await this.#cluster.update<ReplicaSet>(Resources.replicasets, copy));
    if (from === replicas) return false;
    const op = replicas > from ? 'up' : 'down';
    this.#event(
      d,
      'Normal',
      'ScalingReplicaSet',
      `Scaled ${op} replica set ${nameOf(rs)} to ${replicas} from ${from}`,
    );
    return true;
  }

  async #rolloutRolling(d: Deployment, rsList: ReplicaSet[]): Promise<void> {
    const { newRS, oldRSs } = await this.#getAll(d, rsList, true);
    if (newRS === undefined) return;
    const allRSs = [...oldRSs, newRS];
    if (await this.#reconcileNewRS(allRSs, newRS, d)) {
      await this.#syncRolloutStatus(d, allRSs, newRS);
      return;
    }
    if (await this.#reconcileOldRSs(allRSs, active(oldRSs), newRS, d)) {
      await this.#syncRolloutStatus(d, allRSs, newRS);
      return;
    }
    if (deploymentComplete(d, d.status ?? {})) await this.#cleanup(oldRSs, d);
    await this.#syncRolloutStatus(d, allRSs, newRS);
  }

  async #reconcileNewRS(allRSs: ReplicaSet[], newRS: ReplicaSet, d: Deployment): Promise<boolean> {
    const want = replicasOf(d);
    if (rsReplicas(newRS) === want) return false;
    if (rsReplicas(newRS) > want) return this.#scaleRS(newRS, want, d);
    return this.#scaleRS(newRS, newRSNewReplicas(d, allRSs, newRS), d);
  }

  async #reconcileOldRSs(
    allRSs: ReplicaSet[],
    oldRSs: ReplicaSet[],
    newRS: ReplicaSet,
    d: Deployment,
  ): Promise<boolean> {
    if (sum(oldRSs, (rs) => rs.spec?.replicas) === 0) return false;
    const allPods = sum(allRSs, (rs) => rs.spec?.replicas);
    const minAvailable = replicasOf(d) - maxUnavailable(d);
    const newUnavailable = rsReplicas(newRS) - (newRS.status?.availableReplicas ?? 0);
    const maxScaledDown = allPods - minAvailable - newUnavailable;
    if (maxScaledDown <= 0) return false;
    // Unhealthy old replicas first: scaling them down costs no availability.
    let cleaned = 0;
    for (const rs of [...oldRSs].sort(byCreationThenName)) {
      if (cleaned >= maxScaledDown) break;
      const unhealthy = rsReplicas(rs) - (rs.status?.availableReplicas ?? 0);
      if (rsReplicas(rs) === 0 || unhealthy <= 0) continue;
      const down = Math.min(maxScaledDown - cleaned, unhealthy);
      await this.#scaleRS(rs, rsReplicas(rs) - down, d);
      cleaned += down;
    }
    // Then as far as availability allows.
    const available = sum(allRSs, (rs) => rs.status?.availableReplicas);
    let scaled = 0;
    if (available > minAvailable) {
      const total = available - minAvailable;
      for (const rs of [...oldRSs].sort(byCreationThenName)) {
        if (scaled >= total) break;
        if (rsReplicas(rs) === 0) continue;
        const down = Math.min(rsReplicas(rs), total - scaled);
        await this.#scaleRS(rs, rsReplicas(rs) - down, d);
        scaled += down;
      }
    }
    return cleaned + scaled > 0;
  }

  async #rolloutRecreate(d: Deployment, rsList: ReplicaSet[]): Promise<void> {
    let { newRS, oldRSs } = await this.#getAll(d, rsList, false);
    let scaledDown = false;
    for (const rs of active(oldRSs)) if (await this.#scaleRS(rs, 0, d)) scaledDown = true;
    if (scaledDown) {
      await this.#syncRolloutStatus(d, [...oldRSs, newRS], newRS);
      return;
    }
    const oldPodsRunning =
      sum(oldRSs, (rs) => rs.status?.replicas) > 0 ||
      oldRSs.some((rs) => this.#pods.byIndex(BY_CONTROLLER, rs.metadata.uid ?? '').some(isPodActive));
    if (oldPodsRunning) {
      await this.#syncRolloutStatus(d, [...oldRSs, newRS], newRS);
      return;
    }
    if (newRS === undefined) ({ newRS, oldRSs } = await this.#getAll(d, rsList, true));
    if (newRS === undefined) return;
    await this.#scaleRS(newRS, replicasOf(d), d);
    if (deploymentComplete(d, d.status ?? {})) await this.#cleanup(oldRSs, d);
    await this.#syncRolloutStatus(d, [...oldRSs, newRS], newRS);
  }

  /** Paused deployments and scaling events: resize proportionally, no rollout (sync in Kubernetes). */
  async #syncScaling(d: Deployment, rsList: ReplicaSet[]): Promise<void> {
    const { newRS, oldRSs } = await this.#getAll(d, rsList, false);
    await this.#scale(d, newRS, oldRSs);
    if (d.spec?.paused === true) await this.#cleanup(oldRSs, d);
    await this.#syncStatus(d, [...oldRSs, newRS], newRS);
  }

  async #scale(d: Deployment, newRS: ReplicaSet | undefined, oldRSs: ReplicaSet[]): Promise<void> {
    const all = newRS === undefined ? oldRSs : [newRS, ...oldRSs];
    const act = active(all);
    const single =
      act.length === 1
        ? act[0]
        : act.length === 0
          ? (newRS ?? [...oldRSs].sort(byCreationThenName).at(-1))
          : undefined;
    if (act.length <= 1) {
      if (single !== undefined && rsReplicas(single) !== replicasOf(d))
        await this.#scaleRS(single, replicasOf(d), d);
      return;
    }
    const saturated =
      newRS !== undefined &&
      rsReplicas(newRS) === replicasOf(d) &&
      newRS.metadata.annotations?.[DESIRED_REPLICAS] === String(replicasOf(d)) &&
      (newRS.status?.availableReplicas ?? 0) === replicasOf(d);
    if (saturated) {
      for (const rs of active(oldRSs)) await this.#scaleRS(rs, 0, d);
      return;
    }
    if (!isRollingUpdate(d)) return;
    const allowed = replicasOf(d) > 0 ? replicasOf(d) + maxSurge(d) : 0;
    const toAdd = allowed - sum(act, (rs) => rs.spec?.replicas);
    // Larger sets first; on ties newer first when growing, older first when shrinking.
    const sorted = [...act].sort((a, b) => {
      if (rsReplicas(a) !== rsReplicas(b)) return rsReplicas(b) - rsReplicas(a);
      return toAdd > 0 ? byCreationThenName(b, a) : byCreationThenName(a, b);
    });
    const targets = new Map<ReplicaSet, number>();
    let added = 0;
    if (toAdd !== 0) {
      for (const rs of sorted) {
        const proportion = this.#proportion(rs, d, toAdd, added);
        targets.set(rs, rsReplicas(rs) + proportion);
        added += proportion;
      }
    }
    const first = sorted[0];
    if (first !== undefined && toAdd !== added) {
      targets.set(first, Math.max(0, (targets.get(first) ?? rsReplicas(first)) + toAdd - added));
    }
    for (const rs of sorted) await this.#scaleRS(rs, targets.get(rs) ?? rsReplicas(rs), d);
  }

  #proportion(rs: ReplicaSet, d: Deployment, toAdd: number, added: number): number {
    if (rsReplicas(rs) === 0 || toAdd === 0 || toAdd === added) return 0;
    let fraction: number;
    if (replicasOf(d) === 0) fraction = -rsReplicas(rs);
    else {
      const total = replicasOf(d) + maxSurge(d);
      const annotated = Number(rs.metadata.annotations?.[MAX_REPLICAS] ?? Number.NaN);
      const base = Number.isNaN(annotated) || annotated === 0 ? (d.status?.replicas ?? 0) : annotated;
      fraction = base === 0 ? 0 : Math.round((rsReplicas(rs) * total) / base) - rsReplicas(rs);
    }
    const allowed = toAdd - added;
    return toAdd > 0 ? Math.min(fraction, allowed) : Math.max(fraction, allowed);
  }

  /** Delete old sets scaled to zero beyond revisionHistoryLimit, oldest revision first. */
  async #cleanup(oldRSs: ReplicaSet[], d: Deployment): Promise<void> {
    const limit = d.spec?.revisionHistoryLimit;
    if (limit === undefined) return;
    const alive = oldRSs.filter((rs) => rs.metadata.deletionTimestamp === undefined);
    const diff = alive.length - limit;
    if (diff <= 0) return;
    const byRevision = [...alive].sort((a, b) => revisionOf(a) - revisionOf(b) || byCreationThenName(a, b));
    for (const rs of byRevision.slice(0, diff)) {
      if (
        (rs.status?.replicas ?? 0) !== 0 ||
        rsReplicas(rs) !== 0 ||
        (rs.metadata.generation ?? 1) > (rs.status?.observedGeneration ?? 0)
      )
        continue;
      try {
        await this.#cluster.delete(Resources.replicasets, rs.metadata.namespace, nameOf(rs), {
          preconditions: { uid: rs.metadata.uid ?? '' },
        });
      } catch (err) {
        ignoreNotFound(err);
      }
    }
  }

  #calculateStatus(
    d: Deployment,
    allRSs: readonly (ReplicaSet | undefined)[],
    newRS: ReplicaSet | undefined,
  ): Status {
    const available = sum(allRSs, (rs) => rs.status?.availableReplicas);
    const total = sum(allRSs, (rs) => rs.status?.replicas);
    const status: Status = {
      observedGeneration: d.metadata.generation ?? 1,
      replicas: total,
      updatedReplicas: newRS?.status?.replicas ?? 0,
      readyReplicas: sum(allRSs, (rs) => rs.status?.readyReplicas),
      availableReplicas: available,
      unavailableReplicas: Math.max(0, total - available),
    };
    if (d.status?.collisionCount !== undefined) status.collisionCount = d.status.collisionCount;
    status.conditions = cloneJson(d.status?.conditions ?? []);
    if (available >= replicasOf(d) - maxUnavailable(d)) {
      setCond(
        status,
        condition('Available', 'True', Reasons.minimumAvailable, 'Deployment has minimum availability.'),
      );
    } else {
      setCond(
        status,
        condition(
          'Available',
          'False',
          Reasons.minimumUnavailable,
          'Deployment does not have minimum availability.',
        ),
      );
    }
    return status;
  }

  async #syncStatus(
    d: Deployment,
    allRSs: (ReplicaSet | undefined)[],
    newRS: ReplicaSet | undefined,
  ): Promise<void> {
    await this.#writeStatus(d, this.#calculateStatus(d, allRSs, newRS));
  }

  async #syncRolloutStatus(
    d: Deployment,
    allRSs: (ReplicaSet | undefined)[],
    newRS: ReplicaSet | undefined,
  ): Promise<void> {
    const status = this.#calculateStatus(d, allRSs, newRS);
    if (!hasProgressDeadline(d)) removeCond(status, 'Progressing');
    const cur = getCondition(status.conditions, 'Progressing');
    const complete =
      status.replicas === status.updatedReplicas &&
      cur !== undefined &&
      cur.reason === Reasons.newRSAvailable;
    if (hasProgressDeadline(d) && !complete) {
      const rsName = newRS === undefined ? undefined : nameOf(newRS);
      if (deploymentComplete(d, status)) {
        const msg =
          rsName === undefined
            ? `Deployment "${nameOf(d)}" has successfully progressed.`
            : `ReplicaSet "${rsName}" has successfully progressed.`;
        setCond(status, condition('Progressing', 'True', Reasons.newRSAvailable, msg));
      } else if (deploymentProgressing(d, status)) {
        const msg =
          rsName === undefined
            ? `Deployment "${nameOf(d)}" is progressing.`
            : `ReplicaSet "${rsName}" is progressing.`;
        const next = condition('Progressing', 'True', Reasons.rsUpdated, msg);
        if (cur?.status === 'True' && cur.lastTransitionTime !== undefined)
          next.lastTransitionTime = cur.lastTransitionTime;
        // Progress refreshes lastUpdateTime even when nothing else changes: the deadline counts from it.
        status.conditions = [...(status.conditions ?? []).filter((c) => c.type !== 'Progressing'), next];
      } else if (this.#timedOut(d, cur)) {
        const msg =
          rsName === undefined
            ? `Deployment "${nameOf(d)}" has timed out progressing.`
            : `ReplicaSet "${rsName}" has timed out progressing.`;
        setCond(status, condition('Progressing', 'False', Reasons.timedOut, msg));
      }
    }
    await this.#writeStatus(d, status);
    // Come back when the deadline would pass, if nothing else happens first.
    const after = getCondition(status.conditions, 'Progressing');
    if (
      hasProgressDeadline(d) &&
      after !== undefined &&
      after.status === 'True' &&
      after.reason !== Reasons.newRSAvailable &&
      !deploymentComplete(d, status)
    ) {
      const deadline =
        Date.parse(after.lastUpdateTime ?? '') + (d.spec?.progressDeadlineSeconds ?? 600) * 1000;
      if (!Number.isNaN(deadline))
        this.#loop.queue.addAfter(objectKeyOf(d), Math.max(0, deadline - Date.now()) + 1000);
    }
  }

  #timedOut(d: Deployment, cur: WorkloadCondition | undefined): boolean {
    if (cur === undefined || cur.reason === Reasons.newRSAvailable) return false;
    if (cur.reason === Reasons.timedOut) return true;
    const from = Date.parse(cur.lastUpdateTime ?? '');
    return !Number.isNaN(from) && from + (d.spec?.progressDeadlineSeconds ?? 600) * 1000 < Date.now();
  }

  async #checkPausedConditions(d: Deployment): Promise<void> {
    if (!hasProgressDeadline(d)) return;
    const cur = getCondition(d.status?.conditions, 'Progressing');
    if (cur?.reason === Reasons.timedOut) return;
    const pausedCond = cur?.reason === Reasons.paused;
    const status: Status = cloneJson(d.status ?? {});
    if (d.spec?.paused === true && !pausedCond) {
      setCond(status, condition('Progressing', 'Unknown', Reasons.paused, 'Deployment is paused'));
    } else if (d.spec?.paused !== true && pausedCond) {
      setCond(status, condition('Progressing', 'Unknown', Reasons.resumed, 'Deployment is resumed'));
    } else return;
    await this.#writeStatus(d, status);
  }

  /** Write the status when it changed; `d.status` follows, so later steps compare with what is stored. */
  async #writeStatus(d: Deployment, status: Status): Promise<void> {
    if (JSON.stringify(status) === JSON.stringify(d.status ?? {})) return;
    try {
      const patch = {
        status: {
          ...status,
          conditions: status.conditions ?? null,
          collisionCount: status.collisionCount ?? null,
        },
      };
      const updated = await this.#cluster.patch<Deployment>(
        Resources.deployments,
        d.metadata.namespace,
        nameOf(d),
        'merge',
        patch,
        { subresource: 'status' },
      );
      d.status = updated.status ?? {};
    } catch (err) {
      ignoreNotFound(err);
    }
  }

  #event(d: Deployment, type: 'Normal' | 'Warning', reason: string, message: string): void {
    void recordEvent(
      this.#cluster,
      { involvedObject: objectReference(d), type, reason, message, component: COMPONENT },
      { logger: this.#log },
    );
  }
}
