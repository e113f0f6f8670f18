/**
 * What the scheduler knows about pods and nodes, parsed once from API objects into compact, typed
 * records. Resource amounts are plain numbers: cpu in millicores, everything else in whole units.
 */
import { isPlainObject, type KubeObject, type LabelSelectorSpec } from '../../api/meta.ts';
import { parseQuantity, quantityMilliValue, quantityValue } from '../../api/quantity.ts';
import { type LabelSelector, labelSelectorFromSpec, NOTHING } from '../../api/selectors.ts';

/** Resource amounts by name: `cpu` in millicores, others (memory, ephemeral-storage, extended) in units. */
export type ResourceAmounts = Map<string, number>;

export const CPU = 'cpu';
export const MEMORY = 'memory';
export const PODS = 'pods';
/** What scoring assumes for a container that requests no cpu / memory (Kubernetes' non-zero defaults). */
export const DEFAULT_MILLI_CPU = 100;
export const DEFAULT_MEMORY = 200 * 1024 * 1024;

export type TaintEffect = 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';

export interface Taint {
  readonly key: string;
  readonly value: string;
  readonly effect: TaintEffect;
}

export interface Toleration {
  readonly key: string;
  readonly operator: 'Exists' | 'Equal';
  readonly value: string;
  /** '' tolerates every effect. */
  readonly effect: string;
}

export interface NodeSelectorRequirement {
  readonly key: string;
  readonly operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt';
  readonly values: readonly string[];
}

/** One nodeSelectorTerm: all its expressions and fields must match. */
export interface NodeSelectorTerm {
  readonly matchExpressions: readonly NodeSelectorRequirement[];
  readonly matchFields: readonly NodeSelectorRequirement[];
}

export interface PreferredNodeTerm {
  readonly weight: number;
  readonly term: NodeSelectorTerm;
}

export interface PodAffinityTerm {
  readonly selector: LabelSelector;
  /** Namespaces the term looks in; empty with no namespaceSelector means the pod's own. */
  readonly namespaces: ReadonlySet<string>;
  /** undefined: no namespaceSelector; a selector over namespace labels is not evaluated (see README). */
  readonly allNamespaces: boolean;
  readonly topologyKey: string;
}

export interface WeightedPodAffinityTerm {
  readonly weight: number;
  readonly term: PodAffinityTerm;
}

export interface HostPort {
  readonly protocol: string;
  readonly ip: string;
  readonly port: number;
}

/** A pod as the scheduler sees it. */
export interface PodInfo {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly nodeName: string;
  readonly schedulerName: string;
  readonly deleting: boolean;
  /** Succeeded or Failed: holds no resources. */
  readonly terminal: boolean;
  /** spec.schedulingGates is not empty: not to be scheduled yet. */
  readonly gated: boolean;
  readonly priority: number;
  /** Effective requests (containers, init containers, overhead), zeros left out. */
  readonly requests: ResourceAmounts;
  /** cpu and memory with the non-zero defaults, for scoring. */
  readonly nonZeroMilliCpu: number;
  readonly nonZeroMemory: number;
  readonly nodeSelector: Readonly<Record<string, string>>;
  /** undefined: no required node affinity. */
  readonly requiredNodeTerms: readonly NodeSelectorTerm[] | undefined;
  readonly preferredNodeTerms: readonly PreferredNodeTerm[];
  readonly tolerations: readonly Toleration[];
  readonly requiredAffinity: readonly PodAffinityTerm[];
  readonly requiredAntiAffinity: readonly PodAffinityTerm[];
  readonly preferredAffinity: readonly WeightedPodAffinityTerm[];
  readonly preferredAntiAffinity: readonly WeightedPodAffinityTerm[];
  readonly hostPorts: readonly HostPort[];
  /** uid of the controlling owner (ReplicaSet, Job...), '' if none: pods spread by it. */
  readonly ownerUid: string;
}

/** A node as the scheduler sees it (its running totals live in the cache). */
export interface NodeSpec {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly unschedulable: boolean;
  /** spec.taints plus the taint a not-Ready node would carry if the lifecycle controller has not set it yet. */
  readonly taints: readonly Taint[];
  readonly allocatable: ResourceAmounts;
  /** Ready condition: 'True', 'False' or 'Unknown' (absent counts as Unknown). */
  readonly ready: string;
}

const str = (v: unknown, fallback = ''): string => (typeof v === 'string' ? v : fallback);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const obj = (v: unknown): Record<string, unknown> => (isPlainObject(v) ? v : {});

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isPlainObject(v)) return out;
  for (const [k, val] of Object.entries(v)) if (typeof val === 'string') out[k] = val;
  return out;
}

/** One resource amount in scheduler units; unparseable or negative quantities count as 0. */
export function resourceAmount(name: string, value: unknown): number {
  if (typeof value !== 'string' && typeof value !== 'number') return 0;
  try {
    const q = parseQuantity(String(value));
    const n = name === CPU ? quantityMilliValue(q) : quantityValue(q);
    return Math.max(n, 0);
  } catch {
    return 0;
  }
}

function resourceList(v: unknown): ResourceAmounts {
  const out: ResourceAmounts = new Map();
  for (const [k, val] of Object.entries(obj(v))) {
    const n = resourceAmount(k, val);
    if (n > 0) out.set(k, n);
  }
  return out;
}

/** Requests of one container; a limit without a request counts as the request (API defaulting). */
function containerRequests(c: Record<string, unknown>): ResourceAmounts {
  const res = obj(c['resources']);
  const out = resourceList(res['limits']);
  for (const [k, v] of Object.entries(obj(res['requests']))) {
    const n = resourceAmount(k, v);
    if (n > 0) out.set(k, n);
    else out.delete(k);
  }
  return out;
}

function addInto(into: ResourceAmounts, from: ResourceAmounts): void {
  for (const [k, v] of from) into.set(k, (into.get(k) ?? 0) + v);
}

function maxInto(into: ResourceAmounts, from: ResourceAmounts): void {
  for (const [k, v] of from) if (v > (into.get(k) ?? 0)) into.set(k, v);
}

/**
 * A pod's effective requests as Kubernetes computes them: the sum over containers and restartable
 * (sidecar) init containers, at least the largest need of any init container while it runs (with the
 * sidecars started before it), plus spec.overhead.
 */
export function podRequests(spec: Record<string, unknown>): ResourceAmounts {
  const total: ResourceAmounts = new Map();
  for (const c of arr(spec['containers'])) addInto(total, containerRequests(obj(c)));
  const sidecars: ResourceAmounts = new Map();
  const initPeak: ResourceAmounts = new Map();
  for (const raw of arr(spec['initContainers'])) {
    const c = obj(raw);
    const req = containerRequests(c);
    if (c['restartPolicy'] === 'Always') {
      addInto(sidecars, req);
      maxInto(initPeak, sidecars);
    } else {
      const running = new Map(sidecars);
      addInto(running, req);
      maxInto(initPeak, running);
    }
  }
  addInto(total, sidecars);
  maxInto(total, initPeak);
  addInto(total, resourceList(spec['overhead']));
  return total;
}

function nonZero(spec: Record<string, unknown>, name: string, fallback: number): number {
  let sum = 0;
  for (const c of arr(spec['containers'])) {
    const req = containerRequests(obj(c)).get(name);
    sum += req === undefined || req === 0 ? fallback : req;
  }
  let initMax = 0;
  for (const c of arr(spec['initContainers'])) {
    const req = containerRequests(obj(c)).get(name);
    initMax = Math.max(initMax, req === undefined || req === 0 ? fallback : req);
  }
  return Math.max(sum, initMax) + (resourceList(spec['overhead']).get(name) ?? 0);
}

const NODE_OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt']);

function parseRequirements(v: unknown): NodeSelectorRequirement[] {
  const out: NodeSelectorRequirement[] = [];
  for (const raw of arr(v)) {
    const r = obj(raw);
    const operator = str(r['operator']);
    // An operator the scheduler does not know can match nothing: keep it so the term fails.
    out.push({
      key: str(r['key']),
      operator: (NODE_OPERATORS.has(operator) ? operator : 'In') as NodeSelectorRequirement['operator'],
      values: NODE_OPERATORS.has(operator) ? arr(r['values']).filter((x) => typeof x === 'string') : [],
    });
  }
  return out;
}

export function parseNodeSelectorTerm(v: unknown): NodeSelectorTerm {
  const t = obj(v);
  return {
    matchExpressions: parseRequirements(t['matchExpressions']),
    matchFields: parseRequirements(t['matchFields']),
  };
}

function parseTolerations(v: unknown): Toleration[] {
  return arr(v).map((raw) => {
    const t = obj(raw);
    return {
      key: str(t['key']),
      operator: t['operator'] === 'Exists' ? 'Exists' : 'Equal',
      value: str(t['value']),
      effect: str(t['effect']),
    };
  });
}

function parsePodAffinityTerm(v: unknown, ownNamespace: string): PodAffinityTerm {
  const t = obj(v);
  const namespaces = new Set(arr(t['namespaces']).filter((x): x is string => typeof x === 'string'));
  const nsSelector = t['namespaceSelector'];
  // An empty namespaceSelector ({}) selects every namespace; a non-empty one is treated the same
  // (namespace labels are not watched: the conservative reading for anti-affinity).
  const allNamespaces = isPlainObject(nsSelector);
  if (namespaces.size === 0 && !allNamespaces) namespaces.add(ownNamespace);
  const sel = t['labelSelector'];
  return {
    selector: isPlainObject(sel) ? safeSelector(sel as LabelSelectorSpec) : NOTHING,
    namespaces,
    allNamespaces,
    topologyKey: str(t['topologyKey']),
  };
}

function safeSelector(spec: LabelSelectorSpec): LabelSelector {
  try {
    return labelSelectorFromSpec(spec);
  } catch {
    return NOTHING;
  }
}

function weighted<T>(v: unknown, parse: (term: unknown) => T, field: string): { weight: number; term: T }[] {
  return arr(v).map((raw) => {
    const w = obj(raw);
    return { weight: typeof w['weight'] === 'number' ? w['weight'] : 0, term: parse(w[field]) };
  });
}

function parseHostPorts(spec: Record<string, unknown>): HostPort[] {
  const out: HostPort[] = [];
  for (const c of [...arr(spec['containers']), ...arr(spec['initContainers'])]) {
    for (const raw of arr(obj(c)['ports'])) {
      const p = obj(raw);
      const port = p['hostPort'];
      if (typeof port !== 'number' || port <= 0) continue;
      out.push({
        protocol: str(p['protocol'], 'TCP') || 'TCP',
        ip: str(p['hostIP'], '0.0.0.0') || '0.0.0.0',
        port,
      });
    }
  }
  return out;
}

/** `namespace/name` of a pod. */
export function podKey(pod: KubeObject): string {
  return `${pod.metadata.namespace ?? 'default'}/${pod.metadata.name ?? ''}`;
}

/** Parse a Pod object; every field the scheduler reads is checked here, once. */
export function parsePod(pod: KubeObject): PodInfo {
  const spec = obj(pod['spec']);
  const status = obj(pod['status']);
  const namespace = pod.metadata.namespace ?? 'default';
  const affinity = obj(spec['affinity']);
  const nodeAff = obj(affinity['nodeAffinity']);
  const required = nodeAff['requiredDuringSchedulingIgnoredDuringExecution'];
  const podAff = obj(affinity['podAffinity']);
  const podAnti = obj(affinity['podAntiAffinity']);
  const termOf = (t: unknown): PodAffinityTerm => parsePodAffinityTerm(t, namespace);
  const phase = str(status['phase']);
  const owner = (pod.metadata.ownerReferences ?? []).find((o) => o.controller === true);
  return {
    key: podKey(pod),
    namespace,
    name: pod.metadata.name ?? '',
    uid: pod.metadata.uid ?? '',
    labels: pod.metadata.labels ?? {},
    nodeName: str(spec['nodeName']),
    schedulerName: str(spec['schedulerName'], 'default-scheduler') || 'default-scheduler',
    deleting: pod.metadata.deletionTimestamp !== undefined,
    terminal: phase === 'Succeeded' || phase === 'Failed',
    gated: arr(spec['schedulingGates']).length > 0,
    priority: typeof spec['priority'] === 'number' ? spec['priority'] : 0,
    requests: podRequests(spec),
    nonZeroMilliCpu: nonZero(spec, CPU, DEFAULT_MILLI_CPU),
    nonZeroMemory: nonZero(spec, MEMORY, DEFAULT_MEMORY),
    nodeSelector: stringMap(spec['nodeSelector']),
    requiredNodeTerms: isPlainObject(required)
      ? arr(required['nodeSelectorTerms']).map(parseNodeSelectorTerm)
      : undefined,
    preferredNodeTerms: weighted(
      nodeAff['preferredDuringSchedulingIgnoredDuringExecution'],
      parseNodeSelectorTerm,
      'preference',
    ),
    tolerations: parseTolerations(spec['tolerations']),
    requiredAffinity: arr(podAff['requiredDuringSchedulingIgnoredDuringExecution']).map(termOf),
    requiredAntiAffinity: arr(podAnti['requiredDuringSchedulingIgnoredDuringExecution']).map(termOf),
    preferredAffinity: weighted(
      podAff['preferredDuringSchedulingIgnoredDuringExecution'],
      termOf,
      'podAffinityTerm',
    ),
    preferredAntiAffinity: weighted(
      podAnti['preferredDuringSchedulingIgnoredDuringExecution'],
      termOf,
      'podAffinityTerm',
    ),
    hostPorts: parseHostPorts(spec),
    ownerUid: owner?.uid ?? '',
  };
}

const EFFECTS = new Set(['NoSchedule', 'PreferNoSchedule', 'NoExecute']);
export const TAINT_NOT_READY = 'node.kubernetes.io/not-ready';
export const TAINT_UNREACHABLE = 'node.kubernetes.io/unreachable';
export const TAINT_UNSCHEDULABLE = 'node.kubernetes.io/unschedulable';

/** Parse a Node object. */
export function parseNode(node: KubeObject): NodeSpec {
  const spec = obj(node['spec']);
  const status = obj(node['status']);
  const taints: Taint[] = [];
  for (const raw of arr(spec['taints'])) {
    const t = obj(raw);
    const effect = str(t['effect']);
    if (EFFECTS.has(effect))
      taints.push({ key: str(t['key']), value: str(t['value']), effect: effect as TaintEffect });
  }
  const readyCond = arr(status['conditions'])
    .map(obj)
    .find((c) => c['type'] === 'Ready');
  const ready = readyCond === undefined ? 'Unknown' : str(readyCond['status'], 'Unknown');
  // The node lifecycle controller taints nodes that are not Ready; until it has, act as if it had, so a
  // node that never reported Ready gets no pods that do not tolerate that.
  if (ready !== 'True') {
    const key = ready === 'False' || readyCond === undefined ? TAINT_NOT_READY : TAINT_UNREACHABLE;
    if (!taints.some((t) => t.key === TAINT_NOT_READY || t.key === TAINT_UNREACHABLE)) {
      taints.push({ key, value: '', effect: 'NoSchedule' });
    }
  }
  const allocatable = resourceList(status['allocatable']);
  if (!isPlainObject(status['allocatable'])) {
    // No allocatable reported: fall back to capacity, like a kubelet that reports only capacity.
    for (const [k, v] of resourceList(status['capacity'])) allocatable.set(k, v);
  }
  return {
    name: node.metadata.name ?? '',
    labels: node.metadata.labels ?? {},
    unschedulable: spec['unschedulable'] === true,
    taints,
    allocatable,
    ready,
  };
}

/** The parts of a node that can change a scheduling decision (heartbeats do not). */
export function nodeSchedulingFingerprint(n: NodeSpec): string {
  return JSON.stringify([n.labels, n.unschedulable, n.taints, [...n.allocatable], n.ready]);
}
