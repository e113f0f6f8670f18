import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../lib/log.ts';
import type { SyncItem } from '../protocol/messages.ts';
import { LocalApi, storageKeyOf } from './local-api.ts';
import { LocalStore } from './local-store.ts';
import { createAgentMetrics } from './metrics.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-agent-localapi-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const logger = silentLogger();
const pod = (name: string, rev: number): SyncItem => ({
  key: `core/pods/default/${name}`,
  revision: rev,
  object: {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', uid: `u-${name}`, labels: { app: name } },
    spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i' }] },
  },
});

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const names = (body: Record<string, unknown>): string[] =>
  (body['items'] as Array<{ metadata: { name: string } }>).map((i) => i.metadata.name);

describe('local read-only API', () => {
  it('maps sync keys to storage keys', () => {
    assert.equal(storageKeyOf('core/pods/default/a'), '/registry/core/pods/default/a');
    assert.equal(storageKeyOf('core/nodes//n1'), '/registry/core/nodes/n1');
    assert.equal(storageKeyOf('apps/deployments/ns/d'), '/registry/apps/deployments/ns/d');
    assert.equal(storageKeyOf('bad'), undefined);
  });

  it('serves list and get of the synced objects, follows batches, refuses writes, serves metrics', async () => {
    const dataDir = join(dir, 'a');
    const store = new LocalStore(join(dataDir, 'agent.db'));
    store.applyBatch(3, [
      pod('a', 2),
      pod('b', 3),
      {
        key: 'core/configmaps/default/cfg',
        revision: 1,
        object: { metadata: { name: 'cfg', namespace: 'default' }, data: { k: 'v' } },
      },
    ]);
    const metrics = createAgentMetrics();
    const api = new LocalApi({
      store,
      dataDir,
      host: '127.0.0.1',
      port: 0,
      logger,
      metrics: metrics.registry,
    });
    const url = await api.start();

    const list = await getJson(`${url}/api/v1/namespaces/default/pods`);
    assert.equal(list.status, 200);
    assert.deepEqual(names(list.body), ['a', 'b']);
    const selected = await getJson(`${url}/api/v1/pods?labelSelector=app%3Db`);
    assert.deepEqual(names(selected.body), ['b']);
    const cfg = await getJson(`${url}/api/v1/namespaces/default/configmaps/cfg`);
    assert.deepEqual(cfg.body['data'], { k: 'v' });

    store.applyBatch(5, [pod('c', 4), { key: 'core/pods/default/a', revision: 5, deleted: true }]);
    await api.flushed();
    assert.deepEqual(names((await getJson(`${url}/api/v1/namespaces/default/pods`)).body), ['b', 'c']);

    const write = await fetch(`${url}/api/v1/namespaces/default/configmaps`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ metadata: { name: 'x' } }),
    });
    assert.equal(write.status, 403);
    const del = await fetch(`${url}/api/v1/namespaces/default/pods/b`, { method: 'DELETE' });
    assert.equal(del.status, 403);

    const text = await (await fetch(`${url}/metrics`)).text();
    assert.match(text, /kedge_agent_outbox_depth 0/);
    assert.match(text, /kedge_agent_reconnects_total 0/);
    await api.close();

    // Changes while the API was down are there after a restart.
    store.applyBatch(6, [{ key: 'core/pods/default/b', revision: 6, deleted: true }]);
    const again = new LocalApi({ store, dataDir, host: '127.0.0.1', port: 0, logger });
    const url2 = await again.start();
    assert.deepEqual(names((await getJson(`${url2}/api/v1/namespaces/default/pods`)).body), ['c']);
    await again.close();
    store.close();
  });

  it('streams changes to a watch', async () => {
    const dataDir = join(dir, 'b');
    const store = new LocalStore(join(dataDir, 'agent.db'));
    const api = new LocalApi({ store, dataDir, host: '127.0.0.1', port: 0, logger });
    const url = await api.start();
    const list = await getJson(`${url}/api/v1/namespaces/default/pods`);
    const rv = (list.body['metadata'] as { resourceVersion: string }).resourceVersion;
    const controller = new AbortController();
    const res = await fetch(`${url}/api/v1/namespaces/default/pods?watch=1&resourceVersion=${rv}`, {
      signal: controller.signal,
    });
    store.applyBatch(1, [pod('w', 1)]);
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('\n')) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += Buffer.from(chunk.value).toString();
    }
    const ev = JSON.parse(text.split('\n')[0]!) as { type: string; object: { metadata: { name: string } } };
    assert.deepEqual([ev.type, ev.object.metadata.name], ['ADDED', 'w']);
    controller.abort();
    await api.close();
    store.close();
  });
});
