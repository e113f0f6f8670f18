import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKedgeError } from '../../lib/errors.ts';
import {
  type Pod,
  podChangeMatters,
  podTemplateHash,
  resolveFenceposts,
  scaledValue,
  templatesEqualIgnoringHash,
} from './common.ts';
import { maxSurge, maxUnavailable, newRSNewReplicas } from './deployment.ts';

describe('int-or-percent and fenceposts', () => {
  it('rounds like Kubernetes: surge up, unavailable down', () => {
    assert.deepEqual(resolveFenceposts('25%', '25%', 10), { surge: 3, unavailable: 2 });
    assert.deepEqual(resolveFenceposts('25%', '25%', 3), { surge: 1, unavailable: 0 });
    assert.deepEqual(resolveFenceposts(0, 0, 5), { surge: 0, unavailable: 1 });
    assert.deepEqual(resolveFenceposts('0%', '0%', 1), { surge: 0, unavailable: 1 });
    assert.equal(scaledValue('50%', 5, true), 3);
    assert.equal(scaledValue('50%', 5, false), 2);
    assert.equal(scaledValue(2, 100, false), 2);
  });
  it('rejects values that are neither ints nor percentages', () => {
    assert.throws(
      () => scaledValue('ten', 3, true),
      (e) => isKedgeError(e, 'KEDGE_WORKLOAD_INVALID') && /"ten"/.test(e.message),
    );
  });
  it('percentages stay within [0, total] and never allow a stalled rollout', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 1000 }),
        (s, u, n) => {
          const { surge, unavailable } = resolveFenceposts(`${s}%`, `${u}%`, n);
          assert.ok(surge >= 0 && surge <= n && unavailable >= 0 && unavailable <= Math.max(1, n));
          assert.ok(surge + unavailable > 0);
        },
      ),
    );
  });
  it('a rolling update never asks for more than replicas + maxSurge pods', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 50 }),
        fc.integer({ min: 0, max: 100 }),
        fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 4 }),
        fc.integer({ min: 0, max: 60 }),
        (replicas, surgePct, olds, current) => {
          const d = {
            metadata: {},
            spec: {
              replicas,
              strategy: { rollingUpdate: { maxSurge: `${surgePct}%`, maxUnavailable: '25%' } },
            },
          };
          const newRS = { metadata: {}, spec: { replicas: Math.min(current, replicas) } };
          const all = [...olds.map((r) => ({ metadata: {}, spec: { replicas: r } })), newRS];
          const total = all.reduce((n, rs) => n + rs.spec.replicas, 0);
          const next = newRSNewReplicas(d, all, newRS);
          assert.ok(next >= newRS.spec.replicas && next <= replicas);
          if (next > newRS.spec.replicas)
            assert.ok(total - newRS.spec.replicas + next <= replicas + maxSurge(d));
          assert.ok(maxUnavailable(d) <= replicas);
        },
      ),
    );
  });
});

describe('pod-template-hash', () => {
  const template = {
    metadata: { labels: { app: 'web' } },
    spec: { containers: [{ name: 'c', image: 'a:1' }] },
  };
  it('ignores key order, empty values and its own label; changes with the template and collisions', () => {
    const h = podTemplateHash(template);
    assert.match(h, /^[bcdfghjklmnpqrstvwxz2456789]{6,10}$/);
    const reordered = {
      spec: { containers: [{ image: 'a:1', name: 'c' }], volumes: [] },
      metadata: { labels: { app: 'web', 'pod-template-hash': h } },
    };
    assert.equal(podTemplateHash(reordered), h);
    assert.ok(templatesEqualIgnoringHash(template, reordered));
    assert.notEqual(podTemplateHash({ ...template, spec: { containers: [{ name: 'c', image: 'a:2' }] } }), h);
    assert.notEqual(podTemplateHash(template, 1), h);
  });
});

describe('podChangeMatters', () => {
  const base: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'p',
      namespace: 'default',
      labels: { app: 'web' },
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: 'u1', controller: true },
      ],
    },
    spec: { containers: [] },
    status: { phase: 'Pending' },
  };
  const edit = (fn: (p: Pod) => void): Pod => {
    const p = structuredClone(base);
    fn(p);
    return p;
  };
  it('ignores a binding and status churn that moves no count', () => {
    const bound = edit((p) => {
      p.spec = { ...p.spec, nodeName: 'edge-1' };
    });
    assert.equal(podChangeMatters(base, bound), false);
    const churn = edit((p) => {
      p.metadata.resourceVersion = '9';
      p.status = { phase: 'Pending', containerStatuses: [{ restartCount: 0 }] };
    });
    assert.equal(podChangeMatters(base, churn), false);
  });
  it('counts a binding when asked to (DaemonSets place pods per node)', () => {
    const bound = edit((p) => {
      p.spec = { ...p.spec, nodeName: 'edge-1' };
    });
    assert.equal(podChangeMatters(base, bound, true), true);
  });
  it('sees labels, owners, deletion, phase and readiness change', () => {
    const changes: Array<(p: Pod) => void> = [
      (p) => {
        p.metadata.labels = { app: 'other' };
      },
      (p) => {
        p.metadata.labels = { app: 'web', extra: 'x' };
      },
      (p) => {
        delete p.metadata.ownerReferences;
      },
      (p) => {
        p.metadata.deletionTimestamp = '2024-01-01T00:00:00Z';
      },
      (p) => {
        p.status = { phase: 'Running' };
      },
      (p) => {
        p.status = { phase: 'Pending', conditions: [{ type: 'Ready', status: 'True' }] };
      },
    ];
    for (const change of changes) assert.equal(podChangeMatters(base, edit(change)), true);
    const ready = edit((p) => {
      p.status = {
        phase: 'Running',
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: 'a' }],
      };
    });
    const readyAgain = edit((p) => {
      p.status = {
        phase: 'Running',
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: 'b' }],
      };
    });
    assert.equal(podChangeMatters(ready, readyAgain), true);
  });
});
