import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../api/meta.ts';
import { type NodeSpec, type PodInfo, parseNode, parsePod } from './model.ts';
import {
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
  matchesNodeRequirement,
  type NodeInfo,
  newNodeInfo,
  normalizeByMax,
  normalizeMinMax,
  type PlacedPod,
  Reasons,
  scoreBalancedAllocation,
  scoreInterPodAffinity,
  scoreLeastAllocated,
  scoreNodeAffinity,
  toleratesTaint,
} from './plugins.ts';

function mkPod(spec: Record<string, unknown> = {}, meta: Partial<KubeObject['metadata']> = {}): PodInfo {
  return parsePod({
    metadata: { name: meta.name ?? 'p', namespace: 'default', ...meta },
    spec: { containers: [{ name: 'c' }], ...spec },
  });
}

function mkNode(
  name: string,
  o: {
    labels?: Record<string, string>;
    taints?: unknown[];
    unschedulable?: boolean;
    alloc?: Record<string, string>;
  } = {},
): NodeSpec {
  return parseNode({
    metadata: { name, labels: o.labels ?? {} },
    spec: { taints: o.taints ?? [], unschedulable: o.unschedulable ?? false },
    status: {
      allocatable: o.alloc ?? { cpu: '2', memory: '4Gi', pods: '10' },
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  });
}

function withPods(spec: NodeSpec, pods: PodInfo[]): NodeInfo {
  const info = newNodeInfo(spec.name, spec);
  for (const p of pods) {
    info.podCount++;
    for (const [r, v] of p.requests) info.requested.set(r, (info.requested.get(r) ?? 0) + v);
    info.nonZeroMilliCpu += p.nonZeroMilliCpu;
    info.nonZeroMemory += p.nonZeroMemory;
    for (const hp of p.hostPorts) info.usedPorts.set(`${hp.protocol}/${hp.ip}/${hp.port}`, 1);
  }
  return info;
}

const requests = (r: Record<string, string>) => ({ containers: [{ name: 'c', resources: { requests: r } }] });

describe('taints and tolerations', () => {
  const taint = { key: 'k', value: 'v', effect: 'NoSchedule' } as const;
  it('matches tolerations like Kubernetes', () => {
    const t = (o: Partial<{ key: string; operator: 'Exists' | 'Equal'; value: string; effect: string }>) => ({
      key: '',
      operator: 'Equal' as const,
      value: '',
      effect: '',
      ...o,
    });
    assert.equal(toleratesTaint(t({ key: 'k', value: 'v' }), taint), true);
    assert.equal(toleratesTaint(t({ key: 'k', value: 'w' }), taint), false);
    assert.equal(toleratesTaint(t({ key: 'k', operator: 'Exists' }), taint), true);
    assert.equal(
      toleratesTaint(t({ operator: 'Exists' }), taint),
      true,
      'empty key + Exists tolerates everything',
    );
    assert.equal(toleratesTaint(t({ key: 'k', operator: 'Exists', effect: 'NoExecute' }), taint), false);
    assert.equal(toleratesTaint(t({ key: 'k', value: 'v', effect: 'NoSchedule' }), taint), true);
  });

  it('filters NoSchedule and NoExecute, not PreferNoSchedule', () => {
    const node = mkNode('n', {
      taints: [
        { key: 'soft', effect: 'PreferNoSchedule' },
        { key: 'hard', value: 'x', effect: 'NoExecute' },
      ],
    });
    assert.equal(filterTaints(mkPod(), node), 'node(s) had untolerated taint {hard: x}');
    const tolerant = mkPod({ tolerations: [{ key: 'hard', operator: 'Exists' }] });
    assert.equal(filterTaints(tolerant, node), undefined);
    assert.equal(countIntolerablePreferNoSchedule(tolerant, node), 1);
    const softTolerant = mkPod({
      tolerations: [{ key: 'soft', operator: 'Exists', effect: 'PreferNoSchedule' }],
    });
    assert.equal(countIntolerablePreferNoSchedule(softTolerant, node), 0);
  });

  it('keeps pods off unschedulable nodes unless they tolerate the unschedulable taint', () => {
    const node = mkNode('n', { unschedulable: true });
    assert.equal(filterUnschedulable(mkPod(), node), Reasons.unschedulable);
    const p = mkPod({
      tolerations: [{ key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' }],
    });
    assert.equal(filterUnschedulable(p, node), undefined);
  });
});

describe('node affinity', () => {
  const labels = { zone: 'a', cores: '8', gpu: '' };
  const req = (
    key: string,
    operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt',
    values: string[] = [],
  ) => ({
    key,
    operator,
    values,
  });
  it('evaluates every operator', () => {
    assert.equal(matchesNodeRequirement(req('zone', 'In', ['a', 'b']), labels), true);
    assert.equal(matchesNodeRequirement(req('zone', 'In', ['b']), labels), false);
    assert.equal(matchesNodeRequirement(req('zone', 'NotIn', ['b']), labels), true);
    assert.equal(matchesNodeRequirement(req('missing', 'NotIn', ['b']), labels), true);
    assert.equal(matchesNodeRequirement(req('gpu', 'Exists'), labels), true);
    assert.equal(matchesNodeRequirement(req('gpu', 'DoesNotExist'), labels), false);
    assert.equal(matchesNodeRequirement(req('cores', 'Gt', ['4']), labels), true);
    assert.equal(matchesNodeRequirement(req('cores', 'Lt', ['4']), labels), false);
    assert.equal(matchesNodeRequirement(req('cores', 'Gt', ['x']), labels), false);
    assert.equal(matchesNodeRequirement(req('zone', 'Gt', ['1']), labels), false);
    assert.equal(matchesNodeRequirement(req('cores', 'Gt', ['1', '2']), labels), false);
  });

  it('ANDs nodeSelector with required terms, ORs terms, and matches metadata.name fields', () => {
    const node = mkNode('edge-1', { labels: { zone: 'a' } });
    const affinity = (terms: unknown[]) => ({
      affinity: {
        nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } },
      },
    });
    assert.equal(filterNodeAffinity(mkPod({ nodeSelector: { zone: 'a' } }), node), undefined);
    assert.equal(filterNodeAffinity(mkPod({ nodeSelector: { zone: 'b' } }), node), Reasons.nodeAffinity);
    const byName = affinity([
      { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['edge-1'] }] },
    ]);
    assert.equal(filterNodeAffinity(mkPod(byName), node), undefined);
    const otherName = affinity([
      { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['edge-2'] }] },
    ]);
    assert.equal(filterNodeAffinity(mkPod(otherName), node), Reasons.nodeAffinity);
    const orTerms = affinity([
      { matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] },
      { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] },
    ]);
    assert.equal(filterNodeAffinity(mkPod(orTerms), node), undefined);
    assert.equal(
      filterNodeAffinity(mkPod(affinity([{}])), node),
      Reasons.nodeAffinity,
      'an empty term matches nothing',
    );
    assert.equal(
      filterNodeAffinity(mkPod(affinity([])), node),
      Reasons.nodeAffinity,
      'no terms match nothing',
    );
    const both = { ...orTerms, nodeSelector: { zone: 'b' } };
    assert.equal(filterNodeAffinity(mkPod(both), node), Reasons.nodeAffinity);
  });

  it('scores preferred terms by summed weight', () => {
    const pod = mkPod({
      affinity: {
        nodeAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            {
              weight: 10,
              preference: { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] },
            },
            { weight: 5, preference: { matchExpressions: [{ key: 'ssd', operator: 'Exists' }] } },
          ],
        },
      },
    });
    assert.equal(scoreNodeAffinity(pod, mkNode('x', { labels: { zone: 'a', ssd: '1' } })), 15);
    assert.equal(scoreNodeAffinity(pod, mkNode('y', { labels: { ssd: '1' } })), 5);
    assert.equal(scoreNodeAffinity(pod, mkNode('z')), 0);
  });
});

describe('resources', () => {
  it('reports every insufficient resource and the pod count', () => {
    const spec = mkNode('n', { alloc: { cpu: '1', memory: '1Gi', pods: '1', 'example.com/x': '2' } });
    const placed = mkPod(requests({ cpu: '500m', memory: '512Mi' }));
    const info = withPods(spec, [placed]);
    const pod = mkPod(requests({ cpu: '600m', memory: '256Mi', 'example.com/x': '3', 'example.com/y': '1' }));
    assert.deepEqual(filterResources(pod, info, spec), [
      Reasons.tooManyPods,
      'Insufficient cpu',
      'Insufficient example.com/x',
      'Insufficient example.com/y',
    ]);
    const fits = mkPod(requests({ cpu: '500m', memory: '512Mi' }));
    const roomy = mkNode('m', { alloc: { cpu: '1', memory: '1Gi', pods: '2' } });
    assert.deepEqual(filterResources(fits, withPods(roomy, [placed]), roomy), []);
  });

  it('a node that reports no pod capacity takes no pods (as in Kubernetes)', () => {
    const spec = mkNode('n', { alloc: { cpu: '1' } });
    assert.deepEqual(filterResources(mkPod(), withPods(spec, []), spec), [Reasons.tooManyPods]);
  });

  it('least allocated prefers emptier nodes; balanced prefers even use', () => {
    const spec = mkNode('n', { alloc: { cpu: '1', memory: '1Gi', pods: '10' } });
    const pod = mkPod(requests({ cpu: '250m', memory: '256Mi' }));
    // (1000-250)/1000 = 75, (1Gi-256Mi)/1Gi = 75
    assert.equal(scoreLeastAllocated(pod, withPods(spec, []), spec), 75);
    assert.equal(scoreLeastAllocated(pod, withPods(spec, [pod]), spec), 50);
    assert.equal(scoreBalancedAllocation(pod, withPods(spec, []), spec), 100);
    const cpuHeavy = mkPod(requests({ cpu: '1', memory: '1Mi' }));
    assert.ok(scoreBalancedAllocation(cpuHeavy, withPods(spec, []), spec) < 60);
  });
});

describe('host ports', () => {
  const withPort = (port: number, hostIP?: string) =>
    mkPod({
      containers: [
        { name: 'c', ports: [{ containerPort: 80, hostPort: port, ...(hostIP ? { hostIP } : {}) }] },
      ],
    });
  it('conflicts on the same port unless both bind different specific IPs', () => {
    const spec = mkNode('n');
    assert.equal(filterPorts(withPort(8080), withPods(spec, [withPort(8080)])), Reasons.ports);
    assert.equal(filterPorts(withPort(8081), withPods(spec, [withPort(8080)])), undefined);
    assert.equal(
      filterPorts(withPort(8080, '10.0.0.1'), withPods(spec, [withPort(8080, '10.0.0.2')])),
      undefined,
    );
    assert.equal(filterPorts(withPort(8080, '10.0.0.1'), withPods(spec, [withPort(8080)])), Reasons.ports);
  });
});

describe('inter-pod affinity', () => {
  const zoneA = mkNode('a1', { labels: { zone: 'a', host: 'a1' } });
  const zoneB = mkNode('b1', { labels: { zone: 'b', host: 'b1' } });
  const placed = (pod: PodInfo, node: NodeSpec): PlacedPod => ({ pod, nodeLabels: node.labels });
  const term = (labels: Record<string, string>, topologyKey = 'zone') => ({
    labelSelector: { matchLabels: labels },
    topologyKey,
  });
  const web = mkPod({}, { name: 'web-0', labels: { app: 'web' } });

  it('required affinity needs a matching pod in the same topology', () => {
    const pod = mkPod({
      affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term({ app: 'web' })] } },
    });
    const state = computeAffinityState(pod, [placed(web, zoneA)], []);
    assert.equal(filterInterPodAffinity(pod, zoneA, state), undefined);
    assert.equal(filterInterPodAffinity(pod, zoneB, state), Reasons.affinity);
    assert.equal(filterInterPodAffinity(pod, mkNode('nolabel'), state), Reasons.affinity);
  });

  it('the first pod of a self-affine group may go anywhere', () => {
    const pod = mkPod(
      {
        affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term({ app: 'db' })] } },
      },
      { labels: { app: 'db' } },
    );
    const state = computeAffinityState(pod, [placed(web, zoneA)], []);
    assert.equal(filterInterPodAffinity(pod, zoneB, state), undefined);
  });

  it('required anti-affinity avoids topologies holding a match, and placed pods anti-affinity is symmetric', () => {
    const pod = mkPod({
      affinity: {
        podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term({ app: 'web' })] },
      },
    });
    const state = computeAffinityState(pod, [placed(web, zoneA)], []);
    assert.equal(filterInterPodAffinity(pod, zoneA, state), Reasons.antiAffinity);
    assert.equal(filterInterPodAffinity(pod, zoneB, state), undefined);

    const loner = mkPod(
      {
        affinity: {
          podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term({ app: 'web' }, 'host')] },
        },
      },
      { name: 'loner' },
    );
    const state2 = computeAffinityState(web, [], [placed(loner, zoneB)]);
    assert.equal(filterInterPodAffinity(web, zoneB, state2), Reasons.existingAntiAffinity);
    assert.equal(filterInterPodAffinity(web, zoneA, state2), undefined);
  });

  it('terms look only in their namespaces', () => {
    const other = mkPod({}, { name: 'x', namespace: 'other', labels: { app: 'web' } });
    const pod = mkPod({
      affinity: {
        podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term({ app: 'web' })] },
      },
    });
    const state = computeAffinityState(pod, [placed(other, zoneA)], []);
    assert.equal(filterInterPodAffinity(pod, zoneA, state), undefined);
  });

  it('scores preferred terms per topology, both directions', () => {
    const pod = mkPod(
      {
        affinity: {
          podAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              { weight: 10, podAffinityTerm: term({ app: 'web' }) },
            ],
          },
          podAntiAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              { weight: 3, podAffinityTerm: term({ app: 'batch' }) },
            ],
          },
        },
      },
      { labels: { app: 'me' } },
    );
    const batch = mkPod({}, { name: 'batch', labels: { app: 'batch' } });
    const likesMe = mkPod(
      {
        affinity: {
          podAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              { weight: 7, podAffinityTerm: term({ app: 'me' }) },
            ],
          },
        },
      },
      { name: 'fan' },
    );
    const scores = computeAffinityScores(
      pod,
      [placed(web, zoneA), placed(batch, zoneA)],
      [placed(likesMe, zoneB)],
    );
    assert.equal(scoreInterPodAffinity(zoneA, scores), 10 - 3);
    assert.equal(scoreInterPodAffinity(zoneB, scores), 7);
  });
});

describe('normalization and messages', () => {
  it('normalizes like Kubernetes', () => {
    assert.deepEqual(normalizeByMax([0, 5, 10], false), [0, 50, 100]);
    assert.deepEqual(normalizeByMax([0, 5, 10], true), [100, 50, 0]);
    assert.deepEqual(normalizeByMax([0, 0], true), [100, 100]);
    assert.deepEqual(normalizeMinMax([-3, 0, 7]), [0, 30, 100]);
    assert.deepEqual(normalizeMinMax([4, 4]), [0, 0]);
  });

  it('words the fit error like Kubernetes', () => {
    const reasons = new Map([
      ['n1', [Reasons.nodeAffinity]],
      ['n2', ['Insufficient cpu']],
      ['n3', ['Insufficient cpu', 'Insufficient memory']],
    ]);
    assert.equal(
      fitErrorMessage(3, reasons),
      "0/3 nodes are available: 1 Insufficient memory, 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu.",
    );
    assert.equal(fitErrorMessage(0, new Map()), 'no nodes available to schedule pods');
  });
});
