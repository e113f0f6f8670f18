import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { KubeObject } from '../../api/meta.ts';
import {
  containerConfig,
  containerHash,
  expandVars,
  linuxResources,
  PodConfigError,
  pullPolicy,
  qosClass,
  resolveEnv,
  sandboxConfig,
} from './spec.ts';

function pod(spec: Record<string, unknown>, meta: Partial<KubeObject['metadata']> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'ns', uid: 'u-1', labels: { b: '2', a: '1' }, ...meta },
    spec,
  };
}

const store = new Map<string, KubeObject>([
  [
    'configmaps/ns/cm',
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm' }, data: { k: 'v', 'bad key': 'x' } },
  ],
  [
    'secrets/ns/s',
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's' },
      data: { pw: Buffer.from('hunter2').toString('base64') },
    },
  ],
]);
const context = {
  lookup: (plural: string, ns: string, name: string) => store.get(`${plural}/${ns}/${name}`),
};
const values = { podIP: '10.88.0.5', hostIP: '192.0.2.1', nodeName: 'n1' };

describe('expandVars', () => {
  it('expands $(VAR), keeps unknown references and unescapes $$', () => {
    const env = new Map([['A', 'x']]);
    assert.equal(expandVars('$(A)-$(B)-$$(A)-$', env), 'x-$(B)-$(A)-$');
    assert.equal(expandVars('$(A', env), '$(A');
  });
  it('leaves text without $ unchanged', () => {
    fc.assert(
      fc.property(
        fc.string().filter((s) => !s.includes('$')),
        (s) => expandVars(s, new Map([['A', 'b']])) === s,
      ),
    );
  });
});

describe('resolveEnv', () => {
  it('resolves envFrom, values, configMap/secret keys and fieldRefs in order', () => {
    const p = pod({});
    const env = resolveEnv(
      p,
      {
        envFrom: [{ configMapRef: { name: 'cm' }, prefix: 'P_' }],
        env: [
          { name: 'PW', valueFrom: { secretKeyRef: { name: 's', key: 'pw' } } },
          { name: 'K', valueFrom: { configMapKeyRef: { name: 'cm', key: 'k' } } },
          { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          { name: 'L', valueFrom: { fieldRef: { fieldPath: "metadata.labels['a']" } } },
          { name: 'X', value: '$(K)/$(PW)' },
          { name: 'OPT', valueFrom: { configMapKeyRef: { name: 'missing', key: 'k', optional: true } } },
        ],
      },
      context,
      values,
    );
    assert.deepEqual(Object.fromEntries(env), {
      P_k: 'v',
      PW: 'hunter2',
      K: 'v',
      IP: '10.88.0.5',
      L: '1',
      X: 'v/hunter2',
    });
  });
  it('fails with CreateContainerConfigError for a missing ConfigMap, Secret or key', () => {
    for (const env of [
      [{ name: 'A', valueFrom: { configMapKeyRef: { name: 'missing', key: 'k' } } }],
      [{ name: 'A', valueFrom: { secretKeyRef: { name: 's', key: 'nope' } } }],
      [{ name: 'A', valueFrom: { fieldRef: { fieldPath: 'spec.nonsense' } } }],
    ]) {
      assert.throws(
        () => resolveEnv(pod({}), { env }, context, values),
        (err: unknown) => err instanceof PodConfigError && err.reason === 'CreateContainerConfigError',
      );
    }
    assert.throws(
      () => resolveEnv(pod({}), { envFrom: [{ secretRef: { name: 'gone' } }] }, context, values),
      /secret "gone" not found/,
    );
  });
});

describe('resources and QoS', () => {
  it('maps requests and limits to CFS shares/quota, memory and an OOM score by QoS', () => {
    const c = {
      resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { cpu: '250m', memory: '64Mi' } },
    };
    const p = pod({ containers: [c] });
    assert.equal(qosClass(p), 'Guaranteed');
    assert.deepEqual(linuxResources(p, c, 1 << 30), {
      cpuShares: '256',
      cpuPeriod: '100000',
      cpuQuota: '25000',
      memoryLimitInBytes: String(64 * 1024 * 1024),
      oomScoreAdj: '-997',
    });
    const burst = { resources: { requests: { memory: '512Mi' } } };
    assert.equal(qosClass(pod({ containers: [burst] })), 'Burstable');
    assert.equal(linuxResources(pod({ containers: [burst] }), burst, 1 << 30).oomScoreAdj, '500');
    const none = {};
    assert.equal(qosClass(pod({ containers: [none] })), 'BestEffort');
    assert.deepEqual(linuxResources(pod({ containers: [none] }), none, 1 << 30), {
      cpuShares: '2',
      oomScoreAdj: '1000',
    });
  });
  it('refuses a quantity that does not parse with a clear error', () => {
    const c = { resources: { limits: { memory: 'lots' } } };
    assert.throws(() => linuxResources(pod({ containers: [c] }), c, 1 << 30), /Quantity "lots" is invalid/);
  });
});

describe('sandbox and container configs', () => {
  it('uses the host namespaces and no hostname for a host-network pod', () => {
    const cfg = sandboxConfig(pod({ hostNetwork: true, hostPID: true }), { logDirectory: '/l', attempt: 2 });
    assert.equal(cfg.hostname, '');
    assert.deepEqual(cfg.metadata, { name: 'p', uid: 'u-1', namespace: 'ns', attempt: 2 });
    assert.deepEqual(cfg.linux?.securityContext?.namespaceOptions, {
      network: 'NODE',
      pid: 'NODE',
      ipc: 'POD',
    });
    assert.equal(cfg.labels?.['io.kubernetes.pod.uid'], 'u-1');
  });
  it('maps host ports to port mappings off the host network', () => {
    const cfg = sandboxConfig(
      pod({ containers: [{ ports: [{ containerPort: 80, hostPort: 8080 }, { containerPort: 9 }] }] }),
      {
        logDirectory: '/l',
        attempt: 0,
      },
    );
    assert.deepEqual(cfg.portMappings, [{ protocol: 'TCP', containerPort: 80, hostPort: 8080, hostIp: '' }]);
    assert.equal(cfg.hostname, 'p');
  });
  it('expands $(VAR) in command and args and carries the security context', () => {
    const c = {
      name: 'app',
      image: 'img:1',
      command: ['echo', '$(A)'],
      args: ['$(A)$(A)'],
      securityContext: { readOnlyRootFilesystem: true, runAsUser: 7, allowPrivilegeEscalation: false },
    };
    const p = pod({ containers: [c], securityContext: { runAsGroup: 8 } });
    const cfg = containerConfig(p, c, {
      attempt: 3,
      env: new Map([['A', 'z']]),
      mounts: [],
      image: 'img:1',
      init: false,
      memoryCapacity: 0,
    });
    assert.deepEqual([cfg.command, cfg.args, cfg.logPath], [['echo', 'z'], ['zz'], 'app/3.log']);
    const sc = cfg.linux?.securityContext;
    assert.deepEqual(
      [sc?.runAsUser, sc?.runAsGroup, sc?.readonlyRootfs, sc?.noNewPrivs, sc?.privileged],
      [{ value: '7' }, { value: '8' }, true, true, false],
    );
    assert.equal(cfg.annotations?.['kedge.io/container-hash'], containerHash(c));
  });
  it('defaults the pull policy like the API', () => {
    assert.equal(pullPolicy({ image: 'busybox' }), 'Always');
    assert.equal(pullPolicy({ image: 'busybox:latest' }), 'Always');
    assert.equal(pullPolicy({ image: 'localhost:5000/busybox' }), 'Always');
    assert.equal(pullPolicy({ image: 'localhost:5000/busybox:1.36' }), 'IfNotPresent');
    assert.equal(pullPolicy({ image: 'busybox@sha256:abc' }), 'IfNotPresent');
    assert.equal(pullPolicy({ image: 'busybox', imagePullPolicy: 'Never' }), 'Never');
  });
});
