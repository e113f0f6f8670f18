/**
 * The DaemonSet controller: one pod per eligible node (nodeSelector, required node affinity, taints
 * and tolerations), RollingUpdate (maxUnavailable, maxSurge) and OnDelete, ControllerRevisions for
 * history (`kubectl rollout history/undo ds`), and the status `kubectl rollout status ds` reads.
 *
 * Placement: the controller binds each pod itself by setting spec.nodeName, and also writes the
 * node affinity (matchFields metadata.name) and the standard daemon tolerations Kubernetes adds. Binding
 * directly keeps DaemonSets working when no scheduler runs or the scheduler is down, which matters at the
 * edge (agents, device plugins and log shippers are DaemonSets that must land on every node), and saves
 * one write per pod. The cost: the scheduler's resource-fit check is skipped; the node's agent is the one
 * to refuse a pod that does not fit.
 */
import { cloneJson, isPlainObject, type KubeObject } from '../../api/meta.ts';
import { labelSelectorFromSpec } from '../../api/selectors.ts';
import { isApiError } from '../../api/status-error.ts';
import { type Informer, type InformerFactory, objectKeyOf, splitKey } from '../../client/informer.ts';
import { type Cluster, Resources } from '../../client/types.ts';
import type { Logger } from '../../lib/log.ts';
import { objectReference, recordEvent } from '../events.ts';
import {
  addWorkloadIndexes,
  BY_CONTROLLER,
  byCreationThenName,
  CONTROLLER_REVISION_HASH,
  type ControllerRevision,
  canonicalJson,
  claimCandidates,
  controllerRef,
  type DaemonSet,
  Expectations,
  errorMessage,
  fnv32a,
  ignoreNotFound,
  isPodAvailable,
  isPodReady,
  type Node,
  nameOf,
  newControllerRef,
  nextAvailabilityCheck,
  type Pod,
  podChangeMatters,
  safeEncode,
  scaledValue,
  slowStartBatch,
  type Taint,
} from './common.ts';
import { ControllerLoop } from './loop.ts';
import { claimObjects, podFromTemplate } from './pods.ts';

const COMPONENT = 'daemonset-controller';
const BURST = 250;
const TEMPLATE_GENERATION = 'pod-template-generation';

interface Toleration {
  key?: string;
  operator?: string;
  value?: string;
  effect?: string;
  tolerationSeconds?: number;
}

interface SelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

interface NodeSelectorTerm {
  matchExpressions?: SelectorRequirement[];
  matchFields?: SelectorRequirement[];
}

/** The tolerations Kubernetes adds to every daemon pod, so node conditions do not evict or block it. */
export function daemonTolerations(hostNetwork: boolean): Toleration[] {
  const t: Toleration[] = [
    { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
    { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
    { key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' },
  ];
  if (hostNetwork)
    t.push({ key: 'node.kubernetes.io/network-unavailable', operator: 'Exists', effect: 'NoSchedule' });
  return t;
}

function addTolerations(spec: Record<string, unknown>): void {
  const existing = Array.isArray(spec['tolerations']) ? (spec['tolerations'] as Toleration[]) : [];
  const out = [...existing];
  for (const t of daemonTolerations(spec['hostNetwork'] === true)) {
    const i = out.findIndex((o) => o.key === t.key && o.effect === t.effect);
    if (i < 0) out.push(t);
    else out[i] = t;
  }
  spec['tolerations'] = out;
}

function tolerates(t: Toleration, taint: Taint): boolean {
  if (t.effect !== undefined && t.effect !== '' && t.effect !== taint.effect) return false;
  if (t.key !== undefined && t.key !== '' && t.key !== taint.key) return false;
  if (t.operator === 'Exists') return true;
  return (t.value ?? '') === (taint.value ?? '');
}

function requirementMatches(r: SelectorRequirement, values: Record<string, string>): boolean {
  const v = values[r.key];
  const want = r.values ?? [];
  switch (r.operator) {
    case 'In':
      return v !== undefined && want.includes(v);
    case 'NotIn':
      return v === undefined || !want.includes(v);
    case 'Exists':
      return v !== undefined;
    case 'DoesNotExist':
      return v === undefined;
    case 'Gt':
    case 'Lt': {
      if (v === undefined || !/^-?\d+$/.test(v) || want.length !== 1 || !/^-?\d+$/.test(want[0] ?? ''))
        return false;
      return r.operator === 'Gt' ? BigInt(v) > BigInt(want[0]!) : BigInt(v) < BigInt(want[0]!);
    }
    default:
      return false;
  }
}

function termMatches(term: NodeSelectorTerm, node: Node): boolean {
  const exprs = term.matchExpressions ?? [];
  const fields = term.matchFields ?? [];
  if (exprs.length === 0 && fields.length === 0) return false;
  const labels = node.metadata.labels ?? {};
  return (
    exprs.every((r) => requirementMatches(r, labels)) &&
    fields.every((r) => requirementMatches(r, { 'metadata.name': nameOf(node) }))
  );
}

function requiredTerms(spec: Record<string, unknown>): NodeSelectorTerm[] | undefined {
  const affinity = spec['affinity'];
  if (!isPlainObject(affinity) || !isPlainObject(affinity['nodeAffinity'])) return undefined;
  const req = affinity['nodeAffinity']['requiredDuringSchedulingIgnoredDuringExecution'];
  if (!isPlainObject(req) || !Array.isArray(req['nodeSelectorTerms'])) return undefined;
  return req['nodeSelectorTerms'] as NodeSelectorTerm[];
}

/**
 * Whether a daemon pod should run on the node (shouldRun), and whether one already there may stay
 * (shouldContinueRunning: only NoExecute taints evict), like NodeShouldRunDaemonPod.
 */
export function nodeShouldRunDaemonPod(
  node: Node,
  ds: DaemonSet,
): { shouldRun: boolean; shouldContinueRunning: boolean } {
  const spec = cloneJson(ds.spec?.template?.spec ?? {});
  const no = { shouldRun: false, shouldContinueRunning: false };
  const nodeName = spec['nodeName'];
  if (typeof nodeName === 'string' && nodeName !== '' && nodeName !== nameOf(node)) return no;
  const nodeSelector = isPlainObject(spec['nodeSelector'])
    ? (spec['nodeSelector'] as Record<string, string>)
    : {};
  const labels = node.metadata.labels ?? {};
  if (!Object.entries(nodeSelector).every(([k, v]) => labels[k] === v)) return no;
  const terms = requiredTerms(spec);
  if (terms !== undefined && !terms.some((t) => termMatches(t, node))) return no;
  addTolerations(spec);
  const tolerations = spec['tolerations'] as Toleration[];
  const untolerated = (effects: readonly string[]): boolean =>
    (node.spec?.taints ?? []).some(
      (taint) => effects.includes(taint.effect) && !tolerations.some((t) => tolerates(t, taint)),
    );
  if (untolerated(['NoSchedule', 'NoExecute']))
    return { shouldRun: false, shouldContinueRunning: !untolerated(['NoExecute']) };
  return { shouldRun: true, shouldContinueRunning: true };
}

/** Require the target node by name, keeping the template's other affinity (ReplaceDaemonSetPodNodeNameNodeAffinity). */
function pinToNode(spec: Record<string, unknown>, nodeName: string): void {
  const affinity = isPlainObject(spec['affinity']) ? spec['affinity'] : {};
  const nodeAffinity = isPlainObject(affinity['nodeAffinity']) ? affinity['nodeAffinity'] : {};
  nodeAffinity['requiredDuringSchedulingIgnoredDuringExecution'] = {
    nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [nodeName] }] }],
  };
  affinity['nodeAffinity'] = nodeAffinity;
  spec['affinity'] = affinity;
  spec['nodeName'] = nodeName;
}

/** The ControllerRevision data of a DaemonSet: its template as a strategic merge patch. */
export function revisionData(ds: DaemonSet): Record<string, unknown> {
  return { spec: { template: { ...cloneJson(ds.spec?.template ?? {}), $patch: 'replace' } } };
}

export function revisionHash(ds: DaemonSet, collisionCount?: number): string {
  const text = canonicalJson(revisionData(ds));
  return safeEncode(String(fnv32a(collisionCount === undefined ? text : `${text}#${collisionCount}`)));
}

function templateNodeName(pod: Pod): string {
  const n = pod.spec?.nodeName;
  if (n !== undefined && n !== '') return n;
  const terms = requiredTerms(pod.spec ?? {}) ?? [];
  for (const t of terms) {
    for (const f of t.matchFields ?? []) {
      if (f.key === 'metadata.name' && f.operator === 'In' && f.values?.length === 1)
        return f.values[0] ?? '';
    }
  }
  return '';
}

export interface DaemonSetControllerOptions {
  readonly cluster: Cluster;
  readonly informers: InformerFactory;
  readonly logger: Logger;
}

export class DaemonSetController {
  readonly #cluster: Cluster;
  readonly #log: Logger;
  readonly #sets: Informer<DaemonSet>;
  readonly #pods: Informer<Pod>;
  readonly #nodes: Informer<Node>;
  readonly #revisions: Informer<ControllerRevision>;
  readonly #expectations = new Expectations();
  readonly #loop: ControllerLoop;

  constructor(options: DaemonSetControllerOptions) {
    this.#cluster = options.cluster;
    this.#log = options.logger.child({ component: COMPONENT });
    this.#sets = options.informers.informer<DaemonSet>(Resources.daemonsets);
    this.#pods = options.informers.informer<Pod>(Resources.pods);
    this.#nodes = options.informers.informer<Node>(Resources.nodes);
    this.#revisions = options.informers.informer<ControllerRevision>(Resources.controllerrevisions);
    addWorkloadIndexes(this.#sets);
    addWorkloadIndexes(this.#pods);
    addWorkloadIndexes(this.#revisions);
    this.#loop = new ControllerLoop(this.#log, (key) => this.sync(key));
    const enqueue = (ds: KubeObject): void => this.#loop.queue.add(objectKeyOf(ds));
    const enqueueAll = (): void => {
      for (const ds of this.#sets.list()) enqueue(ds);
    };
    // At once when the set may act; while it waits for its own creates/deletes, one batched sync.
    const enqueueForPod = (ds: KubeObject): void => {
      const key = objectKeyOf(ds);
      if (this.#expectations.satisfied(key)) this.#loop.queue.add(key);
      else this.#loop.addBatched(key);
    };
    this.#sets.onAdd(enqueue);
    this.#sets.onUpdate((_, ds) => enqueue(ds));
    this.#sets.onDelete((ds) => {
      this.#expectations.forget(objectKeyOf(ds));
      enqueue(ds);
    });
    this.#pods.onAdd((pod) => {
      const ds = this.#owner(pod);
      if (ds === undefined) return;
      if (pod.metadata.deletionTimestamp === undefined) this.#expectations.creationObserved(objectKeyOf(ds));
      else this.#expectations.deletionObserved(objectKeyOf(ds), objectKeyOf(pod));
      enqueueForPod(ds);
    });
    this.#pods.onUpdate((old, pod) => {
      // Status churn that moves no count (readiness, phase, node, labels, owner, deletion) is ignored.
      if (!podChangeMatters(old, pod, true)) return;
      const ds = this.#owner(pod) ?? this.#owner(old);
      if (ds === undefined) return;
      if (pod.metadata.deletionTimestamp !== undefined) {
        this.#expectations.deletionObserved(objectKeyOf(ds), objectKeyOf(pod));
        enqueueForPod(ds);
      } else this.#loop.addBatched(objectKeyOf(ds));
    });
    this.#pods.onDelete((pod) => {
      const ds = this.#owner(pod);
      if (ds === undefined) return;
      this.#expectations.deletionObserved(objectKeyOf(ds), objectKeyOf(pod));
      enqueueForPod(ds);
    });
    this.#nodes.onAdd(enqueueAll);
    this.#nodes.onUpdate((old, node) => {
      const relevant = (n: Node): string =>
        JSON.stringify([n.metadata.labels ?? {}, n.spec?.taints ?? [], n.spec?.unschedulable ?? false]);
      if (relevant(old) !== relevant(node)) enqueueAll();
    });
    this.#nodes.onDelete(enqueueAll);
  }

  start(workers = 2): void {
    this.#loop.start(
      workers,
      Promise.all([
        this.#sets.hasSynced(),
        this.#pods.hasSynced(),
        this.#nodes.hasSynced(),
        this.#revisions.hasSynced(),
      ]),
    );
  }

  stop(): Promise<void> {
    return this.#loop.stop();
  }

  #owner(pod: Pod): DaemonSet | undefined {
    const ref = controllerRef(pod);
    if (ref === undefined || ref.kind !== 'DaemonSet') return undefined;
    const ds = this.#sets.get(pod.metadata.namespace, ref.name);
    return ds?.metadata.uid === ref.uid ? ds : undefined;
  }

  /** Reconcile one DaemonSet by `namespace/name`. */
  async sync(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const cached = this.#sets.get(namespace, name);
    if (cached === undefined) {
      this.#expectations.forget(key);
      return;
    }
    const ds = cloneJson(cached);
    if (ds.metadata.deletionTimestamp !== undefined) return;
    const nodes = this.#nodes.list();
    const { current, old } = await this.#constructHistory(ds);
    const hash = current.metadata.labels?.[CONTROLLER_REVISION_HASH] ?? '';
    const nodeToPods = await this.#nodeToDaemonPods(ds);
    if (this.#expectations.satisfied(key)) {
      await this.#manage(key, ds, nodes, nodeToPods, hash);
      if (this.#expectations.satisfied(key) && ds.spec?.updateStrategy?.type !== 'OnDelete') {
        await this.#rollingUpdate(key, ds, nodes, await this.#nodeToDaemonPods(ds), hash);
      }
      await this.#cleanupHistory(ds, old, hash);
    }
    await this.#updateStatus(ds, nodes, this.#podsByNode(ds), hash);
  }

  async #nodeToDaemonPods(ds: DaemonSet): Promise<Map<string, Pod[]>> {
    const candidates = claimCandidates(this.#pods, ds);
    const claimed = await claimObjects(
      this.#cluster,
      ds,
      { apiVersion: 'apps/v1', kind: 'DaemonSet', resource: Resources.daemonsets },
      labelSelectorFromSpec(ds.spec?.selector),
      candidates,
    );
    return groupByNode(claimed);
  }

  #podsByNode(ds: DaemonSet): Map<string, Pod[]> {
    return groupByNode(this.#pods.byIndex(BY_CONTROLLER, ds.metadata.uid ?? ''));
  }

  async #constructHistory(
    ds: DaemonSet,
  ): Promise<{ current: ControllerRevision; old: ControllerRevision[] }> {
    const histories = this.#revisions.byIndex(BY_CONTROLLER, ds.metadata.uid ?? '').map((h) => cloneJson(h));
    const want = canonicalJson(revisionData(ds));
    const matching = histories.filter((h) => canonicalJson(h.data) === want);
    const old = histories.filter((h) => canonicalJson(h.data) !== want);
    const nextRevision = Math.max(0, ...old.map((h) => h.revision ?? 0)) + 1;
    if (matching.length === 0) {
      return { current: await this.#createRevision(ds, nextRevision), old };
    }
    // Keep the newest of equal revisions; the others are duplicates.
    matching.sort((a, b) => (b.revision ?? 0) - (a.revision ?? 0));
    const current = matching[0]!;
    for (const dup of matching.slice(1)) {
      try {
        await this.#cluster.delete(Resources.controllerrevisions, dup.metadata.namespace, nameOf(dup));
      } catch (err) {
        ignoreNotFound(err);
      }
    }
    if ((current.revision ?? 0) < nextRevision) {
      // The template came back (kubectl rollout undo): its revision becomes the newest.
      const updated = await this.#cluster.update<ControllerRevision>(Resources.controllerrevisions, {
        ...current,
        revision: nextRevision,
      });
      return { current: updated, old };
    }
    return { current, old };
  }

  async #createRevision(ds: DaemonSet, revision: number): Promise<ControllerRevision> {
    const collisionCount = ds.status?.collisionCount;
    const hash = revisionHash(ds, collisionCount);
    const cr: ControllerRevision = {
      apiVersion: 'apps/v1',
      kind: 'ControllerRevision',
      metadata: {
        name: `${nameOf(ds)}-${hash}`,
        namespace: ds.metadata.namespace ?? '',
        labels: { ...(ds.spec?.template?.metadata?.labels ?? {}), [CONTROLLER_REVISION_HASH]: hash },
        ownerReferences: [newControllerRef(ds, 'apps/v1', 'DaemonSet')],
      },
      data: revisionData(ds),
      revision,
    };
    try {
      return await this.#cluster.create<ControllerRevision>(
        Resources.controllerrevisions,
        ds.metadata.namespace,
        cr,
      );
    } catch (err) {
      if (!isApiError(err, 409)) throw err;
      const other = await this.#cluster.get<ControllerRevision>(
        Resources.controllerrevisions,
        ds.metadata.namespace,
        nameOf(cr),
      );
      if (
        controllerRef(other)?.uid === ds.metadata.uid &&
        canonicalJson(other.data) === canonicalJson(cr.data)
      )
        return other;
      await this.#patchStatus(ds, { collisionCount: (collisionCount ?? 0) + 1 });
      throw err;
    }
  }

  async #cleanupHistory(ds: DaemonSet, old: ControllerRevision[], hash: string): Promise<void> {
    const limit = ds.spec?.revisionHistoryLimit ?? 10;
    if (old.length <= limit) return;
    const live = new Set<string>();
    for (const pod of this.#pods.byIndex(BY_CONTROLLER, ds.metadata.uid ?? '')) {
      const h = pod.metadata.labels?.[CONTROLLER_REVISION_HASH];
      if (h !== undefined) live.add(h);
    }
    live.add(hash);
    const removable = old
      .filter((h) => !live.has(h.metadata.labels?.[CONTROLLER_REVISION_HASH] ?? ''))
      .sort((a, b) => (a.revision ?? 0) - (b.revision ?? 0));
    for (const h of removable.slice(0, old.length - limit)) {
      try {
        await this.#cluster.delete(Resources.controllerrevisions, h.metadata.namespace, nameOf(h));
      } catch (err) {
        ignoreNotFound(err);
      }
    }
  }

  async #manage(
    key: string,
    ds: DaemonSet,
    nodes: Node[],
    nodeToPods: Map<string, Pod[]>,
    hash: string,
  ): Promise<void> {
    const surging = this.#maxSurge(ds, nodes) > 0;
    const needPods: string[] = [];
    const toDelete: Pod[] = [];
    const known = new Set<string>();
    for (const node of nodes) {
      known.add(nameOf(node));
      const { shouldRun, shouldContinueRunning } = nodeShouldRunDaemonPod(node, ds);
      const pods = (nodeToPods.get(nameOf(node)) ?? []).filter(
        (p) => p.metadata.deletionTimestamp === undefined,
      );
      if (shouldRun && pods.length === 0) {
        needPods.push(nameOf(node));
        continue;
      }
      if (!shouldContinueRunning) {
        toDelete.push(...pods);
        continue;
      }
      const running: Pod[] = [];
      for (const pod of pods) {
        if (pod.status?.phase === 'Failed') {
          this.#event(
            ds,
            'Warning',
            'FailedDaemonPod',
            `Found failed daemon pod ${objectKeyOf(pod)} on node ${nameOf(node)}, will try to kill it`,
          );
          toDelete.push(pod);
        } else running.push(pod);
      }
      running.sort(byCreationThenName);
      if (!surging) toDelete.push(...running.slice(1));
      else {
        // While surging one old and one updated pod may share a node; extras of either go.
        const updated = running.filter((p) => p.metadata.labels?.[CONTROLLER_REVISION_HASH] === hash);
        const outdated = running.filter((p) => p.metadata.labels?.[CONTROLLER_REVISION_HASH] !== hash);
        toDelete.push(...updated.slice(1), ...outdated.slice(1));
      }
      if (running.length === 0 && shouldRun) needPods.push(nameOf(node));
    }
    // Pods on nodes that no longer exist.
    for (const [nodeName, pods] of nodeToPods) {
      if (!known.has(nodeName))
        toDelete.push(...pods.filter((p) => p.metadata.deletionTimestamp === undefined));
    }
    await this.#syncNodes(key, ds, toDelete, needPods, hash);
  }

  async #syncNodes(
    key: string,
    ds: DaemonSet,
    toDelete: Pod[],
    needPods: string[],
    hash: string,
  ): Promise<void> {
    const creates = needPods.slice(0, BURST);
    const deletes = toDelete.slice(0, BURST);
    if (creates.length === 0 && deletes.length === 0) return;
    this.#expectations.expect(key, creates.length, deletes.map(objectKeyOf));
    const ref = newControllerRef(ds, 'apps/v1', 'DaemonSet');
    const generation = String(ds.metadata.generation ?? 1);
    const { successes, error } = await slowStartBatch(creates.length, 1, async (i) => {
      const nodeName = creates[i] ?? '';
      const pod = podFromTemplate(ds.spec?.template, ds, ref, {
        [CONTROLLER_REVISION_HASH]: hash,
        [TEMPLATE_GENERATION]: generation,
      });
      const spec = pod.spec ?? {};
      addTolerations(spec);
      pinToNode(spec, nodeName);
      pod.spec = spec;
      const created = await this.#cluster.create<Pod>(Resources.pods, ds.metadata.namespace, pod);
      this.#event(ds, 'Normal', 'SuccessfulCreate', `Created pod: ${nameOf(created)}`);
    });
    if (error !== undefined) {
      this.#expectations.lowerCreations(key, creates.length - successes);
      this.#event(ds, 'Warning', 'FailedCreate', `Error creating: ${errorMessage(error)}`);
    }
    const results = await Promise.allSettled(
      deletes.map(async (pod) => {
        try {
          await this.#cluster.delete(Resources.pods, pod.metadata.namespace, nameOf(pod), {
            preconditions: { uid: pod.metadata.uid ?? '' },
          });
          this.#event(ds, 'Normal', 'SuccessfulDelete', `Deleted pod: ${nameOf(pod)}`);
        } catch (err) {
          this.#expectations.deletionObserved(key, objectKeyOf(pod));
          if (!isApiError(err, 409)) ignoreNotFound(err);
        }
      }),
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      this.#event(
        ds,
        'Warning',
        'FailedDelete',
        `Error deleting: ${errorMessage((failed as PromiseRejectedResult).reason)}`,
      );
      throw (failed as PromiseRejectedResult).reason;
    }
    if (error !== undefined) throw error;
  }

  #desired(ds: DaemonSet, nodes: Node[]): number {
    return nodes.filter((n) => nodeShouldRunDaemonPod(n, ds).shouldRun).length;
  }

  #maxSurge(ds: DaemonSet, nodes: Node[]): number {
    if ((ds.spec?.updateStrategy?.type ?? 'RollingUpdate') !== 'RollingUpdate') return 0;
    return scaledValue(ds.spec?.updateStrategy?.rollingUpdate?.maxSurge ?? 0, this.#desired(ds, nodes), true);
  }

  async #rollingUpdate(
    key: string,
    ds: DaemonSet,
    nodes: Node[],
    nodeToPods: Map<string, Pod[]>,
    hash: string,
  ): Promise<void> {
    const desired = this.#desired(ds, nodes);
    const ru = ds.spec?.updateStrategy?.rollingUpdate;
    let maxUnavailable = scaledValue(ru?.maxUnavailable ?? 1, desired, true);
    const maxSurge = scaledValue(ru?.maxSurge ?? 0, desired, true);
    if (maxUnavailable === 0 && maxSurge === 0) maxUnavailable = 1;
    const minReady = ds.spec?.minReadySeconds ?? 0;
    const now = Date.now();
    const byName = new Map(nodes.map((n) => [nameOf(n), n]));
    if (maxSurge === 0) {
      let unavailable = 0;
      const replace: Pod[] = [];
      const candidates: Pod[] = [];
      for (const [nodeName, pods] of nodeToPods) {
        const node = byName.get(nodeName);
        if (node === undefined || !nodeShouldRunDaemonPod(node, ds).shouldRun) continue;
        const found = updatedAndOld(pods, hash);
        if (found === undefined) {
          unavailable++;
          continue;
        }
        const { updated, old } = found;
        if ((updated === undefined && old === undefined) || (updated !== undefined && old !== undefined))
          unavailable++;
        else if (updated !== undefined) {
          if (!isPodAvailable(updated, minReady, now)) unavailable++;
        } else if (old !== undefined) {
          if (!isPodAvailable(old, minReady, now)) replace.push(old);
          else if (unavailable < maxUnavailable) candidates.push(old);
        }
      }
      const room = Math.max(0, Math.min(maxUnavailable - unavailable, candidates.length));
      await this.#syncNodes(key, ds, [...replace, ...candidates.slice(0, room)], [], hash);
      return;
    }
    // Surge: start the new pod next to the old one, delete the old one when the new one is available.
    let surging = 0;
    const toDelete: Pod[] = [];
    const replaceNodes: string[] = [];
    const candidateNodes: string[] = [];
    for (const [nodeName, pods] of nodeToPods) {
      const node = byName.get(nodeName);
      const found = updatedAndOld(pods, hash);
      if (node === undefined || found === undefined) continue;
      const { updated, old } = found;
      if (!nodeShouldRunDaemonPod(node, ds).shouldRun) {
        toDelete.push(...[updated, old].filter((p): p is Pod => p !== undefined));
        continue;
      }
      if (old === undefined) continue;
      if (updated === undefined) {
        if (!isPodAvailable(old, minReady, now)) replaceNodes.push(nodeName);
        else candidateNodes.push(nodeName);
      } else if (!isPodAvailable(updated, minReady, now)) surging++;
      else toDelete.push(old);
    }
    const room = Math.max(0, Math.min(maxSurge - surging, candidateNodes.length));
    await this.#syncNodes(key, ds, toDelete, [...replaceNodes, ...candidateNodes.slice(0, room)], hash);
  }

  async #updateStatus(
    ds: DaemonSet,
    nodes: Node[],
    nodeToPods: Map<string, Pod[]>,
    hash: string,
  ): Promise<void> {
    const now = Date.now();
    const minReady = ds.spec?.minReadySeconds ?? 0;
    let desired = 0;
    let current = 0;
    let misscheduled = 0;
    let ready = 0;
    let available = 0;
    let updated = 0;
    const counted: Pod[] = [];
    for (const node of nodes) {
      const { shouldRun } = nodeShouldRunDaemonPod(node, ds);
      const pods = (nodeToPods.get(nameOf(node)) ?? []).filter(
        (p) => p.metadata.deletionTimestamp === undefined,
      );
      if (shouldRun) desired++;
      if (pods.length === 0) continue;
      if (!shouldRun) {
        misscheduled++;
        continue;
      }
      current++;
      pods.sort(byCreationThenName);
      const pod = pods.find((p) => p.metadata.labels?.[CONTROLLER_REVISION_HASH] === hash) ?? pods[0]!;
      counted.push(pod);
      if (isPodReady(pod)) ready++;
      if (isPodAvailable(pod, minReady, now)) available++;
      if (pod.metadata.labels?.[CONTROLLER_REVISION_HASH] === hash) updated++;
    }
    const status = {
      currentNumberScheduled: current,
      numberMisscheduled: misscheduled,
      desiredNumberScheduled: desired,
      numberReady: ready,
      observedGeneration: ds.metadata.generation ?? 1,
      updatedNumberScheduled: updated,
      numberAvailable: available,
      numberUnavailable: Math.max(0, desired - available),
    };
    const prev = ds.status ?? {};
    const changed = (Object.keys(status) as Array<keyof typeof status>).some(
      (k) => (prev[k] ?? 0) !== status[k],
    );
    if (changed) await this.#patchStatus(ds, status);
    const next = minReady > 0 ? nextAvailabilityCheck(counted, minReady, now) : undefined;
    if (next !== undefined) this.#loop.queue.addAfter(objectKeyOf(ds), next - now + 50);
  }

  async #patchStatus(ds: DaemonSet, status: Record<string, unknown>): Promise<void> {
    try {
      await this.#cluster.patch(
        Resources.daemonsets,
        ds.metadata.namespace,
        nameOf(ds),
        'merge',
        { status },
        { subresource: 'status' },
      );
    } catch (err) {
      ignoreNotFound(err);
    }
  }

  #event(ds: DaemonSet, type: 'Normal' | 'Warning', reason: string, message: string): void {
    void recordEvent(
      this.#cluster,
      { involvedObject: objectReference(ds), type, reason, message, component: COMPONENT },
      { logger: this.#log },
    );
  }
}

function groupByNode(pods: readonly Pod[]): Map<string, Pod[]> {
  const map = new Map<string, Pod[]>();
  for (const pod of pods) {
    const node = templateNodeName(pod);
    if (node === '') continue;
    const list = map.get(node);
    if (list === undefined) map.set(node, [pod]);
    else list.push(pod);
  }
  return map;
}

/** The one updated and the one old pod on a node; undefined when there are several of either. */
function updatedAndOld(pods: readonly Pod[], hash: string): { updated?: Pod; old?: Pod } | undefined {
  let updated: Pod | undefined;
  let old: Pod | undefined;
  for (const pod of pods) {
    if (pod.metadata.deletionTimestamp !== undefined) continue;
    if (pod.metadata.labels?.[CONTROLLER_REVISION_HASH] === hash) {
      if (updated !== undefined) return undefined;
      updated = pod;
    } else {
      if (old !== undefined) return undefined;
      old = pod;
    }
  }
  return { ...(updated === undefined ? {} : { updated }), ...(old === undefined ? {} : { old }) };
}
