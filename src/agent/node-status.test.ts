import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../lib/log.ts';
import { LocalStore } from './local-store.ts';
import { collectNodeStatus, NodeStatusReporter } from './node-status.ts';
import { Outbox } from './outbox.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-agent-node-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const GiB = 1024 ** 3;
const machine = (memFree: number) => ({
  cpus: 4,
  memTotal: 8 * GiB,
  memFree,
  diskTotal: 100 * GiB,
  diskFree: 50 * GiB,
});
const base = { nodeName: 'n1', dataDir: '/', runtimeVersion: 'fake://0.1', hostIP: '192.0.2.7' };

describe('node status', () => {
  it('reports capacity, addresses, nodeInfo and the four conditions', () => {
    const s = collectNodeStatus(base, undefined, new Date('2025-01-01T00:00:00Z'), machine(4 * GiB));
    assert.deepEqual(s['capacity'], {
      cpu: '4',
      memory: '8388608Ki',
      pods: '110',
      'ephemeral-storage': '104857600Ki',
    });
    assert.deepEqual((s['addresses'] as Array<{ type: string }>)[0], {
      type: 'InternalIP',
      address: '192.0.2.7',
    });
    const info = s['nodeInfo'] as Record<string, string>;
    assert.equal(info['kubeletVersion'], 'v1.32.0-kedge');
    assert.equal(info['containerRuntimeVersion'], 'fake://0.1');
    assert.ok(info['osImage'] !== '');
    const conditions = s['conditions'] as Array<{ type: string; status: string }>;
    assert.deepEqual(
      conditions.map((c) => [c.type, c.status]),
      [
        ['MemoryPressure', 'False'],
        ['DiskPressure', 'False'],
        ['PIDPressure', 'False'],
        ['Ready', 'True'],
      ],
    );
  });

  it('enqueues only when something besides heartbeat times changed', () => {
    const store = new LocalStore(join(dir, 'n.db'));
    const outbox = new Outbox(store);
    let t = Date.parse('2025-01-01T00:00:00Z');
    const reporter = new NodeStatusReporter({
      ...base,
      outbox,
      logger: silentLogger(),
      now: () => new Date(t),
    });
    assert.equal(reporter.check(machine(4 * GiB)), true);
    t += 60_000;
    assert.equal(reporter.check(machine(3 * GiB)), false);
    t += 60_000;
    assert.equal(reporter.check(machine(0.1 * GiB)), true, 'memory pressure is a change');
    const [item] = outbox.pending().map((p) => p.item);
    assert.ok(item?.kind === 'NodeStatus');
    const mem = (
      item.status['conditions'] as Array<{ type: string; status: string; lastTransitionTime: string }>
    )[0];
    assert.deepEqual([mem?.status, mem?.lastTransitionTime], ['True', '2025-01-01T00:02:00Z']);
    assert.equal(outbox.depth(), 1, 'the newer node status replaced the older one');
    store.close();
  });

  it('reports again when the server holds other conditions (regression: node stayed NotReady after a reconnect)', () => {
    const store = new LocalStore(join(dir, 'unknown.db'));
    const outbox = new Outbox(store);
    let t = Date.parse('2025-01-01T00:00:00Z');
    const reporter = new NodeStatusReporter({
      ...base,
      outbox,
      logger: silentLogger(),
      now: () => new Date(t),
    });
    reporter.start();
    try {
      const [first] = outbox.pending();
      assert.ok(first?.item.kind === 'NodeStatus');
      outbox.ack(first.seq);
      const node = (status: unknown, rev: number) => ({
        key: 'core/nodes//n1',
        revision: rev,
        object: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, status },
      });
      // The server holds what was reported: nothing to send.
      store.applyBatch(5, [node(first.item.status, 5)]);
      assert.equal(outbox.depth(), 0);
      // The lifecycle controller marked the node Unknown while it was cut off; the agent is back.
      t += 120_000;
      const unknown = {
        ...first.item.status,
        conditions: (first.item.status['conditions'] as Array<Record<string, unknown>>).map((c) => ({
          ...c,
          status: 'Unknown',
          reason: 'NodeStatusUnknown',
          lastTransitionTime: '2025-01-01T00:01:00Z',
        })),
      };
      store.applyBatch(6, [node(unknown, 6)]);
      const [again] = outbox.pending().map((p) => p.item);
      assert.ok(again?.kind === 'NodeStatus', 'the status must be reported again');
      const ready = (again.status['conditions'] as Array<Record<string, unknown>>).find(
        (c) => c['type'] === 'Ready',
      );
      assert.deepEqual([ready?.['status'], ready?.['lastTransitionTime']], ['True', '2025-01-01T00:02:00Z']);
    } finally {
      reporter.stop();
      store.close();
    }
  });
});
