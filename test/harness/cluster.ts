import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '../../src/apiserver/local-cluster.ts';
import { ApiServer } from '../../src/apiserver/server.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';

export interface TestCluster {
  readonly api: ApiServer;
  readonly cluster: LocalCluster;
  readonly dir: string;
  close(): Promise<void>;
}

/** An in-process API server on a temporary SQLite store, and a LocalCluster on it. */
export async function startTestCluster(): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'kedge-cluster-'));
  const store = openSqliteStore({ path: join(dir, 'state.db'), compaction: false });
  const api = new ApiServer({ store, logger: silentLogger(), authenticate: () => undefined });
  await api.start();
  return {
    api,
    cluster: new LocalCluster(api.storage),
    dir,
    async close() {
      await api.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
