import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../api/meta.ts';
import { nodeSchedulingFingerprint, parseNode, parsePod, podRequests } from './model.ts';

const c = (requests: Record<string, string>, extra: Record<string, unknown> = {}) => ({
  name: 'c',
  resources: { requests },
  ...extra,
});

describe('podRequests', () => {
  it('sums containers', () => {
    const r = podRequests({
      containers: [c({ cpu: '100m', memory: '64Mi' }), c({ cpu: '1', memory: '1Gi' })],
    });
    assert.deepEqual(Object.fromEntries(r), { cpu: 1100, memory: 64 * 2 ** 20 + 2 ** 30 });
  });

  it('takes the largest init container when it exceeds the containers', () => {
    const r = podRequests({
      containers: [c({ cpu: '100m' }), c({ cpu: '100m' })],
      initContainers: [c({ cpu: '500m' }), c({ cpu: '150m' })],
    });
    assert.equal(r.get('cpu'), 500);
  });

  it('adds sidecars (restartable init containers) to the containers and to later init containers', () => {
    const r = podRequests({
      containers: [c({ cpu: '100m' })],
      initContainers: [c({ cpu: '50m' }, { restartPolicy: 'Always' }), c({ cpu: '300m' })],
    });
    // running: 100m + 50m sidecar = 150m; init peak: 300m + 50m = 350m
    assert.equal(r.get('cpu'), 350);
    const r2 = podRequests({
      containers: [c({ cpu: '400m' })],
      initContainers: [c({ cpu: '50m' }, { restartPolicy: 'Always' }), c({ cpu: '300m' })],
    });
    assert.equal(r2.get('cpu'), 450);
  });

  it('adds overhead and uses limits where requests are absent', () => {
    const r = podRequests({
      containers: [{ name: 'c', resources: { limits: { cpu: '2', 'example.com/gpu': '1' } } }],
      overhead: { cpu: '250m' },
    });
    assert.deepEqual(Object.fromEntries(r), { cpu: 2250, 'example.com/gpu': 1 });
  });

  it('an explicit zero request wins over the limit; bad quantities count as nothing', () => {
    const r = podRequests({
      containers: [
        { name: 'c', resources: { requests: { cpu: '0', memory: 'lots' }, limits: { cpu: '1' } } },
      ],
    });
    assert.equal(r.size, 0);
  });
});

describe('parsePod', () => {
  const pod = (spec: Record<string, unknown>, meta: Partial<KubeObject['metadata']> = {}): KubeObject => ({
    metadata: { name: 'p', namespace: 'ns', uid: 'u', ...meta },
    spec,
  });

  it('reads scheduling fields and applies non-zero defaults for scoring', () => {
    const p = parsePod(pod({ containers: [{ name: 'a' }, c({ cpu: '1' })], nodeSelector: { a: 'b', n: 1 } }));
    assert.equal(p.key, 'ns/p');
    assert.equal(p.schedulerName, 'default-scheduler');
    assert.equal(p.nonZeroMilliCpu, 1100);
    assert.equal(p.nonZeroMemory, 2 * 200 * 2 ** 20);
    assert.deepEqual(p.nodeSelector, { a: 'b' });
    assert.equal(p.requiredNodeTerms, undefined);
  });

  it('notes the controlling owner, gates, deletion and terminal phases', () => {
    const p = parsePod(
      pod(
        { containers: [], schedulingGates: [{ name: 'wait' }] },
        {
          deletionTimestamp: '2025-01-01T00:00:00Z',
          ownerReferences: [
            { apiVersion: 'v1', kind: 'X', name: 'x', uid: 'not-controller' },
            { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: 'rs-1', controller: true },
          ],
        },
      ),
    );
    assert.equal(p.ownerUid, 'rs-1');
    assert.equal(p.gated, true);
    assert.equal(p.deleting, true);
    assert.equal(parsePod({ ...pod({}), status: { phase: 'Succeeded' } }).terminal, true);
  });

  it('defaults pod affinity terms to the pod namespace; a missing selector selects nothing', () => {
    const p = parsePod(
      pod({
        affinity: {
          podAntiAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'zone' }],
            preferredDuringSchedulingIgnoredDuringExecution: [
              { weight: 5, podAffinityTerm: { labelSelector: {}, namespaces: ['other'], topologyKey: 'h' } },
            ],
          },
        },
      }),
    );
    assert.deepEqual([...(p.requiredAntiAffinity[0]?.namespaces ?? [])], ['ns']);
    assert.equal(p.requiredAntiAffinity[0]?.selector.matchesNothing, true);
    assert.equal(p.preferredAntiAffinity[0]?.weight, 5);
    assert.deepEqual([...(p.preferredAntiAffinity[0]?.term.namespaces ?? [])], ['other']);
  });
});

describe('parseNode', () => {
  const node = (status: Record<string, unknown>, spec: Record<string, unknown> = {}): KubeObject => ({
    metadata: { name: 'n', labels: { a: 'b' } },
    spec,
    status,
  });

  it('reads allocatable (falling back to capacity) and keeps known taint effects', () => {
    const n = parseNode(
      node(
        {
          capacity: { cpu: '4', memory: '8Gi', pods: '110' },
          conditions: [{ type: 'Ready', status: 'True' }],
        },
        {
          taints: [
            { key: 'k', value: 'v', effect: 'NoSchedule' },
            { key: 'x', effect: 'Bogus' },
          ],
        },
      ),
    );
    assert.deepEqual(Object.fromEntries(n.allocatable), { cpu: 4000, memory: 8 * 2 ** 30, pods: 110 });
    assert.deepEqual(n.taints, [{ key: 'k', value: 'v', effect: 'NoSchedule' }]);
  });

  it('adds the not-ready or unreachable taint the lifecycle controller would add', () => {
    assert.deepEqual(parseNode(node({ conditions: [{ type: 'Ready', status: 'False' }] })).taints, [
      { key: 'node.kubernetes.io/not-ready', value: '', effect: 'NoSchedule' },
    ]);
    assert.deepEqual(parseNode(node({ conditions: [{ type: 'Ready', status: 'Unknown' }] })).taints, [
      { key: 'node.kubernetes.io/unreachable', value: '', effect: 'NoSchedule' },
    ]);
    assert.deepEqual(parseNode(node({})).taints, [
      { key: 'node.kubernetes.io/not-ready', value: '', effect: 'NoSchedule' },
    ]);
    // Already tainted by the lifecycle controller: nothing added.
    const tainted = parseNode(
      node(
        { conditions: [{ type: 'Ready', status: 'Unknown' }] },
        { taints: [{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' }] },
      ),
    );
    assert.equal(tainted.taints.length, 1);
  });

  it('fingerprints ignore heartbeats', () => {
    const a = parseNode(node({ conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: '1' }] }));
    const b = parseNode(node({ conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: '2' }] }));
    assert.equal(nodeSchedulingFingerprint(a), nodeSchedulingFingerprint(b));
    const c2 = parseNode(node({ conditions: [{ type: 'Ready', status: 'False' }] }));
    assert.notEqual(nodeSchedulingFingerprint(a), nodeSchedulingFingerprint(c2));
  });
});
