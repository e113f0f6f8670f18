import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { startTestCluster, type TestCluster } from '../../test/harness/cluster.ts';
import type { KubeObject } from '../api/meta.ts';
import { isApiError } from '../api/status-error.ts';
import { Resources } from '../client/types.ts';
import { isKedgeError } from '../lib/errors.ts';
import { silentLogger } from '../lib/log.ts';
import { startControllers } from './manager.ts';

describe('controller manager', () => {
  let t: TestCluster;
  before(async () => {
    t = await startTestCluster();
  });
  after(() => t.close());

  it('starts every controller on shared informers, collects garbage, and stops cleanly', async () => {
    const running = await startControllers({ cluster: t.cluster, logger: silentLogger() });
    assert.deepEqual(running.names, [
      'scheduler',
      'workloads',
      'garbage-collector',
      'namespace',
      'node-lifecycle',
    ]);
    const owner = await t.cluster.create<KubeObject>(Resources.configmaps, 'default', {
      metadata: { name: 'o' },
    });
    await t.cluster.create(Resources.configmaps, 'default', {
      metadata: {
        name: 'd',
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'o', uid: owner.metadata.uid ?? '' }],
      },
    });
    await t.cluster.delete(Resources.configmaps, 'default', 'o');
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await t.cluster.get(Resources.configmaps, 'default', 'd');
      } catch (err) {
        if (isApiError(err, 404)) break;
        throw err;
      }
      assert.ok(Date.now() < deadline, 'the dependent was not collected');
      await delay(10);
    }
    await running.stop();
    await running.stop(); // idempotent
  });

  it('starts only the selected controllers', async () => {
    const running = await startControllers({
      cluster: t.cluster,
      logger: silentLogger(),
      controllers: { scheduler: false, workloads: false, nodes: false, namespaces: false },
    });
    assert.deepEqual(running.names, ['garbage-collector']);
    await running.stop();
  });

  it('refuses bad node lifecycle options before starting anything', async () => {
    await assert.rejects(
      startControllers({ cluster: t.cluster, logger: silentLogger(), nodeLifecycle: { gracePeriodMs: -1 } }),
      (err) => isKedgeError(err, 'KEDGE_CONFIG_INVALID'),
    );
  });
});
