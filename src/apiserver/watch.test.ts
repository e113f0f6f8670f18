import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestCluster, type TestCluster } from '../../test/harness/cluster.ts';
import { makeFilter } from './list.ts';
import { watchObjects } from './watch.ts';

describe('watchObjects', () => {
  let t: TestCluster;
  before(async () => {
    t = await startTestCluster();
  });
  after(async () => {
    await t.close();
  });

  it('tells a watcher that fell too far behind to re-list (410), instead of ending quietly', async () => {
    const rt = t.api.registry.lookup('', 'v1', 'configmaps')!;
    const from = t.api.storage.store.currentRevision();
    for (let i = 0; i < 20; i++) await t.api.storage.create(rt, 'default', { metadata: { name: `c${i}` } });
    const events = watchObjects(
      t.api.storage,
      rt,
      {
        namespace: 'default',
        filter: makeFilter(rt, undefined, undefined),
        resourceVersion: String(from),
        maxBuffered: 5,
      },
      { revision: 0 },
      new AbortController().signal,
    );
    const types: string[] = [];
    for await (const ev of events) {
      types.push(ev.type);
      if (ev.type === 'ERROR') assert.equal(ev.object.code, 410);
    }
    assert.equal(types.at(-1), 'ERROR');
  });
});
