import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SchedulerCache } from './cache.ts';
import { type PodInfo, parseNode, parsePod } from './model.ts';

const node = (name: string) =>
  parseNode({
    metadata: { name, labels: { host: name } },
    status: {
      allocatable: { cpu: '4', memory: '8Gi', pods: '100' },
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  });

function pod(
  name: string,
  nodeName: string,
  cpuMilli: number,
  opts: { owner?: string; phase?: string; port?: number } = {},
): PodInfo {
  return parsePod({
    metadata: {
      name,
      namespace: 'default',
      ...(opts.owner === undefined
        ? {}
        : {
            ownerReferences: [
              { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: opts.owner, controller: true },
            ],
          }),
    },
    spec: {
      nodeName,
      containers: [
        {
          name: 'c',
          resources: { requests: { cpu: `${cpuMilli}m`, memory: `${cpuMilli}Mi` } },
          ...(opts.port === undefined ? {} : { ports: [{ containerPort: 1, hostPort: opts.port }] }),
        },
      ],
    },
    status: { phase: opts.phase ?? 'Running' },
  });
}

describe('SchedulerCache', () => {
  it('keeps per-node totals as pods come, change and go', () => {
    const cache = new SchedulerCache();
    cache.upsertNode(node('n1'));
    cache.setPod(pod('a', 'n1', 100, { owner: 'o', port: 80 }));
    cache.setPod(pod('b', 'n1', 200, { owner: 'o' }));
    const n1 = cache.node('n1')!;
    assert.equal(n1.requested.get('cpu'), 300);
    assert.equal(n1.podCount, 2);
    assert.equal(n1.usedPorts.size, 1);
    assert.equal(cache.ownerCount('o', 'n1'), 2);
    cache.setPod(pod('b', 'n1', 50, { owner: 'o' }));
    assert.equal(n1.requested.get('cpu'), 150);
    cache.setPod(pod('a', 'n1', 100, { owner: 'o', phase: 'Succeeded', port: 80 }));
    assert.equal(n1.requested.get('cpu'), 50);
    assert.equal(n1.usedPorts.size, 0);
    assert.equal(cache.ownerCount('o', 'n1'), 1);
    cache.removePod('default/b');
    assert.equal(n1.podCount, 0);
    assert.equal(n1.requested.size, 0);
  });

  it('counts assumed pods until confirmed or forgotten', () => {
    const cache = new SchedulerCache();
    cache.upsertNode(node('n1'));
    const p = pod('a', '', 500);
    cache.assume(p, 'n1');
    assert.equal(cache.isAssumed('default/a'), true);
    assert.equal(cache.node('n1')!.requested.get('cpu'), 500);
    cache.forget('default/a');
    assert.equal(cache.node('n1')!.requested.size, 0);
    cache.assume(p, 'n1');
    cache.setPod(pod('a', 'n1', 500));
    assert.equal(cache.isAssumed('default/a'), false);
    cache.forget('default/a');
    assert.equal(cache.node('n1')!.requested.get('cpu'), 500, 'a confirmed pod is not forgotten');
  });

  it('keeps a deleted node while pods still name it, out of the node list', () => {
    const cache = new SchedulerCache();
    cache.upsertNode(node('n1'));
    cache.upsertNode(node('n2'));
    cache.setPod(pod('a', 'n1', 100));
    cache.removeNode('n1');
    assert.deepEqual(
      cache.nodes.map((n) => n.name),
      ['n2'],
    );
    assert.equal(cache.node('n1')?.podCount, 1);
    cache.removePod('default/a');
    assert.equal(cache.node('n1'), undefined);
    cache.upsertNode(node('n1'));
    assert.deepEqual(cache.nodes.map((n) => n.name).sort(), ['n1', 'n2']);
  });

  it('totals always equal a recount of the pods (property)', () => {
    const names = ['n0', 'n1', 'n2'];
    const op = fc.oneof(
      fc.record({
        t: fc.constant('set' as const),
        pod: fc.integer({ min: 0, max: 7 }),
        node: fc.constantFrom(...names, ''),
        cpu: fc.integer({ min: 0, max: 900 }),
        terminal: fc.boolean(),
      }),
      fc.record({
        t: fc.constant('assume' as const),
        pod: fc.integer({ min: 0, max: 7 }),
        node: fc.constantFrom(...names),
        cpu: fc.integer({ min: 1, max: 900 }),
      }),
      fc.record({ t: fc.constant('forget' as const), pod: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ t: fc.constant('remove' as const), pod: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ t: fc.constant('removeNode' as const), node: fc.constantFrom(...names) }),
      fc.record({ t: fc.constant('addNode' as const), node: fc.constantFrom(...names) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const cache = new SchedulerCache();
        for (const n of names) cache.upsertNode(node(n));
        // The model: where each pod is and what it requests.
        const model = new Map<string, { node: string; cpu: number }>();
        const assumed = new Set<string>();
        for (const o of ops) {
          const key = 'pod' in o ? `default/p${o.pod}` : '';
          if (o.t === 'set') {
            cache.setPod(pod(`p${o.pod}`, o.node, o.cpu, o.terminal ? { phase: 'Failed' } : {}));
            assumed.delete(key);
            if (o.node === '' || o.terminal) model.delete(key);
            else model.set(key, { node: o.node, cpu: o.cpu });
          } else if (o.t === 'assume') {
            cache.assume(pod(`p${o.pod}`, '', o.cpu), o.node);
            model.set(key, { node: o.node, cpu: o.cpu });
            assumed.add(key);
          } else if (o.t === 'forget') {
            cache.forget(key);
            if (assumed.delete(key)) model.delete(key);
          } else if (o.t === 'remove') {
            cache.removePod(key);
            assumed.delete(key);
            model.delete(key);
          } else if (o.t === 'removeNode') {
            cache.removeNode(o.node);
          } else {
            cache.upsertNode(node(o.node));
          }
        }
        for (const n of names) {
          const want = [...model.values()].filter((m) => m.node === n);
          const info = cache.node(n);
          const cpu = want.reduce((s, m) => s + m.cpu, 0);
          assert.equal(info?.podCount ?? 0, want.length, `pods on ${n}`);
          assert.equal(info?.requested.get('cpu') ?? 0, cpu, `cpu on ${n}`);
          assert.equal(
            info?.nonZeroMilliCpu ?? 0,
            want.reduce((s, m) => s + (m.cpu === 0 ? 100 : m.cpu), 0),
          );
        }
        assert.equal(cache.podCount, model.size);
      }),
    );
  });
});
