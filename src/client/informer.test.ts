import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestCluster, type TestCluster } from '../../test/harness/cluster.ts';
import type { KubeObject } from '../api/meta.ts';
import { silentLogger } from '../lib/log.ts';
import { InformerFactory, WorkQueue } from './informer.ts';
import { Resources } from './types.ts';

function until(check: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const tick = (): void => {
      if (check()) resolve();
      else setTimeout(tick, 5);
    };
    tick();
  });
}

describe('Informer on a LocalCluster', () => {
  let t: TestCluster;
  before(async () => {
    t = await startTestCluster();
  });
  after(async () => {
    await t.close();
  });

  it('lists, then follows adds, updates and deletes, with an index', async () => {
    const { cluster } = t;
    await cluster.create(Resources.configmaps, 'default', { metadata: { name: 'a', labels: { app: 'x' } } });
    const factory = new InformerFactory(cluster, silentLogger());
    const inf = factory.informer<KubeObject>(Resources.configmaps);
    inf.addIndex('app', (o) => (o.metadata.labels?.['app'] === undefined ? [] : [o.metadata.labels['app']]));
    const seen: string[] = [];
    inf.onAdd((o) => seen.push(`add ${o.metadata.name}`));
    inf.onUpdate((_, o) => seen.push(`update ${o.metadata.name}`));
    inf.onDelete((o) => seen.push(`delete ${o.metadata.name}`));
    factory.start();
    await factory.waitForSync();
    assert.equal(inf.get('default', 'a')?.metadata.name, 'a');
    await cluster.create(Resources.configmaps, 'default', { metadata: { name: 'b', labels: { app: 'x' } } });
    await cluster.patch(Resources.configmaps, 'default', 'a', 'merge', { data: { k: 'v' } });
    await cluster.delete(Resources.configmaps, 'default', 'a');
    await until(() => seen.length === 4);
    assert.deepEqual(seen, ['add a', 'add b', 'update a', 'delete a']);
    assert.deepEqual(
      inf.byIndex('app', 'x').map((o) => o.metadata.name),
      ['b'],
    );
    await factory.stop();
  });

  it('binds a pod through pods/binding in one write', async () => {
    const { cluster } = t;
    await cluster.create(Resources.pods, 'default', {
      metadata: { name: 'p' },
      spec: { containers: [{ name: 'c', image: 'busybox' }] },
    });
    await cluster.createSubresource(Resources.pods, 'default', 'p', 'binding', {
      target: { kind: 'Node', name: 'n1' },
    });
    const pod = await cluster.get(Resources.pods, 'default', 'p');
    assert.equal((pod['spec'] as { nodeName: string }).nodeName, 'n1');
    const conditions = (pod['status'] as { conditions: Array<{ type: string; status: string }> }).conditions;
    assert.deepEqual(
      conditions.map((c) => [c.type, c.status]),
      [['PodScheduled', 'True']],
    );
    await assert.rejects(
      cluster.createSubresource(Resources.pods, 'default', 'p', 'binding', {
        target: { kind: 'Node', name: 'n2' },
      }),
      /already assigned to node "n1"/,
    );
  });
});

describe('WorkQueue', () => {
  it('hands a key to one worker at a time and re-queues what was added meanwhile', async () => {
    const q = new WorkQueue<string>();
    q.add('a');
    q.add('a');
    assert.equal(q.length, 1);
    const k = await q.get();
    assert.equal(k, 'a');
    q.add('a');
    assert.equal(q.length, 0, 'not queued while processing');
    q.done('a');
    assert.equal(q.length, 1, 're-queued after done');
    q.shutDown();
    assert.equal(await q.get(), 'a');
    assert.equal(await q.get(), undefined);
  });
});
