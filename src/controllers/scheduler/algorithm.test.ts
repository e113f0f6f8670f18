import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AlgorithmState,
  numFeasibleNodesToFind,
  schedulePod,
  seededRandom,
  selectHost,
} from './algorithm.ts';
import { SchedulerCache } from './cache.ts';
import { parseNode, parsePod } from './model.ts';
import { newNodeInfo } from './plugins.ts';

const node = (name: string, cpu = '4', labels: Record<string, string> = {}) =>
  parseNode({
    metadata: { name, labels },
    status: {
      allocatable: { cpu, memory: '8Gi', pods: '110' },
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  });

const pod = (name: string, spec: Record<string, unknown> = {}, nodeName = '') =>
  parsePod({
    metadata: { name, namespace: 'default' },
    spec: { containers: [{ name: 'c', resources: { requests: { cpu: '100m' } } }], nodeName, ...spec },
  });

const state = (seed = 1, pct = 0): AlgorithmState => ({
  nextStart: 0,
  random: seededRandom(seed),
  percentageOfNodesToScore: pct,
});

describe('numFeasibleNodesToFind', () => {
  it('follows Kubernetes: all below 100 nodes, adaptive share above, at least 5% and 100 nodes', () => {
    assert.equal(numFeasibleNodesToFind(50, 0), 50);
    assert.equal(numFeasibleNodesToFind(100, 0), 100);
    assert.equal(numFeasibleNodesToFind(1000, 0), 420);
    assert.equal(numFeasibleNodesToFind(5000, 0), 500);
    assert.equal(numFeasibleNodesToFind(10_000, 0), 500);
    assert.equal(numFeasibleNodesToFind(10_000, 30), 3000);
    assert.equal(numFeasibleNodesToFind(10_000, 100), 10_000);
    assert.equal(numFeasibleNodesToFind(150, 10), 100);
  });
});

describe('schedulePod', () => {
  it('reports why when nothing fits, counting every node', () => {
    const cache = new SchedulerCache();
    cache.upsertNode(node('a', '100m'));
    cache.upsertNode(node('b', '4', { zone: 'x' }));
    const r = schedulePod(pod('p', { nodeSelector: { zone: 'y' } }), cache, state());
    assert.equal(r.fit, false);
    assert.equal(
      !r.fit && r.message,
      "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
    );
    const r2 = schedulePod(pod('p', { nodeSelector: { zone: 'x' } }), cache, state());
    assert.deepEqual(r2.fit && r2.node, 'b');
    const empty = schedulePod(pod('p'), new SchedulerCache(), state());
    assert.equal(!empty.fit && empty.message, 'no nodes available to schedule pods');
  });

  it('samples: stops after enough feasible nodes, and the next decision starts where it stopped', () => {
    const cache = new SchedulerCache();
    for (let i = 0; i < 1000; i++) cache.upsertNode(node(`n${i}`));
    const st = state();
    const r = schedulePod(pod('p'), cache, st);
    assert.ok(r.fit);
    assert.equal(r.evaluated, 420);
    assert.equal(r.feasible, 420);
    assert.equal(st.nextStart, 420);
    schedulePod(pod('q'), cache, st);
    assert.equal(st.nextStart, 840);
    schedulePod(pod('r'), cache, st);
    assert.equal(st.nextStart, 260, 'wraps around');
  });

  it('scans every node when few fit', () => {
    const cache = new SchedulerCache();
    for (let i = 0; i < 500; i++) cache.upsertNode(node(`n${i}`, i === 499 ? '4' : '50m'));
    const r = schedulePod(pod('p'), cache, state());
    assert.ok(r.fit);
    assert.equal(r.node, 'n499');
    assert.equal(r.evaluated, 500);
  });

  it('prefers the emptier node', () => {
    const cache = new SchedulerCache();
    cache.upsertNode(node('busy'));
    cache.upsertNode(node('idle'));
    cache.setPod(pod('x', { containers: [{ name: 'c', resources: { requests: { cpu: '3' } } }] }, 'busy'));
    const r = schedulePod(pod('p'), cache, state());
    assert.ok(r.fit);
    assert.equal(r.node, 'idle');
  });

  it('prefers nodes without untolerated PreferNoSchedule taints', () => {
    const cache = new SchedulerCache();
    cache.upsertNode(
      parseNode({
        metadata: { name: 'soft' },
        spec: { taints: [{ key: 'k', effect: 'PreferNoSchedule' }] },
        status: {
          allocatable: { cpu: '8', memory: '16Gi', pods: '110' },
          conditions: [{ type: 'Ready', status: 'True' }],
        },
      }),
    );
    cache.upsertNode(node('plain'));
    for (let seed = 1; seed < 20; seed++) {
      const r = schedulePod(pod('p'), cache, state(seed));
      assert.ok(r.fit);
      assert.equal(r.node, 'plain');
    }
  });
});

describe('selectHost', () => {
  it('picks the best, and spreads ties evenly with a seeded random', () => {
    const nodes = ['a', 'b', 'c', 'd'].map((n) => newNodeInfo(n));
    assert.equal(selectHost(nodes, [1, 5, 3, 2], Math.random), 'b');
    const counts = new Map<string, number>();
    const random = seededRandom(7);
    for (let i = 0; i < 3000; i++) {
      const n = selectHost(nodes, [9, 9, 9, 1], random);
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
    assert.equal(counts.get('d'), undefined);
    for (const n of ['a', 'b', 'c'])
      assert.ok((counts.get(n) ?? 0) > 800, `${n} chosen ${counts.get(n)} times`);
  });

  it('the same seed gives the same choices', () => {
    const nodes = ['a', 'b', 'c'].map((n) => newNodeInfo(n));
    const run = (seed: number) => {
      const r = seededRandom(seed);
      return Array.from({ length: 20 }, () => selectHost(nodes, [1, 1, 1], r)).join('');
    };
    assert.equal(run(3), run(3));
    assert.notEqual(run(3), run(4));
  });
});
