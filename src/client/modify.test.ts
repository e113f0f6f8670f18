import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../api/meta.ts';
import { isApiError } from '../api/status-error.ts';
import { certificateAuthenticator } from '../apiserver/auth.ts';
import { LocalCluster } from '../apiserver/local-cluster.ts';
import { ApiServer } from '../apiserver/server.ts';
import { silentLogger } from '../lib/log.ts';
import { openSqliteStore } from '../store/sqlite.ts';
import { modifyObject } from './modify.ts';
import { type Cluster, Resources } from './types.ts';

const configMap = (name: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'default' },
  data: { n: '0' },
});

const bump = (o: KubeObject): KubeObject => ({
  ...o,
  data: { n: String(Number((o['data'] as { n: string }).n) + 1) },
});

describe('modifyObject', () => {
  let dir: string;
  let api: ApiServer;
  let local: LocalCluster;
  /** The same cluster without modify(): modifyObject must fall back to get + update. */
  let plain: Cluster;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kedge-modify-'));
    api = new ApiServer({
      store: openSqliteStore({ path: join(dir, 'state.db') }),
      logger: silentLogger(),
      authenticate: certificateAuthenticator,
    });
    await api.start();
    local = new LocalCluster(api.storage);
    plain = {
      get: (...a) => local.get(...a),
      list: (...a) => local.list(...a),
      watch: (...a) => local.watch(...a),
      create: (...a) => local.create(...a),
      update: (...a) => local.update(...a),
      patch: (...a) => local.patch(...a),
      delete: (...a) => local.delete(...a),
      updateSubresource: (...a) => local.updateSubresource(...a),
      createSubresource: (...a) => local.createSubresource(...a),
    };
  });
  after(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  for (const [how, cluster] of [
    ['in process', () => local],
    ['by get + update', () => plain],
  ] as const) {
    it(`${how}: concurrent changes are all kept (retried on conflict)`, async () => {
      const name = `counter-${how.replaceAll(/\W/g, '')}`;
      await local.create(Resources.configmaps, 'default', configMap(name));
      await Promise.all(
        Array.from({ length: 4 }, () => modifyObject(cluster(), Resources.configmaps, 'default', name, bump)),
      );
      const after = await local.get(Resources.configmaps, 'default', name);
      assert.deepEqual(after['data'], { n: '4' });
    });

    it(`${how}: undefined from change writes nothing; a missing object is 404`, async () => {
      const name = `still-${how.replaceAll(/\W/g, '')}`;
      const created = await local.create(Resources.configmaps, 'default', configMap(name));
      assert.equal(
        await modifyObject(cluster(), Resources.configmaps, 'default', name, () => undefined),
        undefined,
      );
      const same = await local.get(Resources.configmaps, 'default', name);
      assert.equal(same.metadata.resourceVersion, created.metadata.resourceVersion);
      await assert.rejects(
        modifyObject(cluster(), Resources.configmaps, 'default', 'missing', bump),
        (err: unknown) => isApiError(err, 404),
      );
    });
  }
});
