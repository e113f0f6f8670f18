import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../../api/meta.ts';
import { PodConfigError } from './spec.ts';
import { containerMounts, prepareVolumes } from './volumes.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kedge-volumes-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const objects = new Map<string, KubeObject>();
const context = {
  lookup: (plural: string, ns: string, name: string) => objects.get(`${plural}/${ns}/${name}`),
};
const values = { podIP: '10.88.0.9', hostIP: '192.0.2.1', nodeName: 'n1' };

function pod(volumes: unknown[]): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'ns', uid: 'u', labels: { app: 'x' } },
    spec: { volumes },
  };
}

describe('prepareVolumes', () => {
  it('writes configMap, secret and downward API files, and rewrites them when the object changes', async () => {
    objects.set('configmaps/ns/cm', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cm' },
      data: { a: '1', b: '2' },
    });
    objects.set('secrets/ns/s', {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's' },
      data: { pw: Buffer.from('x').toString('base64') },
    });
    const p = pod([
      { name: 'cm', configMap: { name: 'cm', items: [{ key: 'a', path: 'sub/a.txt', mode: 0o600 }] } },
      { name: 'sec', secret: { secretName: 's' } },
      {
        name: 'info',
        downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] },
      },
      { name: 'scratch', emptyDir: {} },
    ]);
    const root = join(dir, 'a');
    const vols = await prepareVolumes(p, root, context, values);
    assert.equal(await readFile(join(root, 'cm', 'sub/a.txt'), 'utf8'), '1');
    assert.equal((await stat(join(root, 'cm', 'sub/a.txt'))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(root, 'sec', 'pw'), 'utf8'), 'x');
    assert.equal(await readFile(join(root, 'info', 'labels'), 'utf8'), 'app="x"');
    assert.equal((await stat(join(root, 'scratch'))).mode & 0o777, 0o777);
    const mounts = containerMounts(
      {
        volumeMounts: [
          { name: 'cm', mountPath: '/c' },
          { name: 'scratch', mountPath: '/s', readOnly: true },
          { name: 'sec', mountPath: '/p', readOnly: false },
        ],
      },
      vols,
    );
    assert.deepEqual(
      mounts.map((m) => [m.containerPath, m.readonly]),
      [
        ['/c', true],
        ['/s', true],
        ['/p', true],
      ],
    );
    objects.set('configmaps/ns/cm', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cm' },
      data: { a: 'changed' },
    });
    await prepareVolumes(p, root, context, values);
    assert.equal(await readFile(join(root, 'cm', 'sub/a.txt'), 'utf8'), 'changed');
  });

  it('refuses a missing ConfigMap, an item path leaving the volume and an unknown volume type', async () => {
    const cases: Array<[unknown[], RegExp]> = [
      [[{ name: 'v', configMap: { name: 'nope' } }], /configmap "nope" not found/],
      [
        [
          {
            name: 'v',
            downwardAPI: { items: [{ path: '../../etc/passwd', fieldRef: { fieldPath: 'metadata.name' } }] },
          },
        ],
        /must be relative/,
      ],
      [[{ name: 'v', nfs: { server: 'x' } }], /volume type nfs is not supported/],
      [[{ name: 'v', hostPath: { path: 'relative' } }], /is not absolute/],
      [[{ name: 'v', hostPath: { path: join(dir, 'missing'), type: 'Directory' } }], /is not a directory/],
    ];
    for (const [volumes, message] of cases) {
      await assert.rejects(prepareVolumes(pod(volumes), join(dir, 'b'), context, values), (err: unknown) => {
        assert.ok(err instanceof PodConfigError);
        assert.match(err.message, message);
        return true;
      });
    }
    assert.throws(
      () => containerMounts({ volumeMounts: [{ name: 'ghost', mountPath: '/g' }] }, new Map()),
      /names no volume/,
    );
  });

  it('creates a DirectoryOrCreate hostPath', async () => {
    const path = join(dir, 'made', 'here');
    await prepareVolumes(
      pod([{ name: 'h', hostPath: { path, type: 'DirectoryOrCreate' } }]),
      join(dir, 'c'),
      context,
      values,
    );
    assert.ok((await stat(path)).isDirectory());
  });
});
