// The CRI client against a real containerd: every message of api.proto used by the agent makes a round
// trip, so a wrong field number or type shows up here (a value that does not come back as sent).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CriClient,
  CriError,
  isNotFound,
  nanosToRfc3339,
  type PodSandboxConfig,
} from '../src/agent/cri/client.ts';
import { CriRuntime } from '../src/agent/cri/runtime.ts';
import { silentLogger } from '../src/lib/log.ts';
import {
  BUSYBOX_IMAGE,
  type Containerd,
  containerdTestOptions,
  PAUSE_IMAGE,
  startContainerd,
} from './harness/containerd.ts';

const opts = containerdTestOptions();

describe('CriRuntime.connect', () => {
  it('fails with a clear error when no runtime answers at the endpoint', async () => {
    await assert.rejects(
      CriRuntime.connect({
        endpoint: 'unix:///nonexistent/containerd.sock',
        dataDir: '/nonexistent',
        logger: silentLogger(),
      }),
      (err: Error) => {
        assert.match(err.message, /no container runtime answers at unix:\/\/\/nonexistent\/containerd\.sock/);
        return true;
      },
    );
  });
});

describe('CriClient against a real containerd', opts, () => {
  let containerd: Containerd;
  let cri: CriClient;

  before(async () => {
    containerd = await startContainerd();
    cri = new CriClient({ endpoint: containerd.endpoint });
  });
  after(async () => {
    cri?.close();
    await containerd?.stop();
  });

  it('reports the runtime version and its conditions', async () => {
    const v = await cri.version();
    assert.equal(v.runtimeName, 'containerd');
    assert.match(v.runtimeVersion, /^\d+\.\d+/);
    assert.equal(v.runtimeApiVersion, 'v1');
    const conditions = await cri.status();
    assert.equal(conditions.find((c) => c.type === 'RuntimeReady')?.status, true);
  });

  it('sees the imported images and reports a missing one as undefined', async () => {
    const images = await cri.listImages();
    const tags = images.flatMap((i) => i.repoTags);
    assert.ok(tags.includes(BUSYBOX_IMAGE), tags.join(','));
    assert.ok(tags.includes(PAUSE_IMAGE));
    const bb = await cri.imageStatus(BUSYBOX_IMAGE);
    assert.ok(bb !== undefined);
    assert.match(bb.id, /^sha256:[0-9a-f]{64}$/);
    assert.ok(Number(bb.size) > 500_000);
    assert.equal(await cri.imageStatus('kedge.test/none:0'), undefined);
  });

  it('fails a pull from an unreachable registry with a CriError', async () => {
    await assert.rejects(cri.pullImage('registry.invalid/nothing:1'), (err: unknown) => {
      assert.ok(err instanceof CriError);
      assert.equal(err.code, 'KEDGE_CRI_CALL_FAILED');
      assert.match(err.message, /PullImage/);
      return true;
    });
  });

  it('runs a sandbox and a container, lists, inspects, execs, stops and removes them', async () => {
    const logDir = join(containerd.dir, 'logs', 'default_t1_uid-1');
    const sandbox: PodSandboxConfig = {
      metadata: { name: 't1', uid: 'uid-1', namespace: 'default', attempt: 0 },
      logDirectory: logDir,
      labels: { 'kedge.io/pod-uid': 'uid-1' },
      annotations: { 'kedge.io/note': 'annotated' },
      linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
    };
    const sandboxId = await cri.runPodSandbox(sandbox);
    assert.match(sandboxId, /^[0-9a-f]{64}$/);
    const listed = await cri.listPodSandbox({ labelSelector: { 'kedge.io/pod-uid': 'uid-1' } });
    assert.equal(listed.length, 1);
    assert.equal(listed[0]?.id, sandboxId);
    assert.equal(listed[0]?.state, 'SANDBOX_READY');
    assert.deepEqual(listed[0]?.metadata, sandbox.metadata);
    assert.equal(listed[0]?.annotations['kedge.io/note'], 'annotated');
    const sstatus = await cri.podSandboxStatus(sandboxId);
    assert.equal(sstatus.metadata?.uid, 'uid-1');
    assert.ok(nanosToRfc3339(sstatus.createdAt) !== undefined);

    const containerId = await cri.createContainer(
      sandboxId,
      {
        metadata: { name: 'main', attempt: 3 },
        image: { image: BUSYBOX_IMAGE },
        command: ['/bin/sh', '-c'],
        args: ['echo "hello $GREETING"; exec sleep 1000'],
        envs: [{ key: 'GREETING', value: 'from kedge' }],
        workingDir: '/tmp',
        labels: { 'kedge.io/container': 'main' },
        logPath: 'main/3.log',
        linux: {
          resources: { cpuShares: '256', memoryLimitInBytes: String(64 * 1024 * 1024) },
          securityContext: { runAsUser: { value: '65534' } },
        },
      },
      sandbox,
    );
    await cri.startContainer(containerId);
    const cs = await cri.containerStatus(containerId);
    assert.equal(cs.state, 'CONTAINER_RUNNING');
    assert.deepEqual(cs.metadata, { name: 'main', attempt: 3 });
    assert.equal(cs.labels['kedge.io/container'], 'main');
    assert.equal(cs.logPath, join(logDir, 'main/3.log'));
    assert.match(cs.imageRef, /sha256:/);
    const containers = await cri.listContainers({ podSandboxId: sandboxId, state: 'CONTAINER_RUNNING' });
    assert.deepEqual(
      containers.map((c) => c.id),
      [containerId],
    );
    const id = await cri.execSync(
      containerId,
      ['/bin/sh', '-c', 'id -u; pwd; cat /proc/self/cgroup >/dev/null; echo oops >&2; exit 7'],
      10,
    );
    assert.equal(id.exitCode, 7);
    assert.equal(id.stdout.toString(), '65534\n/tmp\n');
    assert.equal(id.stderr.toString(), 'oops\n');
    const url = await cri.exec(containerId, ['/bin/sh'], {
      tty: false,
      stdin: true,
      stdout: true,
      stderr: true,
    });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/exec\//);
    // The log file is in the CRI format: time, stream, tag, text.
    let log = '';
    for (let i = 0; i < 50 && !log.includes('hello'); i++) {
      log = await readFile(join(logDir, 'main/3.log'), 'utf8').catch(() => '');
      if (!log.includes('hello')) await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(log, /^\S+ stdout F hello from kedge\n/);

    await cri.stopContainer(containerId, 0);
    const stopped = await cri.containerStatus(containerId);
    assert.equal(stopped.state, 'CONTAINER_EXITED');
    assert.equal(stopped.exitCode, 137);
    assert.ok(nanosToRfc3339(stopped.finishedAt) !== undefined);
    await cri.removeContainer(containerId);
    await assert.rejects(cri.containerStatus(containerId), (err) => isNotFound(err));
    await cri.stopPodSandbox(sandboxId);
    assert.equal((await cri.podSandboxStatus(sandboxId)).state, 'SANDBOX_NOTREADY');
    await cri.removePodSandbox(sandboxId);
    assert.deepEqual(await cri.listPodSandbox({ id: sandboxId }), []);
    // Removal is idempotent, as the CRI requires.
    await cri.removePodSandbox(sandboxId);
  });

  it('reports a container that exits with its code and reason', async () => {
    const sandbox: PodSandboxConfig = {
      metadata: { name: 't2', uid: 'uid-2', namespace: 'default', attempt: 0 },
      logDirectory: join(containerd.dir, 'logs', 't2'),
      linux: { securityContext: { namespaceOptions: { network: 'NODE' } } },
    };
    const sandboxId = await cri.runPodSandbox(sandbox);
    const cid = await cri.createContainer(
      sandboxId,
      {
        metadata: { name: 'quit', attempt: 0 },
        image: { image: BUSYBOX_IMAGE },
        command: ['sh', '-c', 'exit 3'],
        logPath: 'quit/0.log',
      },
      sandbox,
    );
    await cri.startContainer(cid);
    let s = await cri.containerStatus(cid);
    for (let i = 0; i < 100 && s.state !== 'CONTAINER_EXITED'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      s = await cri.containerStatus(cid);
    }
    assert.equal(s.state, 'CONTAINER_EXITED');
    assert.equal(s.exitCode, 3);
    assert.equal(s.reason, 'Error');
    await cri.removePodSandbox(sandboxId);
  });
});
