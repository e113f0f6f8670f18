/**
 * What the workload controllers share: typed views of the objects they read, pod readiness and
 * availability, controller references, int-or-percent scaling, template hashing, expectations.
 */
import {
  cloneJson,
  isPlainObject,
  type KubeObject,
  type LabelSelectorSpec,
  type ObjectMeta,
  type OwnerReference,
} from '../../api/meta.ts';
import { isApiError } from '../../api/status-error.ts';
import type { Informer } from '../../client/informer.ts';
import { KedgeError } from '../../lib/errors.ts';

export interface PodCondition {
  type: string;
  status: string;
  lastTransitionTime?: string;
  reason?: string;
  message?: string;
}

export interface PodTemplate {
  metadata?: ObjectMeta;
  spec?: Record<string, unknown>;
}

export interface Pod extends KubeObject {
  spec?: Record<string, unknown> & { nodeName?: string };
  status?: {
    phase?: string;
    conditions?: PodCondition[];
    containerStatuses?: Array<{ restartCount?: number }>;
  };
}

export interface WorkloadCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastUpdateTime?: string;
  lastTransitionTime?: string;
}

export interface ReplicaSet extends KubeObject {
  spec?: {
    replicas?: number;
    minReadySeconds?: number;
    selector?: LabelSelectorSpec;
    template?: PodTemplate;
  };
  status?: {
    replicas?: number;
    fullyLabeledReplicas?: number;
    readyReplicas?: number;
    availableReplicas?: number;
    observedGeneration?: number;
    conditions?: WorkloadCondition[];
  };
}

export type IntOrString = number | string;

export interface Deployment extends KubeObject {
  spec?: {
    replicas?: number;
    selector?: LabelSelectorSpec;
    template?: PodTemplate;
    strategy?: { type?: string; rollingUpdate?: { maxSurge?: IntOrString; maxUnavailable?: IntOrString } };
    minReadySeconds?: number;
    revisionHistoryLimit?: number;
    paused?: boolean;
    progressDeadlineSeconds?: number;
  };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    readyReplicas?: number;
    availableReplicas?: number;
    unavailableReplicas?: number;
    conditions?: WorkloadCondition[];
    collisionCount?: number;
  };
}

export interface DaemonSet extends KubeObject {
  spec?: {
    selector?: LabelSelectorSpec;
    template?: PodTemplate;
    updateStrategy?: {
      type?: string;
      rollingUpdate?: { maxSurge?: IntOrString; maxUnavailable?: IntOrString };
    };
    minReadySeconds?: number;
    revisionHistoryLimit?: number;
  };
  status?: {
    currentNumberScheduled?: number;
    numberMisscheduled?: number;
    desiredNumberScheduled?: number;
    numberReady?: number;
    observedGeneration?: number;
    updatedNumberScheduled?: number;
    numberAvailable?: number;
    numberUnavailable?: number;
    collisionCount?: number;
    conditions?: WorkloadCondition[];
  };
}

export interface Taint {
  key: string;
  value?: string;
  effect: string;
}

export interface Node extends KubeObject {
  spec?: { taints?: Taint[]; unschedulable?: boolean };
}

export interface ControllerRevision extends KubeObject {
  data?: unknown;
  revision?: number;
}

/** Label Deployments put on their ReplicaSets and pods. */
export const POD_TEMPLATE_HASH = 'pod-template-hash';
/** Label DaemonSets (and StatefulSets) put on their pods and ControllerRevisions. */
export const CONTROLLER_REVISION_HASH = 'controller-revision-hash';
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';

export function nowIso(now = Date.now()): string {
  return new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function nameOf(obj: KubeObject): string {
  return obj.metadata.name ?? '';
}

export function namespaceOf(obj: KubeObject): string {
  return obj.metadata.namespace ?? '';
}

/** The owner reference with controller: true, if any. */
export function controllerRef(obj: KubeObject): OwnerReference | undefined {
  return obj.metadata.ownerReferences?.find((r) => r.controller === true);
}

export function isControlledBy(obj: KubeObject, owner: KubeObject): boolean {
  const ref = controllerRef(obj);
  return ref !== undefined && ref.uid === owner.metadata.uid;
}

/** The controller reference an owner puts on what it creates. */
export function newControllerRef(owner: KubeObject, apiVersion: string, kind: string): OwnerReference {
  return {
    apiVersion,
    kind,
    name: nameOf(owner),
    uid: owner.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function isPodActive(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase !== 'Succeeded' && phase !== 'Failed' && pod.metadata.deletionTimestamp === undefined;
}

function readyCondition(pod: Pod): PodCondition | undefined {
  return pod.status?.conditions?.find((c) => c.type === 'Ready');
}

export function isPodReady(pod: Pod): boolean {
  return readyCondition(pod)?.status === 'True';
}

/**
 * When a ready pod becomes available (ready for minReadySeconds), in ms since the epoch; undefined when
 * not ready. A Ready condition without a transition time counts as ready since forever.
 */
export function availableSince(pod: Pod, minReadySeconds: number): number | undefined {
  const c = readyCondition(pod);
  if (c?.status !== 'True') return undefined;
  if (minReadySeconds <= 0) return 0;
  const t = c.lastTransitionTime === undefined ? Number.NaN : Date.parse(c.lastTransitionTime);
  return Number.isNaN(t) ? 0 : t + minReadySeconds * 1000;
}

export function isPodAvailable(pod: Pod, minReadySeconds: number, now: number): boolean {
  const at = availableSince(pod, minReadySeconds);
  return at !== undefined && at <= now;
}

/** Earliest future moment one of the pods turns available, to re-check then. */
export function nextAvailabilityCheck(
  pods: readonly Pod[],
  minReadySeconds: number,
  now: number,
): number | undefined {
  let next: number | undefined;
  for (const p of pods) {
    const at = availableSince(p, minReadySeconds);
    if (at !== undefined && at > now && (next === undefined || at < next)) next = at;
  }
  return next;
}

/**
 * An int-or-percent against a total, like intstr.GetScaledValueFromIntOrPercent: "25%" of 10 is 3 when
 * rounding up, 2 when rounding down.
 */
export function scaledValue(value: IntOrString | undefined, total: number, roundUp: boolean): number {
  if (value === undefined) return 0;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw invalidValue(value);
    return value;
  }
  const m = /^(-?\d+)%$/.exec(value);
  if (m === null) {
    if (/^-?\d+$/.test(value)) return Number(value);
    throw invalidValue(value);
  }
  const pct = Number(m[1]);
  const scaled = (pct * total) / 100;
  return roundUp ? Math.ceil(scaled) : Math.floor(scaled);
}

function invalidValue(value: unknown): KedgeError {
  return new KedgeError(
    'KEDGE_WORKLOAD_INVALID',
    `Invalid int-or-percent value ${JSON.stringify(value)}: want an integer or a percentage like "25%"`,
    { context: { value } },
  );
}

/**
 * maxSurge and maxUnavailable as absolute numbers for `desired` replicas, like Kubernetes'
 * ResolveFenceposts: surge rounds up, unavailable rounds down, and both zero means one unavailable.
 */
export function resolveFenceposts(
  maxSurge: IntOrString | undefined,
  maxUnavailable: IntOrString | undefined,
  desired: number,
): { surge: number; unavailable: number } {
  const surge = scaledValue(maxSurge, desired, true);
  let unavailable = scaledValue(maxUnavailable, desired, false);
  if (surge === 0 && unavailable === 0) unavailable = 1;
  return { surge, unavailable };
}

/** JSON with keys sorted and empty/null values dropped: equal for semantically equal objects. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(normalize(value)) ?? 'null';
}

function normalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalize);
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = normalize(value[key]);
      if (v === undefined || v === null) continue;
      if (Array.isArray(v) && v.length === 0) continue;
      if (isPlainObject(v) && Object.keys(v).length === 0) continue;
      out[key] = v;
    }
    return out;
  }
  return value;
}

/** 32-bit FNV-1a of a string's UTF-8 bytes. */
export function fnv32a(text: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(text, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** Kubernetes' rand.SafeEncodeString: no vowels (no words), no look-alike characters. */
export function safeEncode(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) out += SAFE_ALPHABET[text.charCodeAt(i) % SAFE_ALPHABET.length];
  return out;
}

/** A template without the given labels, for comparing and hashing. */
export function withoutLabel(template: PodTemplate | undefined, label: string): PodTemplate {
  const copy = cloneJson(template ?? {});
  if (copy.metadata?.labels !== undefined) {
    delete copy.metadata.labels[label];
  }
  return copy;
}

/** The pod-template-hash of a template (plus collision count), like Kubernetes' ComputeHash. */
export function podTemplateHash(template: PodTemplate | undefined, collisionCount?: number): string {
  const base = canonicalJson(withoutLabel(template, POD_TEMPLATE_HASH));
  const text = collisionCount === undefined ? base : `${base}#${collisionCount}`;
  return safeEncode(String(fnv32a(text)));
}

/** Templates equal once the pod-template-hash label is ignored (EqualIgnoreHash). */
export function templatesEqualIgnoringHash(a: PodTemplate | undefined, b: PodTemplate | undefined): boolean {
  return (
    canonicalJson(withoutLabel(a, POD_TEMPLATE_HASH)) === canonicalJson(withoutLabel(b, POD_TEMPLATE_HASH))
  );
}

export function byCreationThenName(a: KubeObject, b: KubeObject): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  return nameOf(a) < nameOf(b) ? -1 : nameOf(a) > nameOf(b) ? 1 : 0;
}

export function setCondition(conditions: WorkloadCondition[], next: WorkloadCondition): WorkloadCondition[] {
  const current = conditions.find((c) => c.type === next.type);
  if (current !== undefined && current.status === next.status && current.reason === next.reason) {
    // Same state: keep the transition time, like SetDeploymentCondition.
    if (current.lastTransitionTime !== undefined) next.lastTransitionTime = current.lastTransitionTime;
  }
  return [...conditions.filter((c) => c.type !== next.type), next];
}

export function getCondition(
  conditions: readonly WorkloadCondition[] | undefined,
  type: string,
): WorkloadCondition | undefined {
  return conditions?.find((c) => c.type === type);
}

const EXPECTATIONS_TTL_MS = 5 * 60_000;

/**
 * What a controller expects to see in its informer after it created or deleted pods, so it does not act
 * twice while the cache lags (client-go's ControllerExpectations, with deletes tracked by pod key).
 * Expectations expire after five minutes so a lost event cannot wedge a controller.
 */
export class Expectations {
  readonly #entries = new Map<string, { adds: number; deletes: Set<string>; at: number }>();

  satisfied(key: string, now = Date.now()): boolean {
    const e = this.#entries.get(key);
    if (e === undefined) return true;
    if (e.adds <= 0 && e.deletes.size === 0) return true;
    return now - e.at > EXPECTATIONS_TTL_MS;
  }

  expect(key: string, adds: number, deletes: readonly string[]): void {
    this.#entries.set(key, { adds, deletes: new Set(deletes), at: Date.now() });
  }

  creationObserved(key: string): void {
    const e = this.#entries.get(key);
    if (e !== undefined) e.adds--;
  }

  /** A create that failed or was skipped will never be observed. */
  lowerCreations(key: string, n: number): void {
    const e = this.#entries.get(key);
    if (e !== undefined) e.adds -= n;
  }

  deletionObserved(key: string, podKey: string): void {
    this.#entries.get(key)?.deletes.delete(podKey);
  }

  forget(key: string): void {
    this.#entries.delete(key);
  }
}

/** Informer index names the workload controllers add (namespace; controller uid; namespace of orphans). */
export const BY_NAMESPACE = 'workloads:namespace';
export const BY_CONTROLLER = 'workloads:controller-uid';
export const BY_ORPHAN_NAMESPACE = 'workloads:orphan-namespace';

export function addWorkloadIndexes(informer: Informer<KubeObject>): void {
  informer.addIndex(BY_NAMESPACE, (o) => [o.metadata.namespace ?? '']);
  informer.addIndex(BY_CONTROLLER, (o) => {
    const ref = controllerRef(o);
    return ref === undefined ? [] : [ref.uid];
  });
  informer.addIndex(BY_ORPHAN_NAMESPACE, (o) =>
    controllerRef(o) === undefined ? [o.metadata.namespace ?? ''] : [],
  );
}

/**
 * What an owner may claim: the objects it controls and the orphans of its namespace. Objects controlled
 * by someone else are never claimed, so this is all `claimObjects` needs, without walking the namespace.
 */
export function claimCandidates<T extends KubeObject>(informer: Informer<T>, owner: KubeObject): T[] {
  const owned = informer.byIndex(BY_CONTROLLER, owner.metadata.uid ?? '');
  const orphans = informer.byIndex(BY_ORPHAN_NAMESPACE, owner.metadata.namespace ?? '');
  return orphans.length === 0 ? owned : [...owned, ...orphans];
}

function sameStringMap(
  a: Record<string, string> | undefined,
  b: Record<string, string> | undefined,
): boolean {
  if (a === b) return true;
  const ka = Object.keys(a ?? {});
  if (ka.length !== Object.keys(b ?? {}).length) return false;
  return ka.every((k) => a?.[k] === b?.[k]);
}

function sameOwners(
  a: readonly OwnerReference[] | undefined,
  b: readonly OwnerReference[] | undefined,
): boolean {
  if (a === b) return true;
  if ((a?.length ?? 0) !== (b?.length ?? 0)) return false;
  return (a ?? []).every((r, i) => {
    const o = b?.[i];
    return o !== undefined && r.uid === o.uid && r.controller === o.controller && r.name === o.name;
  });
}

/**
 * Whether a pod update can change what a ReplicaSet controller computes: labels, owners, deletion,
 * phase, or the Ready condition (status and transition time, for availability). A binding
 * (spec.nodeName) or other status churn does not, so it need not re-sync the owner. `withNode` also
 * counts a change of node, for controllers that place pods per node (DaemonSets).
 */
export function podChangeMatters(old: Pod, pod: Pod, withNode = false): boolean {
  if (old === pod) return false;
  const a = old.metadata;
  const b = pod.metadata;
  if (a.deletionTimestamp !== b.deletionTimestamp) return true;
  if (!sameStringMap(a.labels, b.labels)) return true;
  if (!sameOwners(a.ownerReferences, b.ownerReferences)) return true;
  if (old.status?.phase !== pod.status?.phase) return true;
  const ra = readyCondition(old);
  const rb = readyCondition(pod);
  if (ra?.status !== rb?.status || ra?.lastTransitionTime !== rb?.lastTransitionTime) return true;
  if (withNode && (old.spec?.nodeName ?? '') !== (pod.spec?.nodeName ?? '')) return true;
  return false;
}

/** Create `count` things in batches of 1, 2, 4... stopping at the first batch with a failure. */
export async function slowStartBatch(
  count: number,
  initialBatch: number,
  fn: (index: number) => Promise<void>,
): Promise<{ successes: number; error: unknown }> {
  let remaining = count;
  let successes = 0;
  let index = 0;
  for (let batch = Math.min(remaining, initialBatch); batch > 0; batch = Math.min(2 * batch, remaining)) {
    const results = await Promise.allSettled(Array.from({ length: batch }, () => fn(index++)));
    const failed = results.filter((r) => r.status === 'rejected');
    successes += batch - failed.length;
    if (failed.length > 0) return { successes, error: (failed[0] as PromiseRejectedResult).reason };
    remaining -= batch;
  }
  return { successes, error: undefined };
}

/** Deleting something already gone is success. */
export function ignoreNotFound(err: unknown): void {
  if (!isApiError(err, 404)) throw err;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function labelsOf(obj: { metadata?: ObjectMeta }): Record<string, string> {
  return obj.metadata?.labels ?? {};
}
