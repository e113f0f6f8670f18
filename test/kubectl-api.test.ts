// The real kubectl (Debian's dispatcher runs 1.32 against our /version) against a real `kedge server` process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KUBECTL, kubectl, kubectlOk } from './harness/kubectl.ts';
import { removeDir, type ServerProcess, startServerProcess } from './harness/server.ts';

const deployment = (image: string): string => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      nodeSelector: {kedge.io/edge: "true"}
      containers:
      - name: web
        image: ${image}
        ports: [{containerPort: 80}]
        env: [{name: A, value: "1"}]
      - name: sidecar
        image: busybox:1.36
`;

const crontabCrd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Spec, type: string, jsonPath: .spec.cronSpec}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              image: {type: string}
              replicas: {type: integer, default: 1}
          status:
            type: object
            properties:
              ok: {type: boolean}
`;

const crontab = (spec: string): string => `apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: nightly, namespace: default}
spec: {cronSpec: "${spec}", image: backup:1}
`;

describe('kubectl against kedge server', { concurrency: false }, () => {
  let server: ServerProcess;
  let kc: string;
  const k = (...args: string[]): Promise<string> => kubectlOk(kc, args);
  const kIn = (input: string, ...args: string[]): Promise<string> => kubectlOk(kc, args, { input });

  before(async () => {
    server = await startServerProcess();
    kc = server.kubeconfig;
  });
  after(async () => {
    await server.stop();
    await removeDir(server.dataDir);
  });

  it('reports version 1.32 and lists the system namespaces', async () => {
    const out = await k('version', '-o', 'json');
    assert.equal(JSON.parse(out).serverVersion.minor, '32');
    const ns = await k('get', 'namespaces');
    assert.match(ns, /^NAME\s+STATUS\s+AGE/m);
    assert.match(ns, /^default\s+Active\s+/m);
    assert.match(ns, /^kube-system\s+Active/m);
  });

  it('api-resources lists built-in kinds with short names', async () => {
    const out = await k('api-resources');
    assert.match(out, /^pods\s+po\s+v1\s+true\s+Pod$/m);
    assert.match(out, /^deployments\s+deploy\s+apps\/v1\s+true\s+Deployment$/m);
    assert.match(
      out,
      /^customresourcedefinitions\s+crd,crds\s+apiextensions\.k8s\.io\/v1\s+false\s+CustomResourceDefinition$/m,
    );
  });

  it('apply creates a Deployment, then updates its image', async () => {
    assert.match(await kIn(deployment('nginx:1.25'), 'apply', '-f', '-'), /deployment.apps\/web created/);
    assert.match(await kIn(deployment('nginx:1.25'), 'apply', '-f', '-'), /deployment.apps\/web unchanged/);
    assert.match(await kIn(deployment('nginx:1.27'), 'apply', '-f', '-'), /deployment.apps\/web configured/);
    const obj = JSON.parse(await k('get', 'deployment', 'web', '-o', 'json'));
    assert.equal(obj.spec.template.spec.containers[0].image, 'nginx:1.27');
    assert.equal(obj.spec.template.spec.containers[1].image, 'busybox:1.36');
    assert.equal(obj.metadata.generation, 2);
    assert.equal(obj.spec.strategy.type, 'RollingUpdate');
    const yaml = await k('get', 'deploy', 'web', '-o', 'yaml');
    assert.match(yaml, /image: nginx:1\.27/);
  });

  it('applies a CRD and then a custom resource, and prints its columns', async () => {
    assert.match(await kIn(crontabCrd, 'apply', '-f', '-'), /created/);
    await k('wait', '--for', 'condition=established', '--timeout=30s', 'crd/crontabs.stable.example.com');
    assert.match(
      await kIn(crontab('* * * * */5'), 'apply', '-f', '-'),
      /crontab.stable.example.com\/nightly created/,
    );
    assert.match(await kIn(crontab('0 3 * * *'), 'apply', '-f', '-'), /configured/);
    const table = await k('get', 'crontabs');
    assert.match(table, /^NAME\s+SPEC\s+REPLICAS\s+AGE$/m);
    assert.match(table, /^nightly\s+0 3 \* \* \*\s+1\s+\d+s$/m);
    assert.match(await k('get', 'ct', 'nightly', '-o', 'jsonpath={.spec.replicas}'), /^1$/);
  });

  it('refuses a custom resource that breaks its schema', async () => {
    const bad = crontab('x').replace('image: backup:1', 'image: backup:1, replicas: "three"');
    const r = await kubectl(kc, ['apply', '-f', '-'], { input: bad.replace('nightly', 'bad') });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /spec\.replicas/);
  });

  it('create -f, get with selectors, chunking, -A and -o wide', async () => {
    const cms = [1, 2, 3, 4, 5]
      .map(
        (i) =>
          `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm${i}, labels: {num: "${i}", group: ${i % 2 ? 'odd' : 'even'}}}\ndata: {k: v${i}}\n`,
      )
      .join('---\n');
    assert.match(await kIn(cms, 'create', '-f', '-'), /configmap\/cm5 created/);
    const again = await kubectl(kc, ['create', '-f', '-'], { input: cms });
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /configmaps "cm1" already exists/);
    const odd = await k('get', 'cm', '-l', 'group=odd', '-o', 'name');
    assert.deepEqual(odd.trim().split('\n'), ['configmap/cm1', 'configmap/cm3', 'configmap/cm5']);
    const notIn = await k('get', 'cm', '-l', 'num notin (1,2),group', '-o', 'name');
    assert.deepEqual(notIn.trim().split('\n'), ['configmap/cm3', 'configmap/cm4', 'configmap/cm5']);
    const byName = await k('get', 'cm', '--field-selector', 'metadata.name=cm2', '-o', 'name');
    assert.equal(byName.trim(), 'configmap/cm2');
    const chunked = await k('get', 'cm', '--chunk-size=2', '-l', 'num', '-o', 'name');
    assert.equal(chunked.trim().split('\n').length, 5);
    const all = await k('get', 'cm', '-A');
    assert.match(all, /^NAMESPACE\s+NAME\s+DATA\s+AGE$/m);
    assert.match(all, /^default\s+cm4\s+1\s+/m);
    const bad = await kubectl(kc, ['get', 'cm', '--field-selector', 'spec.nope=1']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /field label not supported: spec\.nope/);
  });

  it('describes a pod and a node, and prints pods wide', async () => {
    await kIn(
      'apiVersion: v1\nkind: Node\nmetadata: {name: edge-1, labels: {kedge.io/edge: "true"}}\nstatus:\n  conditions: [{type: Ready, status: "True", reason: KubeletReady, message: ok}]\n  addresses: [{type: InternalIP, address: 10.0.0.7}]\n  nodeInfo: {kubeletVersion: v1.32.0-kedge, osImage: Debian, kernelVersion: "6.1", containerRuntimeVersion: "containerd://1.6", architecture: arm64, operatingSystem: linux, machineID: m, systemUUID: s, bootID: b, kubeProxyVersion: "", }\n',
      'create',
      '-f',
      '-',
    );
    await kIn(
      'apiVersion: v1\nkind: Pod\nmetadata: {name: p1, labels: {app: p}}\nspec:\n  nodeName: edge-1\n  containers: [{name: c, image: busybox}]\n',
      'apply',
      '-f',
      '-',
    );
    const pod = await k('describe', 'pod', 'p1');
    assert.match(pod, /^Name:\s+p1$/m);
    assert.match(pod, /^Node:\s+edge-1/m);
    assert.match(pod, /^Status:\s+Pending$/m);
    const node = await k('describe', 'node', 'edge-1');
    assert.match(node, /^Name:\s+edge-1$/m);
    assert.match(node, /InternalIP:\s+10\.0\.0\.7/);
    const wide = await k('get', 'pods', '-o', 'wide');
    assert.match(
      wide,
      /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s+NOMINATED NODE\s+READINESS GATES$/m,
    );
    assert.match(wide, /^p1\s+0\/1\s+Pending\s+0\s+\S+\s+<none>\s+edge-1\s+/m);
    const nodes = await k('get', 'nodes');
    assert.match(nodes, /^edge-1\s+Ready\s+<none>\s+\S+\s+v1\.32\.0-kedge$/m);
  });

  it('patches with strategic merge, merge and JSON patch; labels and annotates', async () => {
    await k(
      'patch',
      'deployment',
      'web',
      '-p',
      '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}',
    );
    let obj = JSON.parse(await k('get', 'deploy', 'web', '-o', 'json'));
    assert.equal(obj.spec.template.spec.containers.length, 2, 'strategic merge keeps the other container');
    assert.equal(obj.spec.template.spec.containers[0].image, 'nginx:1.28');
    await k('patch', 'deployment', 'web', '--type', 'merge', '-p', '{"spec":{"replicas":5}}');
    await k(
      'patch',
      'deployment',
      'web',
      '--type',
      'json',
      '-p',
      '[{"op":"add","path":"/spec/minReadySeconds","value":3}]',
    );
    obj = JSON.parse(await k('get', 'deploy', 'web', '-o', 'json'));
    assert.equal(obj.spec.replicas, 5);
    assert.equal(obj.spec.minReadySeconds, 3);
    const failed = await kubectl(kc, [
      'patch',
      'deployment',
      'web',
      '--type',
      'json',
      '-p',
      '[{"op":"test","path":"/spec/replicas","value":9}]',
    ]);
    assert.notEqual(failed.code, 0);
    await k('label', 'deploy', 'web', 'stage=prod');
    await k('annotate', 'deploy', 'web', 'owner=team-a');
    obj = JSON.parse(await k('get', 'deploy', 'web', '-o', 'json'));
    assert.equal(obj.metadata.labels.stage, 'prod');
    assert.equal(obj.metadata.annotations.owner, 'team-a');
    await k('label', 'deploy', 'web', 'stage-');
    obj = JSON.parse(await k('get', 'deploy', 'web', '-o', 'json'));
    assert.equal(obj.metadata.labels.stage, undefined);
    await k('scale', 'deploy', 'web', '--replicas=3');
    assert.equal(await k('get', 'deploy', 'web', '-o', 'jsonpath={.spec.replicas}'), '3');
  });

  it('replace updates, and a stale replace conflicts', async () => {
    const current = JSON.parse(await k('get', 'cm', 'cm1', '-o', 'json'));
    current.data.k = 'replaced';
    await kIn(JSON.stringify(current), 'replace', '-f', '-');
    assert.equal(await k('get', 'cm', 'cm1', '-o', 'jsonpath={.data.k}'), 'replaced');
    current.data.k = 'stale';
    const r = await kubectl(kc, ['replace', '-f', '-'], { input: JSON.stringify(current) });
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /the object has been modified; please apply your changes to the latest version and try again/,
    );
  });

  it('delete waits for finalizers; wait --for=delete returns when they are removed', async () => {
    await kIn(
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [example.com/hold]}\n',
      'create',
      '-f',
      '-',
    );
    await k('delete', 'cm', 'held', '--wait=false');
    const held = JSON.parse(await k('get', 'cm', 'held', '-o', 'json'));
    assert.ok(held.metadata.deletionTimestamp);
    const waiter = kubectl(kc, ['wait', '--for=delete', 'cm/held', '--timeout=30s']);
    await k('patch', 'cm', 'held', '--type', 'json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]');
    const w = await waiter;
    assert.equal(w.code, 0, w.stderr);
    const gone = await kubectl(kc, ['get', 'cm', 'held']);
    assert.match(gone.stderr, /configmaps "held" not found/);
  });

  it('get -w sees ADDED, MODIFIED and DELETED', async () => {
    const child = spawn(KUBECTL, ['get', 'configmaps', '-w', '--output-watch-events', '-l', 'watched=yes'], {
      env: { ...process.env, KUBECONFIG: kc },
    });
    let out = '';
    const seen = new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (/DELETED\s+w1/.test(out)) resolve();
      });
    });
    const added = new Promise<void>((resolve) => {
      const check = (): void => (out.includes('ADDED') ? resolve() : void setTimeout(check, 50));
      check();
    });
    await kIn(
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: w1, labels: {watched: "yes"}}\n',
      'create',
      '-f',
      '-',
    );
    await added;
    await k('patch', 'cm', 'w1', '-p', '{"data":{"x":"1"}}');
    await k('delete', 'cm', 'w1');
    await seen;
    child.kill();
    assert.match(out, /ADDED\s+w1\s+0\s/);
    assert.match(out, /MODIFIED\s+w1\s+1\s/);
  });

  it('kubectl create <kind> (protobuf bodies) and auth can-i', async () => {
    await k('create', 'namespace', 'team-a');
    await k('create', 'configmap', 'app', '-n', 'team-a', '--from-literal=mode=fast');
    await k('create', 'secret', 'generic', 'creds', '-n', 'team-a', '--from-literal=password=s3cr3t');
    await k(
      'create',
      'deployment',
      'api',
      '-n',
      'team-a',
      '--image=registry.local/api:2',
      '--replicas=3',
      '--port=8080',
    );
    await k('create', 'service', 'clusterip', 'api', '-n', 'team-a', '--tcp=80:8080');
    await k('create', 'serviceaccount', 'robot', '-n', 'team-a');
    await k('create', 'job', 'once', '-n', 'team-a', '--image=busybox');
    assert.equal(await k('get', 'cm', 'app', '-n', 'team-a', '-o', 'jsonpath={.data.mode}'), 'fast');
    const secret = await k('get', 'secret', 'creds', '-n', 'team-a', '-o', 'jsonpath={.data.password}');
    assert.equal(Buffer.from(secret, 'base64').toString(), 's3cr3t');
    const dep = JSON.parse(await k('get', 'deploy', 'api', '-n', 'team-a', '-o', 'json'));
    assert.equal(dep.spec.replicas, 3);
    assert.equal(dep.spec.template.spec.containers[0].image, 'registry.local/api:2');
    const svc = JSON.parse(await k('get', 'svc', 'api', '-n', 'team-a', '-o', 'json'));
    assert.match(svc.spec.clusterIP, /^10\.43\.\d+\.\d+$/);
    assert.equal(svc.spec.ports[0].targetPort, 8080);
    const job = JSON.parse(await k('get', 'job', 'once', '-n', 'team-a', '-o', 'json'));
    assert.ok(job.spec.selector.matchLabels['batch.kubernetes.io/controller-uid']);
    assert.equal((await k('auth', 'can-i', 'create', 'pods')).trim(), 'yes');
  });

  it('deletes a namespace: Terminating refuses new content; gone once its content is', async () => {
    await kIn(
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hold, namespace: team-a, finalizers: [example.com/hold]}\n',
      'create',
      '-f',
      '-',
    );
    await k('delete', 'namespace', 'team-a', '--wait=false');
    assert.equal(await k('get', 'ns', 'team-a', '-o', 'jsonpath={.status.phase}'), 'Terminating');
    const r = await kubectl(kc, ['create', 'configmap', 'late', '-n', 'team-a']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /because it is being terminated/);
    // The namespace controller deleted the rest; the held ConfigMap waits for its finalizer.
    await k('wait', '--for=delete', 'deploy/api', '-n', 'team-a', '--timeout=30s');
    await k(
      'patch',
      'cm',
      'hold',
      '-n',
      'team-a',
      '--type',
      'json',
      '-p',
      '[{"op":"remove","path":"/metadata/finalizers"}]',
    );
    await k('wait', '--for=delete', 'namespace/team-a', '--timeout=30s');
  });

  it('rejects anonymous requests with 401 and a Status', async () => {
    const ca = await readFile(join(server.dataDir, 'tls', 'ca.crt'), 'utf8');
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(`${server.url}/api/v1/namespaces`, { ca }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 401);
    assert.equal(JSON.parse(body).reason, 'Unauthorized');
  });
});
