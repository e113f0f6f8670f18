/**
 * One scheduling decision: filter nodes (round-robin from where the last decision stopped, stopping
 * once enough feasible nodes are found, like Kubernetes' percentageOfNodesToScore), score the feasible
 * ones, pick the best, breaking ties at random. Synchronous and pure over the cache.
 */
import type { SchedulerCache } from './cache.ts';
import type { NodeSpec, PodInfo } from './model.ts';
import {
  type AffinityState,
  computeAffinityScores,
  computeAffinityState,
  countIntolerablePreferNoSchedule,
  filterInterPodAffinity,
  filterNodeAffinity,
  filterPorts,
  filterResources,
  filterTaints,
  filterUnschedulable,
  fitErrorMessage,
  type NodeInfo,
  normalizeByMax,
  normalizeMinMax,
  scoreBalancedAllocation,
  scoreInterPodAffinity,
  scoreLeastAllocated,
  scoreNodeAffinity,
} from './plugins.ts';

/** Weights of the scores, as Kubernetes' default profile has them. */
export const ScoreWeights = {
  nodeAffinity: 2,
  taintToleration: 3,
  leastAllocated: 1,
  balancedAllocation: 1,
  interPodAffinity: 2,
  spread: 2,
} as const;

export const MIN_FEASIBLE_NODES_TO_FIND = 100;
export const MIN_FEASIBLE_NODES_PERCENTAGE = 5;

/** How many feasible nodes to look for before scoring (Kubernetes' numFeasibleNodesToFind). */
export function numFeasibleNodesToFind(total: number, percentage: number): number {
  if (total < MIN_FEASIBLE_NODES_TO_FIND) return total;
  let pct = percentage;
  if (pct <= 0) pct = Math.max(MIN_FEASIBLE_NODES_PERCENTAGE, 50 - Math.floor(total / 125));
  if (pct >= 100) return total;
  const n = Math.floor((total * pct) / 100);
  return Math.max(n, MIN_FEASIBLE_NODES_TO_FIND);
}

export type ScheduleResult =
  | { readonly fit: true; readonly node: string; readonly evaluated: number; readonly feasible: number }
  | {
      readonly fit: false;
      readonly message: string;
      /** Per node, why it did not fit. */
      readonly reasons: ReadonlyMap<string, readonly string[]>;
    };

export interface AlgorithmState {
  /** Where the next decision starts in the node list. */
  nextStart: number;
  /** A number in [0, 1): tie-breaks. */
  readonly random: () => number;
  /** 0: adaptive, as Kubernetes; 1..100: that share of nodes. */
  readonly percentageOfNodesToScore: number;
}

/** Run every filter on one node; the reasons it does not fit (empty: fits). */
export function runFilters(
  pod: PodInfo,
  node: NodeInfo,
  spec: NodeSpec,
  affinity: AffinityState | undefined,
): readonly string[] {
  const r1 =
    filterUnschedulable(pod, spec) ??
    filterTaints(pod, spec) ??
    filterNodeAffinity(pod, spec) ??
    filterPorts(pod, node);
  if (r1 !== undefined) return [r1];
  const res = filterResources(pod, node, spec);
  if (res.length > 0) return res;
  if (affinity !== undefined) {
    const r = filterInterPodAffinity(pod, spec, affinity);
    if (r !== undefined) return [r];
  }
  return [];
}

function needsAffinityState(pod: PodInfo, cache: SchedulerCache): boolean {
  if (pod.requiredAffinity.length > 0 || pod.requiredAntiAffinity.length > 0) return true;
  for (const _ of cache.podsWithAntiAffinity()) return true;
  return false;
}

function termScope(
  pod: PodInfo,
  terms: readonly { namespaces: ReadonlySet<string>; allNamespaces: boolean }[],
) {
  const namespaces = new Set<string>();
  let all = false;
  for (const t of terms) {
    if (t.allNamespaces) all = true;
    for (const ns of t.namespaces) namespaces.add(ns);
  }
  if (namespaces.size === 0) namespaces.add(pod.namespace);
  return { namespaces, all };
}

/** Decide where a pod goes (or why it cannot go anywhere). */
export function schedulePod(pod: PodInfo, cache: SchedulerCache, state: AlgorithmState): ScheduleResult {
  const nodes = cache.nodes;
  const total = nodes.length;
  if (total === 0) return { fit: false, message: fitErrorMessage(0, new Map()), reasons: new Map() };

  let affinity: AffinityState | undefined;
  if (needsAffinityState(pod, cache)) {
    const scope = termScope(pod, [...pod.requiredAffinity, ...pod.requiredAntiAffinity]);
    affinity = computeAffinityState(
      pod,
      cache.podsIn(scope.namespaces, scope.all),
      cache.podsWithAntiAffinity(),
    );
  }

  const want = numFeasibleNodesToFind(total, state.percentageOfNodesToScore);
  const feasible: NodeInfo[] = [];
  const reasons = new Map<string, readonly string[]>();
  const start = state.nextStart % total;
  let evaluated = 0;
  for (; evaluated < total && feasible.length < want; evaluated++) {
    const node = nodes[(start + evaluated) % total]!;
    const spec = node.spec!;
    const why = runFilters(pod, node, spec, affinity);
    if (why.length === 0) feasible.push(node);
    else reasons.set(node.name, why);
  }
  state.nextStart = (start + evaluated) % total;
  if (feasible.length === 0) return { fit: false, message: fitErrorMessage(total, reasons), reasons };
  if (feasible.length === 1) return { fit: true, node: feasible[0]!.name, evaluated, feasible: 1 };

  const scores = scoreNodes(pod, feasible, cache);
  return {
    fit: true,
    node: selectHost(feasible, scores, state.random),
    evaluated,
    feasible: feasible.length,
  };
}

/** Weighted total score of each feasible node (same order). */
export function scoreNodes(pod: PodInfo, feasible: readonly NodeInfo[], cache: SchedulerCache): number[] {
  const n = feasible.length;
  const total = new Array<number>(n).fill(0);
  const add = (values: number[], weight: number): void => {
    for (let i = 0; i < n; i++) total[i]! += values[i]! * weight;
  };

  const least = new Array<number>(n);
  const balanced = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const node = feasible[i]!;
    least[i] = scoreLeastAllocated(pod, node, node.spec!);
    balanced[i] = scoreBalancedAllocation(pod, node, node.spec!);
  }
  add(least, ScoreWeights.leastAllocated);
  add(balanced, ScoreWeights.balancedAllocation);

  if (pod.preferredNodeTerms.length > 0) {
    add(
      normalizeByMax(
        feasible.map((node) => scoreNodeAffinity(pod, node.spec!)),
        false,
      ),
      ScoreWeights.nodeAffinity,
    );
  }
  const taints = feasible.map((node) => countIntolerablePreferNoSchedule(pod, node.spec!));
  add(normalizeByMax(taints, true), ScoreWeights.taintToleration);

  const scope = termScope(
    pod,
    [...pod.preferredAffinity, ...pod.preferredAntiAffinity].map((w) => w.term),
  );
  const topo = computeAffinityScores(
    pod,
    cache.podsIn(scope.namespaces, scope.all),
    cache.podsWithAffinity(),
  );
  if (topo.size > 0) {
    add(
      normalizeMinMax(feasible.map((node) => scoreInterPodAffinity(node.spec!, topo))),
      ScoreWeights.interPodAffinity,
    );
  }

  if (pod.ownerUid !== '') {
    add(
      normalizeByMax(
        feasible.map((node) => cache.ownerCount(pod.ownerUid, node.name)),
        true,
      ),
      ScoreWeights.spread,
    );
  }
  return total;
}

/** The highest score wins; among equals, each is equally likely (reservoir sampling). */
export function selectHost(
  feasible: readonly NodeInfo[],
  scores: readonly number[],
  random: () => number,
): string {
  let best = -Infinity;
  let chosen = '';
  let ties = 0;
  for (let i = 0; i < feasible.length; i++) {
    const s = scores[i]!;
    if (s > best) {
      best = s;
      chosen = feasible[i]!.name;
      ties = 1;
    } else if (s === best) {
      ties++;
      if (Math.floor(random() * ties) === 0) chosen = feasible[i]!.name;
    }
  }
  return chosen;
}

/** A small seeded PRNG (mulberry32): tie-breaks are reproducible for a given seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
