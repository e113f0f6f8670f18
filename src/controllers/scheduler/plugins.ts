/**
 * The scheduler's filters and scores as pure functions, named and worded after the Kubernetes plugins
 * (NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit, InterPodAffinity,
 * LeastAllocated, BalancedAllocation, selector spread). Filters return the reasons a node does not fit
 * (empty: it fits); scores return a raw number that `normalize*` turns into 0..100 across nodes.
 */
import { matchesLabels } from '../../api/selectors.ts';
import {
  CPU,
  MEMORY,
  type NodeSelectorRequirement,
  type NodeSelectorTerm,
  type NodeSpec,
  PODS,
  type PodAffinityTerm,
  type PodInfo,
  type ResourceAmounts,
  TAINT_UNSCHEDULABLE,
  type Taint,
  type Toleration,
} from './model.ts';

export const MAX_NODE_SCORE = 100;

/** A node with the running totals of the pods on it (assumed ones included). */
export interface NodeInfo {
  readonly name: string;
  /** undefined while pods name a node the scheduler has not seen (or that was deleted). */
  spec: NodeSpec | undefined;
  readonly requested: ResourceAmounts;
  nonZeroMilliCpu: number;
  nonZeroMemory: number;
  podCount: number;
  readonly pods: Map<string, PodInfo>;
  /** `protocol/ip/port` → how many pods use it. */
  readonly usedPorts: Map<string, number>;
}

export function newNodeInfo(name: string, spec?: NodeSpec): NodeInfo {
  return {
    name,
    spec,
    requested: new Map(),
    nonZeroMilliCpu: 0,
    nonZeroMemory: 0,
    podCount: 0,
    pods: new Map(),
    usedPorts: new Map(),
  };
}

export const Reasons = {
  unschedulable: 'node(s) were unschedulable',
  nodeAffinity: "node(s) didn't match Pod's node affinity/selector",
  ports: "node(s) didn't have free ports for the requested pod ports",
  tooManyPods: 'Too many pods',
  affinity: "node(s) didn't match pod affinity rules",
  antiAffinity: "node(s) didn't match pod anti-affinity rules",
  existingAntiAffinity: "node(s) didn't satisfy existing pods anti-affinity rules",
} as const;

export function untoleratedTaintReason(t: Taint): string {
  return `node(s) had untolerated taint {${t.key}: ${t.value}}`;
}

export function insufficientReason(resource: string): string {
  return `Insufficient ${resource}`;
}

// ---------------------------------------------------------------------------------------------
// Tolerations and taints

/** Kubernetes' ToleratesTaint. */
export function toleratesTaint(t: Toleration, taint: Taint): boolean {
  if (t.effect !== '' && t.effect !== taint.effect) return false;
  if (t.key !== '' && t.key !== taint.key) return false;
  return t.operator === 'Exists' || t.value === taint.value;
}

export function toleratesAny(tolerations: readonly Toleration[], taint: Taint): boolean {
  return tolerations.some((t) => toleratesTaint(t, taint));
}

const UNSCHEDULABLE_TAINT: Taint = { key: TAINT_UNSCHEDULABLE, value: '', effect: 'NoSchedule' };

/** NodeUnschedulable: spec.unschedulable keeps pods off unless they tolerate the unschedulable taint. */
export function filterUnschedulable(pod: PodInfo, node: NodeSpec): string | undefined {
  if (!node.unschedulable || toleratesAny(pod.tolerations, UNSCHEDULABLE_TAINT)) return undefined;
  return Reasons.unschedulable;
}

/** TaintToleration filter: the first NoSchedule / NoExecute taint the pod does not tolerate. */
export function filterTaints(pod: PodInfo, node: NodeSpec): string | undefined {
  for (const taint of node.taints) {
    if (taint.effect === 'PreferNoSchedule') continue;
    if (!toleratesAny(pod.tolerations, taint)) return untoleratedTaintReason(taint);
  }
  return undefined;
}

/** TaintToleration score (raw): how many PreferNoSchedule taints the pod does not tolerate; fewer is better. */
export function countIntolerablePreferNoSchedule(pod: PodInfo, node: NodeSpec): number {
  let n = 0;
  for (const taint of node.taints) {
    if (taint.effect !== 'PreferNoSchedule') continue;
    const ok = pod.tolerations.some(
      (t) => (t.effect === '' || t.effect === 'PreferNoSchedule') && toleratesTaint(t, taint),
    );
    if (!ok) n++;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Node affinity

function parseIntStrict(s: string): number | undefined {
  return /^[+-]?\d+$/.test(s) ? Number(s) : undefined;
}

export function matchesNodeRequirement(
  r: NodeSelectorRequirement,
  labels: Readonly<Record<string, string>>,
): boolean {
  const has = Object.hasOwn(labels, r.key);
  const value = has ? labels[r.key] : undefined;
  switch (r.operator) {
    case 'In':
      return value !== undefined && r.values.includes(value);
    case 'NotIn':
      return value === undefined || !r.values.includes(value);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    case 'Gt':
    case 'Lt': {
      if (value === undefined || r.values.length !== 1) return false;
      const have = parseIntStrict(value);
      const want = parseIntStrict(r.values[0] ?? '');
      if (have === undefined || want === undefined) return false;
      return r.operator === 'Gt' ? have > want : have < want;
    }
  }
}

function matchesNodeField(r: NodeSelectorRequirement, nodeName: string): boolean {
  if (r.key !== 'metadata.name') return false;
  if (r.operator === 'In') return r.values.length === 1 && r.values[0] === nodeName;
  if (r.operator === 'NotIn') return r.values.length === 1 && r.values[0] !== nodeName;
  return false;
}

/** One nodeSelectorTerm: every expression and field matches; an empty term matches nothing. */
export function matchesNodeSelectorTerm(term: NodeSelectorTerm, node: NodeSpec): boolean {
  if (term.matchExpressions.length === 0 && term.matchFields.length === 0) return false;
  return (
    term.matchExpressions.every((r) => matchesNodeRequirement(r, node.labels)) &&
    term.matchFields.every((r) => matchesNodeField(r, node.name))
  );
}

/** NodeAffinity filter: spec.nodeSelector and the required node affinity (terms are ORed). */
export function filterNodeAffinity(pod: PodInfo, node: NodeSpec): string | undefined {
  for (const key in pod.nodeSelector) {
    if (node.labels[key] !== pod.nodeSelector[key] || !Object.hasOwn(node.labels, key))
      return Reasons.nodeAffinity;
  }
  const terms = pod.requiredNodeTerms;
  if (terms !== undefined && !terms.some((t) => matchesNodeSelectorTerm(t, node)))
    return Reasons.nodeAffinity;
  return undefined;
}

/** NodeAffinity score (raw): the summed weights of the preferred terms the node matches. */
export function scoreNodeAffinity(pod: PodInfo, node: NodeSpec): number {
  let sum = 0;
  for (const p of pod.preferredNodeTerms)
    if (p.weight !== 0 && matchesNodeSelectorTerm(p.term, node)) sum += p.weight;
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Host ports

export function portKeys(port: { protocol: string; ip: string; port: number }): string {
  return `${port.protocol}/${port.ip}/${port.port}`;
}

/** NodePorts: a host port (protocol, port) is free unless used on the same IP or either side binds 0.0.0.0. */
export function filterPorts(pod: PodInfo, node: NodeInfo): string | undefined {
  if (pod.hostPorts.length === 0 || node.usedPorts.size === 0) return undefined;
  for (const want of pod.hostPorts) {
    for (const used of node.usedPorts.keys()) {
      const [protocol, ip, port] = used.split('/');
      if (protocol !== want.protocol || Number(port) !== want.port) continue;
      if (ip === want.ip || ip === '0.0.0.0' || want.ip === '0.0.0.0') return Reasons.ports;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Resources

/** NodeResourcesFit: every reason the pod's requests do not fit what is left of the node's allocatable. */
export function filterResources(pod: PodInfo, node: NodeInfo, spec: NodeSpec): string[] {
  const reasons: string[] = [];
  if (node.podCount + 1 > (spec.allocatable.get(PODS) ?? 0)) reasons.push(Reasons.tooManyPods);
  for (const [resource, want] of pod.requests) {
    if (resource === PODS || want <= 0) continue;
    const free = (spec.allocatable.get(resource) ?? 0) - (node.requested.get(resource) ?? 0);
    if (want > free) reasons.push(insufficientReason(resource));
  }
  return reasons;
}

function leastAllocated(requested: number, capacity: number): number {
  if (capacity === 0 || requested > capacity) return 0;
  return Math.floor(((capacity - requested) * MAX_NODE_SCORE) / capacity);
}

/** LeastAllocated (0..100): prefer nodes with more cpu and memory left after placing the pod. */
export function scoreLeastAllocated(pod: PodInfo, node: NodeInfo, spec: NodeSpec): number {
  const cpu = leastAllocated(node.nonZeroMilliCpu + pod.nonZeroMilliCpu, spec.allocatable.get(CPU) ?? 0);
  const mem = leastAllocated(node.nonZeroMemory + pod.nonZeroMemory, spec.allocatable.get(MEMORY) ?? 0);
  return Math.floor((cpu + mem) / 2);
}

/** BalancedAllocation (0..100): prefer nodes whose cpu and memory use stay close to each other. */
export function scoreBalancedAllocation(pod: PodInfo, node: NodeInfo, spec: NodeSpec): number {
  const cpuCap = spec.allocatable.get(CPU) ?? 0;
  const memCap = spec.allocatable.get(MEMORY) ?? 0;
  if (cpuCap === 0 || memCap === 0) return 0;
  const fc = Math.min(1, (node.nonZeroMilliCpu + pod.nonZeroMilliCpu) / cpuCap);
  const fm = Math.min(1, (node.nonZeroMemory + pod.nonZeroMemory) / memCap);
  return Math.floor((1 - Math.abs(fc - fm) / 2) * MAX_NODE_SCORE);
}

// ---------------------------------------------------------------------------------------------
// Inter-pod affinity

/** Whether a term (of a pod in `termNamespace`'s view) selects `target`. */
export function termMatchesPod(term: PodAffinityTerm, target: PodInfo): boolean {
  if (!term.allNamespaces && !term.namespaces.has(target.namespace)) return false;
  return matchesLabels(term.selector, target.labels as Record<string, string>);
}

/** Topology values per key: `topologyKey` → set of label values. */
export type TopologySet = Map<string, Set<string>>;

function addTopology(set: TopologySet, key: string, value: string | undefined): void {
  if (value === undefined) return;
  let s = set.get(key);
  if (s === undefined) {
    s = new Set();
    set.set(key, s);
  }
  s.add(value);
}

/** What InterPodAffinity filtering needs, computed once per pod per cycle from the pods already placed. */
export interface AffinityState {
  /** Per required affinity term, the topology values holding a matching pod. */
  readonly affinityValues: readonly Set<string>[];
  /** No pod anywhere matches the affinity terms, but the pod matches them itself: the first of a group may go anywhere. */
  readonly selfAffinityAllowed: boolean;
  /** Per required anti-affinity term, the topology values holding a matching pod. */
  readonly antiAffinityValues: readonly Set<string>[];
  /** Topologies forbidden by placed pods' required anti-affinity that selects this pod. */
  readonly existingAnti: TopologySet;
}

/** A placed pod together with its node's labels. */
export interface PlacedPod {
  readonly pod: PodInfo;
  readonly nodeLabels: Readonly<Record<string, string>>;
}

/**
 * Build the filtering state. `candidates` yields the placed pods the pod's own terms may select
 * (those in its terms' namespaces); `withAntiAffinity` yields placed pods that have required
 * anti-affinity terms.
 */
export function computeAffinityState(
  pod: PodInfo,
  candidates: Iterable<PlacedPod>,
  withAntiAffinity: Iterable<PlacedPod>,
): AffinityState {
  const affinityValues = pod.requiredAffinity.map(() => new Set<string>());
  const antiAffinityValues = pod.requiredAntiAffinity.map(() => new Set<string>());
  let anyAffinityMatch = false;
  if (pod.requiredAffinity.length > 0 || pod.requiredAntiAffinity.length > 0) {
    for (const placed of candidates) {
      if (placed.pod.key === pod.key) continue;
      pod.requiredAffinity.forEach((term, i) => {
        if (!termMatchesPod(term, placed.pod)) return;
        anyAffinityMatch = true;
        const v = placed.nodeLabels[term.topologyKey];
        if (v !== undefined) affinityValues[i]?.add(v);
      });
      pod.requiredAntiAffinity.forEach((term, i) => {
        if (!termMatchesPod(term, placed.pod)) return;
        const v = placed.nodeLabels[term.topologyKey];
        if (v !== undefined) antiAffinityValues[i]?.add(v);
      });
    }
  }
  const existingAnti: TopologySet = new Map();
  for (const placed of withAntiAffinity) {
    if (placed.pod.key === pod.key) continue;
    for (const term of placed.pod.requiredAntiAffinity) {
      if (termMatchesPod(term, pod))
        addTopology(existingAnti, term.topologyKey, placed.nodeLabels[term.topologyKey]);
    }
  }
  const selfAffinityAllowed =
    !anyAffinityMatch &&
    pod.requiredAffinity.length > 0 &&
    pod.requiredAffinity.every((t) => termMatchesPod(t, pod));
  return { affinityValues, selfAffinityAllowed, antiAffinityValues, existingAnti };
}

/** InterPodAffinity filter, in Kubernetes' order: affinity, anti-affinity, placed pods' anti-affinity. */
export function filterInterPodAffinity(
  pod: PodInfo,
  node: NodeSpec,
  state: AffinityState,
): string | undefined {
  for (let i = 0; i < pod.requiredAffinity.length; i++) {
    const term = pod.requiredAffinity[i]!;
    const v = node.labels[term.topologyKey];
    if (v === undefined) return Reasons.affinity;
    if (!state.selfAffinityAllowed && !state.affinityValues[i]?.has(v)) return Reasons.affinity;
  }
  for (let i = 0; i < pod.requiredAntiAffinity.length; i++) {
    const term = pod.requiredAntiAffinity[i]!;
    const v = node.labels[term.topologyKey];
    if (v !== undefined && state.antiAffinityValues[i]?.has(v)) return Reasons.antiAffinity;
  }
  for (const [key, values] of state.existingAnti) {
    const v = node.labels[key];
    if (v !== undefined && values.has(v)) return Reasons.existingAntiAffinity;
  }
  return undefined;
}

/** `topologyKey` → label value → summed weight: what preferred inter-pod (anti-)affinity scores by. */
export type TopologyScores = Map<string, Map<string, number>>;

function addScore(scores: TopologyScores, key: string, value: string | undefined, w: number): void {
  if (value === undefined || w === 0) return;
  let m = scores.get(key);
  if (m === undefined) {
    m = new Map();
    scores.set(key, m);
  }
  m.set(value, (m.get(value) ?? 0) + w);
}

/** Weight Kubernetes gives placed pods' required affinity when scoring (hardPodAffinityWeight). */
export const HARD_POD_AFFINITY_WEIGHT = 1;

/**
 * InterPodAffinity scoring state: the pod's preferred terms against `candidates`, and the terms of
 * placed pods with affinity (`withAffinity`) against the pod (both directions, like Kubernetes).
 */
export function computeAffinityScores(
  pod: PodInfo,
  candidates: Iterable<PlacedPod>,
  withAffinity: Iterable<PlacedPod>,
): TopologyScores {
  const scores: TopologyScores = new Map();
  if (pod.preferredAffinity.length > 0 || pod.preferredAntiAffinity.length > 0) {
    for (const placed of candidates) {
      if (placed.pod.key === pod.key) continue;
      for (const { weight, term } of pod.preferredAffinity) {
        if (termMatchesPod(term, placed.pod))
          addScore(scores, term.topologyKey, placed.nodeLabels[term.topologyKey], weight);
      }
      for (const { weight, term } of pod.preferredAntiAffinity) {
        if (termMatchesPod(term, placed.pod))
          addScore(scores, term.topologyKey, placed.nodeLabels[term.topologyKey], -weight);
      }
    }
  }
  for (const placed of withAffinity) {
    if (placed.pod.key === pod.key) continue;
    const p = placed.pod;
    for (const term of p.requiredAffinity) {
      if (termMatchesPod(term, pod))
        addScore(scores, term.topologyKey, placed.nodeLabels[term.topologyKey], HARD_POD_AFFINITY_WEIGHT);
    }
    for (const { weight, term } of p.preferredAffinity) {
      if (termMatchesPod(term, pod))
        addScore(scores, term.topologyKey, placed.nodeLabels[term.topologyKey], weight);
    }
    for (const { weight, term } of p.preferredAntiAffinity) {
      if (termMatchesPod(term, pod))
        addScore(scores, term.topologyKey, placed.nodeLabels[term.topologyKey], -weight);
    }
  }
  return scores;
}

/** InterPodAffinity score (raw, may be negative). */
export function scoreInterPodAffinity(node: NodeSpec, scores: TopologyScores): number {
  let sum = 0;
  for (const [key, values] of scores) {
    const v = node.labels[key];
    if (v !== undefined) sum += values.get(v) ?? 0;
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Normalization (Kubernetes' DefaultNormalizeScore and the InterPodAffinity min-max)

/** Scale to 0..100 by the maximum; `reverse` makes fewer better. All zero: 0 (or 100 reversed). */
export function normalizeByMax(raw: number[], reverse: boolean): number[] {
  let max = 0;
  for (const r of raw) if (r > max) max = r;
  if (max === 0) return raw.map(() => (reverse ? MAX_NODE_SCORE : 0));
  return raw.map((r) => {
    const s = Math.floor((r * MAX_NODE_SCORE) / max);
    return reverse ? MAX_NODE_SCORE - s : s;
  });
}

/** Scale to 0..100 between min and max (InterPodAffinity); all equal: 0. */
export function normalizeMinMax(raw: number[]): number[] {
  if (raw.length === 0) return [];
  let min = raw[0]!;
  let max = raw[0]!;
  for (const r of raw) {
    if (r < min) min = r;
    if (r > max) max = r;
  }
  const diff = max - min;
  return raw.map((r) => (diff > 0 ? Math.floor((MAX_NODE_SCORE * (r - min)) / diff) : 0));
}

/**
 * "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu."
 * Counts each reason once per node, sorted like Kubernetes' FitError.
 */
export function fitErrorMessage(
  totalNodes: number,
  reasonsByNode: ReadonlyMap<string, readonly string[]>,
): string {
  if (totalNodes === 0) return 'no nodes available to schedule pods';
  const histogram = new Map<string, number>();
  for (const reasons of reasonsByNode.values())
    for (const r of reasons) histogram.set(r, (histogram.get(r) ?? 0) + 1);
  const parts = [...histogram].map(([r, n]) => `${n} ${r}`).sort();
  return `0/${totalNodes} nodes are available: ${parts.join(', ')}.`;
}
