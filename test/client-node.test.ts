// The official JavaScript client (@kubernetes/client-node) against a real `kedge server` process:
// an informer survives a server restart and sees every change exactly once, in order.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { RemoteCluster } from '../src/client/remote-cluster.ts';
import { Resources } from '../src/client/types.ts';
import { readKubeconfig, resolveKubeconfig } from '../src/lib/kubeconfig.ts';
import { removeDir, type ServerProcess, startServerProcess } from './harness/server.ts';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function until(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (check()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

describe('@kubernetes/client-node informer across a server restart', () => {
  let server: ServerProcess;
  let listen: string;
  before(async () => {
    listen = `127.0.0.1:${await freePort()}`;
    server = await startServerProcess({ listen });
  });
  after(async () => {
    await server.stop();
    await removeDir(server.dataDir);
  });

  it('sees every change exactly once, in order', async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(server.kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const events: string[] = [];
    const informer = k8s.makeInformer(kc, '/api/v1/namespaces/default/configmaps', () =>
      core.listNamespacedConfigMap({ namespace: 'default' }),
    );
    const note = (type: string) => (obj: k8s.V1ConfigMap) =>
      events.push(`${type} ${obj.metadata?.name} ${obj.data?.['v'] ?? ''}`);
    informer.on('add', note('add'));
    informer.on('update', note('update'));
    informer.on('delete', note('delete'));
    let restarting = false;
    let stopped = false;
    informer.on('error', () => {
      if (restarting || stopped) return;
      restarting = true;
      setTimeout(() => {
        restarting = false;
        void informer.start().catch(() => {});
      }, 300);
    });
    await informer.start();
    const expected: string[] = [];
    for (let i = 0; i < 5; i++) {
      await core.createNamespacedConfigMap({
        namespace: 'default',
        body: { metadata: { name: `c${i}` }, data: { v: '0' } },
      });
      expected.push(`add c${i} 0`);
    }
    await core.patchNamespacedConfigMap(
      { namespace: 'default', name: 'c1', body: { data: { v: '1' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expected.push('update c1 1');
    await until(() => events.length >= expected.length, 'events before the restart');

    // Restart the server on the same port and data directory.
    await server.stop();
    server = await startServerProcess({ dataDir: server.dataDir, listen });
    await core.deleteNamespacedConfigMap({ namespace: 'default', name: 'c2' });
    expected.push('delete c2 0');
    await core.patchNamespacedConfigMap(
      { namespace: 'default', name: 'c3', body: { data: { v: '2' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expected.push('update c3 2');
    await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'c9' }, data: { v: '9' } },
    });
    expected.push('add c9 9');
    await until(() => events.length >= expected.length, 'events after the restart');
    await new Promise((r) => setTimeout(r, 500)); // anything extra (a duplicate) would arrive now
    stopped = true;
    await informer.stop();
    assert.deepEqual(events, expected);
  });

  it('RemoteCluster speaks to the server with the admin kubeconfig', async () => {
    const config = resolveKubeconfig(await readKubeconfig(server.kubeconfig));
    const cluster = new RemoteCluster(config);
    try {
      const created = await cluster.create(Resources.configmaps, 'default', {
        metadata: { name: 'remote' },
        data: { a: '1' },
      });
      assert.equal(created.metadata.name, 'remote');
      const list = await cluster.list(Resources.configmaps, { namespace: 'default', labelSelector: '' });
      assert.ok(list.items.some((o) => o.metadata.name === 'remote'));
      const ctrl = new AbortController();
      const seen: string[] = [];
      const watching = (async () => {
        for await (const ev of cluster.watch(Resources.configmaps, {
          namespace: 'default',
          resourceVersion: (created as k8s.KubernetesObject).metadata?.resourceVersion ?? '',
          signal: ctrl.signal,
        })) {
          seen.push(`${ev.type} ${ev.object.metadata.name}`);
          if (ev.type === 'DELETED') ctrl.abort();
        }
      })();
      await cluster.patch(Resources.configmaps, 'default', 'remote', 'merge', { data: { a: '2' } });
      await cluster.delete(Resources.configmaps, 'default', 'remote');
      await watching;
      assert.deepEqual(seen, ['MODIFIED remote', 'DELETED remote']);
      await assert.rejects(cluster.get(Resources.configmaps, 'default', 'remote'), (err: unknown) => {
        return err instanceof Error && 'httpCode' in err && err.httpCode === 404;
      });
    } finally {
      cluster.close();
    }
  });

  it('RemoteCluster keeps serving requests with more open watches than its request pool (regression: 64 watches stalled everything)', async () => {
    const cluster = new RemoteCluster(resolveKubeconfig(await readKubeconfig(server.kubeconfig)));
    const ctrl = new AbortController();
    try {
      const rv =
        (await cluster.list(Resources.configmaps, { namespace: 'default' })).metadata.resourceVersion ?? '0';
      let seen = 0;
      const all = Promise.withResolvers<void>();
      const watches = Array.from({ length: 70 }, async () => {
        for await (const ev of cluster.watch(Resources.configmaps, {
          namespace: 'default',
          resourceVersion: rv,
          signal: ctrl.signal,
        })) {
          if (ev.object.metadata.name === 'many-watches' && ++seen === 70) all.resolve();
        }
      });
      await cluster.create(Resources.configmaps, 'default', { metadata: { name: 'many-watches' } });
      await all.promise;
      ctrl.abort();
      await Promise.allSettled(watches);
    } finally {
      ctrl.abort();
      cluster.close();
    }
  });
});
