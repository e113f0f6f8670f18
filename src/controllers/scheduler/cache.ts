/**
 * The scheduler's view of the cluster: nodes with the running totals of the pods placed on them,
 * updated incrementally on every pod and node change (never by rescanning pods), plus the pods the
 * scheduler has bound but not yet seen come back from the watch ("assumed").
 */
import { type NodeSpec, PODS, type PodInfo } from './model.ts';
import { type NodeInfo, newNodeInfo, type PlacedPod, portKeys } from './plugins.ts';

function hasAffinity(p: PodInfo): boolean {
  return (
    p.requiredAffinity.length > 0 ||
    p.requiredAntiAffinity.length > 0 ||
    p.preferredAffinity.length > 0 ||
    p.preferredAntiAffinity.length > 0
  );
}

const EMPTY_COUNTS: ReadonlyMap<string, number> = new Map();

export class SchedulerCache {
  readonly #nodes = new Map<string, NodeInfo>();
  /** Nodes that exist (have a spec), in a stable order for round-robin sampling. */
  readonly #list: NodeInfo[] = [];
  readonly #listIndex = new Map<string, number>();
  /** Every placed pod by key, and where it sits. */
  readonly #pods = new Map<string, PodInfo>();
  readonly #assumed = new Set<string>();
  readonly #byNamespace = new Map<string, Map<string, PodInfo>>();
  readonly #withAffinity = new Map<string, PodInfo>();
  readonly #withAntiAffinity = new Map<string, PodInfo>();
  /** owner uid → node name → pods of that owner there. */
  readonly #owners = new Map<string, Map<string, number>>();

  /** Nodes that exist, in round-robin order. Do not mutate. */
  get nodes(): readonly NodeInfo[] {
    return this.#list;
  }

  get nodeCount(): number {
    return this.#list.length;
  }

  get podCount(): number {
    return this.#pods.size;
  }

  node(name: string): NodeInfo | undefined {
    return this.#nodes.get(name);
  }

  pod(key: string): PodInfo | undefined {
    return this.#pods.get(key);
  }

  isAssumed(key: string): boolean {
    return this.#assumed.has(key);
  }

  /** Add or replace a node's spec; its pod totals stay. */
  upsertNode(spec: NodeSpec): void {
    let info = this.#nodes.get(spec.name);
    if (info === undefined) {
      info = newNodeInfo(spec.name, spec);
      this.#nodes.set(spec.name, info);
    } else {
      info.spec = spec;
    }
    if (!this.#listIndex.has(spec.name)) {
      this.#listIndex.set(spec.name, this.#list.length);
      this.#list.push(info);
    }
  }

  removeNode(name: string): void {
    const info = this.#nodes.get(name);
    if (info === undefined) return;
    const i = this.#listIndex.get(name);
    if (i !== undefined) {
      const last = this.#list.pop()!;
      if (last !== info) {
        this.#list[i] = last;
        this.#listIndex.set(last.name, i);
      }
      this.#listIndex.delete(name);
    }
    // Pods still bound to it keep counting (as Kubernetes does) until they go; the totals stay.
    info.spec = undefined;
    if (info.pods.size === 0) this.#nodes.delete(name);
  }

  /** Place (or re-place) a pod that has a node; replaces an assumed copy. Terminal pods are removed. */
  setPod(pod: PodInfo): void {
    const prev = this.#pods.get(pod.key);
    if (prev !== undefined) this.#remove(prev);
    this.#assumed.delete(pod.key);
    if (pod.nodeName === '' || pod.terminal) return;
    this.#add(pod);
  }

  /** Count a pod on a node before its binding is confirmed. */
  assume(pod: PodInfo, nodeName: string): void {
    const placed: PodInfo = { ...pod, nodeName };
    const prev = this.#pods.get(pod.key);
    if (prev !== undefined) this.#remove(prev);
    this.#add(placed);
    this.#assumed.add(pod.key);
  }

  /** Drop an assumed pod whose binding failed (a confirmed one stays). */
  forget(key: string): void {
    if (!this.#assumed.has(key)) return;
    this.#assumed.delete(key);
    const prev = this.#pods.get(key);
    if (prev !== undefined) this.#remove(prev);
  }

  removePod(key: string): void {
    this.#assumed.delete(key);
    const prev = this.#pods.get(key);
    if (prev !== undefined) this.#remove(prev);
  }

  #add(pod: PodInfo): void {
    this.#pods.set(pod.key, pod);
    let info = this.#nodes.get(pod.nodeName);
    if (info === undefined) {
      info = newNodeInfo(pod.nodeName);
      this.#nodes.set(pod.nodeName, info);
    }
    info.pods.set(pod.key, pod);
    info.podCount++;
    for (const [r, v] of pod.requests)
      if (r !== PODS) info.requested.set(r, (info.requested.get(r) ?? 0) + v);
    info.nonZeroMilliCpu += pod.nonZeroMilliCpu;
    info.nonZeroMemory += pod.nonZeroMemory;
    for (const p of pod.hostPorts) {
      const k = portKeys(p);
      info.usedPorts.set(k, (info.usedPorts.get(k) ?? 0) + 1);
    }
    let ns = this.#byNamespace.get(pod.namespace);
    if (ns === undefined) {
      ns = new Map();
      this.#byNamespace.set(pod.namespace, ns);
    }
    ns.set(pod.key, pod);
    if (hasAffinity(pod)) this.#withAffinity.set(pod.key, pod);
    if (pod.requiredAntiAffinity.length > 0) this.#withAntiAffinity.set(pod.key, pod);
    if (pod.ownerUid !== '') {
      let byNode = this.#owners.get(pod.ownerUid);
      if (byNode === undefined) {
        byNode = new Map();
        this.#owners.set(pod.ownerUid, byNode);
      }
      byNode.set(pod.nodeName, (byNode.get(pod.nodeName) ?? 0) + 1);
    }
  }

  #remove(pod: PodInfo): void {
    this.#pods.delete(pod.key);
    const info = this.#nodes.get(pod.nodeName);
    if (info?.pods.delete(pod.key)) {
      info.podCount--;
      for (const [r, v] of pod.requests) {
        if (r === PODS) continue;
        const left = (info.requested.get(r) ?? 0) - v;
        if (left > 0) info.requested.set(r, left);
        else info.requested.delete(r);
      }
      info.nonZeroMilliCpu -= pod.nonZeroMilliCpu;
      info.nonZeroMemory -= pod.nonZeroMemory;
      for (const p of pod.hostPorts) {
        const k = portKeys(p);
        const n = (info.usedPorts.get(k) ?? 0) - 1;
        if (n > 0) info.usedPorts.set(k, n);
        else info.usedPorts.delete(k);
      }
      if (info.spec === undefined && info.pods.size === 0) this.#nodes.delete(info.name);
    }
    const ns = this.#byNamespace.get(pod.namespace);
    ns?.delete(pod.key);
    if (ns?.size === 0) this.#byNamespace.delete(pod.namespace);
    this.#withAffinity.delete(pod.key);
    this.#withAntiAffinity.delete(pod.key);
    if (pod.ownerUid !== '') {
      const byNode = this.#owners.get(pod.ownerUid);
      if (byNode !== undefined) {
        const n = (byNode.get(pod.nodeName) ?? 0) - 1;
        if (n > 0) byNode.set(pod.nodeName, n);
        else byNode.delete(pod.nodeName);
        if (byNode.size === 0) this.#owners.delete(pod.ownerUid);
      }
    }
  }

  /** How many pods of this owner sit on the node. */
  ownerCount(ownerUid: string, nodeName: string): number {
    return this.#owners.get(ownerUid)?.get(nodeName) ?? 0;
  }

  /** Node name → pods of this owner there (empty when none). Do not mutate. */
  ownerCounts(ownerUid: string): ReadonlyMap<string, number> {
    return this.#owners.get(ownerUid) ?? EMPTY_COUNTS;
  }

  #placed(pod: PodInfo): PlacedPod | undefined {
    const labels = this.#nodes.get(pod.nodeName)?.spec?.labels;
    return labels === undefined ? undefined : { pod, nodeLabels: labels };
  }

  *#placedOf(pods: Iterable<PodInfo>): Generator<PlacedPod> {
    for (const p of pods) {
      const placed = this.#placed(p);
      if (placed !== undefined) yield placed;
    }
  }

  /** Placed pods in the given namespaces (every namespace when `all`). */
  podsIn(namespaces: ReadonlySet<string>, all: boolean): Iterable<PlacedPod> {
    if (all) return this.#placedOf(this.#pods.values());
    const self = this;
    return (function* () {
      for (const ns of namespaces) {
        const m = self.#byNamespace.get(ns);
        if (m !== undefined) yield* self.#placedOf(m.values());
      }
    })();
  }

  podsWithAffinity(): Iterable<PlacedPod> {
    return this.#placedOf(this.#withAffinity.values());
  }

  podsWithAntiAffinity(): Iterable<PlacedPod> {
    return this.#placedOf(this.#withAntiAffinity.values());
  }
}
