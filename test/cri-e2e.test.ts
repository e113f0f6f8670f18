// Real containers end to end: `kedge server`, `kedge agent --runtime cri` on a private containerd, and the
// real kubectl. Env and volumes are visible inside the container, a crashing container backs off and
// restarts, probes kill a hung container and gate Ready, preStop runs before SIGTERM, an unreachable
// registry gives a clear event, and an agent restarted while the server is gone adopts what runs.
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CriClient } from '../src/agent/cri/client.ts';
import { LABEL_MANAGED, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID } from '../src/agent/cri/spec.ts';
import type { KubeObject } from '../src/api/meta.ts';
import { RemoteCluster } from '../src/client/remote-cluster.ts';
import { Resources } from '../src/client/types.ts';
import { readKubeconfig, resolveKubeconfig } from '../src/lib/kubeconfig.ts';
import { type AgentProcess, startAgentProcess } from './harness/agent.ts';
import {
  BUSYBOX_IMAGE,
  type Containerd,
  containerdTestOptions,
  startContainerd,
} from './harness/containerd.ts';
import { kubectlOk } from './harness/kubectl.ts';
import { waitUntil } from './harness/ready-pods.ts';
import { removeDir, type ServerProcess, startServerProcess } from './harness/server.ts';

const NODE = 'edge-cri';
const opts = containerdTestOptions();

type Status = {
  phase?: string;
  podIP?: string;
  conditions?: Array<{ type: string; status: string }>;
  containerStatuses?: Array<{
    name: string;
    ready: boolean;
    restartCount: number;
    containerID?: string;
    state: {
      running?: unknown;
      waiting?: { reason: string; message?: string };
      terminated?: { exitCode: number; reason: string };
    };
    lastState: { terminated?: { exitCode: number; reason: string } };
  }>;
  initContainerStatuses?: Array<{
    name: string;
    state: { terminated?: { exitCode: number; reason: string } };
  }>;
};
const statusOf = (pod: KubeObject | undefined): Status => (pod?.['status'] ?? {}) as Status;
const condition = (pod: KubeObject | undefined, type: string): string | undefined =>
  statusOf(pod).conditions?.find((c) => c.type === type)?.status;

describe('CRI runtime end to end (server, agent, containerd, kubectl)', opts, () => {
  let containerd: Containerd;
  let server: ServerProcess;
  let cluster: RemoteCluster;
  let agent: AgentProcess;
  let token: string;
  let outDir: string;
  let agentDir: string;

  const startAgent = (serverUrl: string) =>
    startAgentProcess({
      server: serverUrl,
      token,
      nodeName: NODE,
      dataDir: agentDir,
      extraArgs: ['--runtime', 'cri', '--cri-endpoint', containerd.endpoint, '--host-ip', '127.0.0.1'],
    });

  before(async () => {
    containerd = await startContainerd();
    server = await startServerProcess();
    cluster = new RemoteCluster(resolveKubeconfig(await readKubeconfig(server.kubeconfig)));
    token = (await readFile(join(server.dataDir, 'node-token'), 'utf8')).trim();
    outDir = join(containerd.dir, 'out');
    await mkdir(outDir, { recursive: true });
    await chmod(outDir, 0o777);
    agentDir = join(server.dataDir, 'agent');
    agent = await startAgent(server.url);
  });

  after(async () => {
    await agent?.stop();
    cluster?.close();
    await server?.stop();
    await containerd?.stop();
    if (server !== undefined) await removeDir(server.dataDir);
  });

  const apply = (yaml: string) => kubectlOk(server.kubeconfig, ['apply', '-f', '-'], { input: yaml });
  const podWhere = <T>(
    name: string,
    check: (pod: KubeObject) => T | undefined,
    timeoutMs = 60_000,
  ): Promise<T> =>
    waitUntil(
      cluster,
      Resources.pods,
      'default',
      (pods) => {
        const pod = pods.find((p) => p.metadata.name === name);
        return pod === undefined ? undefined : check(pod);
      },
      timeoutMs,
    );

  it('reports the runtime version and the machine capacity in the node status', async () => {
    const node = await waitUntil(cluster, Resources.nodes, undefined, (nodes) =>
      nodes.find((n) => n.metadata.name === NODE && condition(n, 'Ready') === 'True'),
    );
    const st = node['status'] as {
      nodeInfo: { containerRuntimeVersion: string };
      capacity: Record<string, string>;
    };
    assert.match(st.nodeInfo.containerRuntimeVersion, /^containerd:\/\/1\.\d+/);
    assert.equal(st.capacity['cpu'], String(availableParallelism()));
    assert.match(st.capacity['memory'] ?? '', /^\d+Ki$/);
    assert.match(st.capacity['ephemeral-storage'] ?? '', /^\d+Ki$/);
    assert.equal(st.capacity['pods'], '110');
  });

  it('runs a container with env, envFrom, volumes, securityContext and resources on the bridge network', async () => {
    const out = join(outDir, 'env-vol');
    await apply(`
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {greeting: hello-edge, mode: offline-first}
---
apiVersion: v1
kind: Secret
metadata: {name: app-secret}
data: {password: ${Buffer.from('s3cret').toString('base64')}}
---
apiVersion: v1
kind: Pod
metadata: {name: env-vol, labels: {app: env-vol, tier: edge}}
spec:
  nodeName: ${NODE}
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: 1000, runAsGroup: 1000}
  containers:
  - name: app
    image: ${BUSYBOX_IMAGE}
    command: ["/bin/sh", "-c"]
    args:
    - |
      env > /out/env
      cat /etc/cfg/greeting > /out/cm
      cat /etc/sec/password > /out/secret
      cat /etc/podinfo/labels > /out/labels
      (echo x > /etc/cfg/new) 2> /out/cm-write
      (touch /rootfs-test) 2> /out/rootfs-write
      echo data > /scratch/f && cat /scratch/f > /out/scratch
      id -u > /out/uid
      cat /sys/fs/cgroup/memory/memory.limit_in_bytes > /out/memlimit
      echo done > /out/done
      exec sleep 100000
    env:
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: app-config, key: greeting}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: app-secret, key: password}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: PLAIN, value: "v-$(POD_NAME)"}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: app-config}}
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, privileged: false}
    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {cpu: 250m, memory: 64Mi}
    volumeMounts:
    - {name: out, mountPath: /out, subPath: env-vol}
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec}
    - {name: podinfo, mountPath: /etc/podinfo}
    - {name: scratch, mountPath: /scratch}
  volumes:
  - {name: out, hostPath: {path: ${outDir}, type: Directory}}
  - {name: cfg, configMap: {name: app-config}}
  - {name: sec, secret: {secretName: app-secret}}
  - {name: podinfo, projected: {sources: [{downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}}]}}
  - {name: scratch, emptyDir: {}}
`);
    await mkdir(out, { recursive: true });
    await chmod(out, 0o777);
    const pod = await podWhere('env-vol', (p) => (condition(p, 'Ready') === 'True' ? p : undefined));
    const st = statusOf(pod);
    assert.equal(st.phase, 'Running');
    assert.match(
      st.podIP ?? '',
      /^10\.88\.\d+\.\d+$/,
      'a pod off the host network gets an IP from the bridge network',
    );
    assert.match(st.containerStatuses?.[0]?.containerID ?? '', /^containerd:\/\/[0-9a-f]{64}$/);
    const wide = await kubectlOk(server.kubeconfig, ['get', 'pod', 'env-vol', '-o', 'wide']);
    assert.match(wide, /env-vol\s+1\/1\s+Running\s+0/);

    for (let i = 0; i < 100; i++) {
      if ((await readFile(join(out, 'done'), 'utf8').catch(() => '')) === 'done\n') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const env = new Map(
      (await readFile(join(out, 'env'), 'utf8'))
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    assert.equal(env.get('GREETING'), 'hello-edge');
    assert.equal(env.get('PASSWORD'), 's3cret');
    assert.equal(env.get('POD_NAME'), 'env-vol');
    assert.equal(env.get('POD_IP'), st.podIP);
    assert.equal(env.get('NODE'), NODE);
    assert.equal(env.get('PLAIN'), 'v-env-vol');
    assert.equal(env.get('CFG_greeting'), 'hello-edge');
    assert.equal(env.get('CFG_mode'), 'offline-first');
    assert.equal(await readFile(join(out, 'cm'), 'utf8'), 'hello-edge');
    assert.equal(await readFile(join(out, 'secret'), 'utf8'), 's3cret');
    assert.equal(await readFile(join(out, 'labels'), 'utf8'), 'app="env-vol"\ntier="edge"');
    assert.match(
      await readFile(join(out, 'cm-write'), 'utf8'),
      /Read-only file system/,
      'configMap volumes are read-only',
    );
    assert.match(
      await readFile(join(out, 'rootfs-write'), 'utf8'),
      /Read-only file system/,
      'readOnlyRootFilesystem',
    );
    assert.equal(await readFile(join(out, 'scratch'), 'utf8'), 'data\n');
    assert.equal(await readFile(join(out, 'uid'), 'utf8'), '1000\n');
    assert.equal(await readFile(join(out, 'memlimit'), 'utf8'), `${64 * 1024 * 1024}\n`);
  });

  it('runs init containers in order before the app container', async () => {
    await apply(`
apiVersion: v1
kind: Pod
metadata: {name: with-init}
spec:
  nodeName: ${NODE}
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  initContainers:
  - {name: first, image: ${BUSYBOX_IMAGE}, command: [sh, -c, "echo one > /work/log"], volumeMounts: [{name: work, mountPath: /work}]}
  - {name: second, image: ${BUSYBOX_IMAGE}, command: [sh, -c, "echo two >> /work/log"], volumeMounts: [{name: work, mountPath: /work}]}
  containers:
  - {name: main, image: ${BUSYBOX_IMAGE}, command: [sh, -c, "cp /work/log /out/init-log; exec sleep 100000"], volumeMounts: [{name: work, mountPath: /work}, {name: out, mountPath: /out}]}
  volumes:
  - {name: work, emptyDir: {}}
  - {name: out, hostPath: {path: ${outDir}}}
`);
    const pod = await podWhere('with-init', (p) => (condition(p, 'Ready') === 'True' ? p : undefined));
    const st = statusOf(pod);
    assert.equal(condition(pod, 'Initialized'), 'True');
    assert.deepEqual(
      st.initContainerStatuses?.map((c) => [
        c.name,
        c.state.terminated?.reason,
        c.state.terminated?.exitCode,
      ]),
      [
        ['first', 'Completed', 0],
        ['second', 'Completed', 0],
      ],
    );
    assert.equal(st.podIP, '127.0.0.1', 'a host-network pod has the host IP');
    for (
      let i = 0;
      i < 50 && (await readFile(join(outDir, 'init-log'), 'utf8').catch(() => '')) === '';
      i++
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await readFile(join(outDir, 'init-log'), 'utf8'), 'one\ntwo\n');
  });

  it('backs off a crashing container (CrashLoopBackOff) and restarts it', async () => {
    await apply(`
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  nodeName: ${NODE}
  hostNetwork: true
  containers:
  - {name: app, image: ${BUSYBOX_IMAGE}, command: [sh, -c, "echo crashing; exit 3"]}
`);
    const backingOff = await podWhere('crasher', (p) => {
      const c = statusOf(p).containerStatuses?.[0];
      return c?.state.waiting?.reason === 'CrashLoopBackOff' ? c : undefined;
    });
    assert.ok(backingOff.restartCount >= 1);
    assert.equal(backingOff.lastState.terminated?.exitCode, 3);
    assert.equal(backingOff.lastState.terminated?.reason, 'Error');
    const restarted = await podWhere('crasher', (p) => {
      const c = statusOf(p).containerStatuses?.[0];
      return c !== undefined && c.restartCount >= 2 ? c : undefined;
    });
    assert.equal(restarted.lastState.terminated?.exitCode, 3);
    const describe = await kubectlOk(server.kubeconfig, [
      'get',
      'events',
      '--field-selector',
      'involvedObject.name=crasher',
      '-o',
      'json',
    ]);
    assert.match(describe, /Back-off restarting failed container app/);
  });

  it('kills and restarts a container whose liveness probe fails, and gates Ready on readiness', async () => {
    await apply(`
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  nodeName: ${NODE}
  terminationGracePeriodSeconds: 1
  containers:
  - name: hangs
    image: ${BUSYBOX_IMAGE}
    command: [sh, -c, "touch /tmp/healthy; sleep 3; rm /tmp/healthy; exec sleep 100000"]
    livenessProbe: {exec: {command: [cat, /tmp/healthy]}, periodSeconds: 1, failureThreshold: 2}
  - name: web
    image: ${BUSYBOX_IMAGE}
    command: [sh, -c, "mkdir -p /www && echo ok > /www/index.html && sleep 4 && exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /index.html, port: http}, periodSeconds: 1}
    livenessProbe: {tcpSocket: {port: 8080}, initialDelaySeconds: 8, periodSeconds: 2}
`);
    const notReady = await podWhere('probed', (p) =>
      statusOf(p).phase === 'Running' &&
      statusOf(p).containerStatuses?.find((c) => c.name === 'web')?.ready === false
        ? p
        : undefined,
    );
    assert.equal(condition(notReady, 'Ready'), 'False', 'not Ready before the readiness probe passes');
    await podWhere('probed', (p) =>
      statusOf(p).containerStatuses?.find((c) => c.name === 'web')?.ready === true ? p : undefined,
    );
    const killed = await podWhere('probed', (p) => {
      const c = statusOf(p).containerStatuses?.find((x) => x.name === 'hangs');
      return c !== undefined && c.restartCount >= 1 && c.lastState.terminated !== undefined ? c : undefined;
    });
    assert.ok(
      [137, 143].includes(killed.lastState.terminated?.exitCode ?? 0),
      JSON.stringify(killed.lastState),
    );
    const events = await kubectlOk(server.kubeconfig, [
      'get',
      'events',
      '--field-selector',
      'involvedObject.name=probed',
      '-o',
      'json',
    ]);
    assert.match(events, /Liveness probe failed/);
    assert.match(events, /failed liveness probe, will be restarted/);
    const web = statusOf(await podWhere('probed', (p) => p)).containerStatuses?.find((c) => c.name === 'web');
    assert.equal(web?.restartCount, 0, 'the healthy container was not restarted');
  });

  it('runs preStop, then SIGTERM, when a pod is deleted', async () => {
    const out = join(outDir, 'graceful');
    await mkdir(out, { recursive: true });
    await chmod(out, 0o777);
    await apply(`
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  nodeName: ${NODE}
  hostNetwork: true
  terminationGracePeriodSeconds: 10
  containers:
  - name: app
    image: ${BUSYBOX_IMAGE}
    command: [sh, -c, "trap 'echo term >> /out/log; exit 0' TERM; echo started >> /out/log; while true; do sleep 0.2; done"]
    lifecycle: {preStop: {exec: {command: [sh, -c, "echo prestop >> /out/log"]}}}
    volumeMounts: [{name: out, mountPath: /out}]
  volumes: [{name: out, hostPath: {path: ${out}}}]
`);
    await podWhere('graceful', (p) => (condition(p, 'Ready') === 'True' ? p : undefined));
    await kubectlOk(server.kubeconfig, ['delete', 'pod', 'graceful', '--wait=true', '--timeout=60s']);
    // The API deletes a bound pod at once (no graceful deletion there yet); the node stops it after.
    const cri = new CriClient({ endpoint: containerd.endpoint });
    try {
      for (let i = 0; i < 200; i++) {
        if ((await cri.listPodSandbox({ labelSelector: { [LABEL_POD_NAME]: 'graceful' } })).length === 0)
          break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(await cri.listPodSandbox({ labelSelector: { [LABEL_POD_NAME]: 'graceful' } }), []);
    } finally {
      cri.close();
    }
    assert.equal(await readFile(join(out, 'log'), 'utf8'), 'started\nprestop\nterm\n');
  });

  it('reports an unreachable registry with ErrImagePull and a clear event', async () => {
    await apply(`
apiVersion: v1
kind: Pod
metadata: {name: unpullable}
spec:
  nodeName: ${NODE}
  hostNetwork: true
  containers:
  - {name: app, image: registry.invalid/nothing:1.0}
`);
    const waiting = await podWhere('unpullable', (p) => {
      const reason = statusOf(p).containerStatuses?.[0]?.state.waiting?.reason;
      return reason === 'ErrImagePull' || reason === 'ImagePullBackOff'
        ? statusOf(p).containerStatuses?.[0]
        : undefined;
    });
    assert.match(waiting.state.waiting?.message ?? '', /registry\.invalid\/nothing:1\.0/);
    const events = await kubectlOk(server.kubeconfig, [
      'get',
      'events',
      '--field-selector',
      'involvedObject.name=unpullable',
    ]);
    assert.match(events, /Failed to pull image "registry\.invalid\/nothing:1\.0"/);
    await kubectlOk(server.kubeconfig, ['delete', 'pod', 'unpullable', '--wait=true', '--timeout=60s']);
  });

  it('replaces a container whose image changed (kubectl set image)', async () => {
    await containerd.ctr(['images', 'tag', BUSYBOX_IMAGE, 'kedge.test/busybox:1.1']);
    await apply(`
apiVersion: v1
kind: Pod
metadata: {name: upgrade}
spec:
  nodeName: ${NODE}
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: ${BUSYBOX_IMAGE}, command: [sleep, "100000"]}
`);
    const first = await podWhere('upgrade', (p) =>
      condition(p, 'Ready') === 'True' ? statusOf(p).containerStatuses?.[0] : undefined,
    );
    await kubectlOk(server.kubeconfig, ['set', 'image', 'pod/upgrade', 'main=kedge.test/busybox:1.1']);
    const second = await podWhere('upgrade', (p) => {
      const c = statusOf(p).containerStatuses?.[0];
      return c?.state.running !== undefined && c.containerID !== first?.containerID ? c : undefined;
    });
    assert.equal((second as { image?: string }).image, 'kedge.test/busybox:1.1');
    assert.equal(second.restartCount, 1);
  });

  it('adopts running containers after an offline agent restart and removes containers of unknown pods', async () => {
    const before = statusOf(await podWhere('env-vol', (p) => p)).containerStatuses?.[0];
    assert.ok(before?.containerID !== undefined);
    const cri = new CriClient({ endpoint: containerd.endpoint });
    try {
      // A sandbox of a pod this node does not have (as left by a pod deleted while the agent was down).
      const ghost = await cri.runPodSandbox({
        metadata: { name: 'ghost', uid: 'ghost-uid', namespace: 'default', attempt: 0 },
        labels: {
          [LABEL_MANAGED]: 'true',
          [LABEL_POD_UID]: 'ghost-uid',
          [LABEL_POD_NAME]: 'ghost',
          [LABEL_POD_NAMESPACE]: 'default',
        },
        linux: { securityContext: { namespaceOptions: { network: 'NODE' } } },
      });
      await agent.stop();
      await server.stop();
      agent = await startAgent(server.url); // nobody listens there now: offline
      await agent.waitForLog((e) => e['msg'] === 'pod started' && e['pod'] === 'default/env-vol');
      const id = before.containerID.replace('containerd://', '');
      const still = await cri.containerStatus(id);
      assert.equal(still.state, 'CONTAINER_RUNNING', 'the container kept running through the agent restart');
      const all = await cri.listContainers({ labelSelector: { [LABEL_POD_NAME]: 'env-vol' } });
      assert.deepEqual(
        all.map((c) => c.id),
        [id],
        'no second container was started',
      );
      for (let i = 0; i < 100 && (await cri.listPodSandbox({ id: ghost })).length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(await cri.listPodSandbox({ id: ghost }), [], 'the unknown pod was removed');
    } finally {
      cri.close();
    }
  });
});
