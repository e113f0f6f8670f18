// The real kubectl 1.32 against a capture server: the protobuf bodies it sends for `create` and
// `auth can-i` decode into the objects a JSON client would send, and kubectl accepts JSON answers.
// Set KEDGE_WRITE_PROTOBUF_FIXTURES=1 to refresh src/apiserver/protobuf/fixtures/ from the captures.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { decodeProtobufObject, isProtobufContentType } from '../src/apiserver/protobuf/decode.ts';
import { isKedgeError } from '../src/lib/errors.ts';

const run = promisify(execFile);
const KUBECTL = '/usr/bin/kubectl';
const haveKubectl = existsSync(KUBECTL);
if (!haveKubectl && process.env['CI'] === 'true') throw new Error(`kubectl is missing at ${KUBECTL}`);
const fixturesDir = new URL('../src/apiserver/protobuf/fixtures/', import.meta.url);
const writeFixtures = process.env['KEDGE_WRITE_PROTOBUF_FIXTURES'] === '1';

interface Captured {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  decoded?: Record<string, unknown>;
}

/** Bytes that are not UTF-8, so kubectl puts them in binaryData and Secret data stays binary. */
const BINARY = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x41, 0x0a]);

describe('kubectl 1.32 protobuf bodies', { skip: haveKubectl ? false : `no kubectl at ${KUBECTL}` }, () => {
  let server: Server;
  let dir: string;
  let captured: Captured[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kedge-kubectl-pb-'));
    await writeFile(join(dir, 'blob.bin'), BINARY);
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const entry: Captured = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks),
        };
        captured.push(entry);
        const path = entry.path.split('?', 1)[0];
        const reply = (code: number, body: unknown) => {
          res.writeHead(code, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        if (path === '/version') {
          reply(200, { major: '1', minor: '32', gitVersion: 'v1.32.0', platform: 'linux/amd64' });
        } else if (entry.method === 'POST') {
          try {
            const object = decodeProtobufObject(entry.body);
            entry.decoded = object;
            const answer =
              object.kind === 'SelfSubjectAccessReview'
                ? { ...object, status: { allowed: true, reason: 'kedge test' } }
                : object;
            reply(201, answer);
          } catch (err) {
            reply(400, {
              kind: 'Status',
              apiVersion: 'v1',
              status: 'Failure',
              reason: 'BadRequest',
              code: 400,
              message: isKedgeError(err) ? err.message : String(err),
            });
          }
        } else {
          reply(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const kubeconfig = [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: capture',
      `  cluster: {server: "http://127.0.0.1:${port}"}`,
      'users:',
      '- name: tester',
      '  user: {token: test-token}',
      'contexts:',
      '- name: capture',
      '  context: {cluster: capture, user: tester}',
      'current-context: capture',
      '',
    ].join('\n');
    await writeFile(join(dir, 'kubeconfig'), kubeconfig);
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs kubectl and returns its output and the single POST it made (decoded). */
  async function kubectl(args: string[], fixture?: string) {
    captured = [];
    const { stdout } = await run(KUBECTL, args, {
      env: {
        ...process.env,
        KUBECONFIG: join(dir, 'kubeconfig'),
        HOME: dir,
        KUBECACHEDIR: join(dir, 'cache'),
      },
      cwd: dir,
    });
    const posts = captured.filter((c) => c.method === 'POST');
    assert.equal(posts.length, 1, `one POST for kubectl ${args.join(' ')}`);
    const post = posts[0]!;
    assert.equal(post.headers['content-type'], 'application/vnd.kubernetes.protobuf');
    assert.equal(post.headers['accept'], 'application/vnd.kubernetes.protobuf,application/json');
    assert.ok(isProtobufContentType(post.headers['content-type']));
    assert.ok(post.decoded, `decoded body for kubectl ${args.join(' ')}`);
    if (writeFixtures && fixture !== undefined)
      await writeFile(new URL(`${fixture}.pb`, fixturesDir), post.body);
    const discovery = captured.filter((c) => c.method === 'GET' && !c.path.startsWith('/version'));
    return { stdout, post, object: post.decoded, discovery: discovery.map((c) => c.path.split('?', 1)[0]) };
  }

  test('create namespace', async () => {
    const { stdout, post, object, discovery } = await kubectl(['create', 'namespace', 'edge-1'], 'namespace');
    assert.equal(post.path.split('?', 1)[0], '/api/v1/namespaces');
    assert.deepEqual(object, {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'edge-1' },
      spec: {},
      status: {},
    });
    // kubectl read the name back from the JSON answer to its protobuf request.
    assert.match(stdout, /^namespace\/edge-1 created$/m);
    assert.deepEqual(discovery, []);
  });

  test('create configmap with literals and a binary file', async () => {
    const { stdout, post, object } = await kubectl(
      [
        'create',
        'configmap',
        'cfg',
        '-n',
        'team-a',
        '--from-literal=mode=fast',
        '--from-literal=level=3',
        '--from-file=blob=blob.bin',
      ],
      'configmap',
    );
    assert.equal(post.path.split('?', 1)[0], '/api/v1/namespaces/team-a/configmaps');
    assert.deepEqual(object, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cfg', namespace: 'team-a' },
      data: { level: '3', mode: 'fast' },
      binaryData: { blob: BINARY.toString('base64') },
    });
    assert.match(stdout, /^configmap\/cfg created$/m);
  });

  test('create secret generic', async () => {
    const { stdout, object } = await kubectl(
      [
        'create',
        'secret',
        'generic',
        'creds',
        '--from-literal=user=admin',
        '--from-literal=password=p@ss w0rd',
        '--from-file=key=blob.bin',
        '--type=Opaque',
      ],
      'secret',
    );
    assert.deepEqual(object, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'creds' },
      data: {
        key: BINARY.toString('base64'),
        password: Buffer.from('p@ss w0rd').toString('base64'),
        user: Buffer.from('admin').toString('base64'),
      },
      type: 'Opaque',
    });
    assert.match(stdout, /^secret\/creds created$/m);
  });

  test('create deployment', async () => {
    const { stdout, post, object } = await kubectl(
      ['create', 'deployment', 'web', '--image=nginx:1.25', '--replicas=3', '--port=8080'],
      'deployment',
    );
    assert.equal(post.path.split('?', 1)[0], '/apis/apps/v1/namespaces/default/deployments');
    assert.deepEqual(object, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', labels: { app: 'web' } },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            containers: [
              { name: 'nginx', image: 'nginx:1.25', ports: [{ containerPort: 8080 }], resources: {} },
            ],
          },
        },
        strategy: {},
      },
      status: {},
    });
    assert.match(stdout, /^deployment\.apps\/web created$/m);
  });

  test('create deployment with zero replicas keeps the zero', async () => {
    const { object } = await kubectl(['create', 'deployment', 'idle', '--image=busybox', '--replicas=0']);
    assert.equal((object['spec'] as { replicas?: number }).replicas, 0);
  });

  test('create service clusterip with numeric and named target ports', async () => {
    const { stdout, object } = await kubectl(
      ['create', 'service', 'clusterip', 'api', '--tcp=80:8080', '--tcp=443:https'],
      'service',
    );
    assert.deepEqual(object, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'api', labels: { app: 'api' } },
      spec: {
        ports: [
          { name: '80-8080', protocol: 'TCP', port: 80, targetPort: 8080 },
          { name: '443-https', protocol: 'TCP', port: 443, targetPort: 'https' },
        ],
        selector: { app: 'api' },
        type: 'ClusterIP',
      },
      status: { loadBalancer: {} },
    });
    assert.match(stdout, /^service\/api created$/m);
  });

  test('create headless service', async () => {
    const { object } = await kubectl(['create', 'service', 'clusterip', 'peers', '--clusterip=None']);
    const spec = object['spec'] as Record<string, unknown>;
    assert.equal(spec['clusterIP'], 'None');
    assert.equal(spec['type'], 'ClusterIP');
  });

  test('create serviceaccount', async () => {
    const { stdout, object } = await kubectl(['create', 'serviceaccount', 'robot'], 'serviceaccount');
    assert.deepEqual(object, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'robot' } });
    assert.match(stdout, /^serviceaccount\/robot created$/m);
  });

  test('create job', async () => {
    const { stdout, post, object } = await kubectl(
      ['create', 'job', 'once', '--image=busybox:1.36', '--', 'sh', '-c', 'echo hi'],
      'job',
    );
    assert.equal(post.path.split('?', 1)[0], '/apis/batch/v1/namespaces/default/jobs');
    assert.deepEqual(object, {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'once' },
      spec: {
        template: {
          metadata: {},
          spec: {
            containers: [
              { name: 'once', image: 'busybox:1.36', command: ['sh', '-c', 'echo hi'], resources: {} },
            ],
            restartPolicy: 'Never',
          },
        },
      },
      status: {},
    });
    assert.match(stdout, /^job\.batch\/once created$/m);
  });

  test('create cronjob', async () => {
    const { object } = await kubectl(
      ['create', 'cronjob', 'tick', '--image=busybox', '--schedule=*/5 * * * *', '--', 'date'],
      'cronjob',
    );
    const spec = object['spec'] as {
      schedule: string;
      jobTemplate: { spec: { template: { spec: unknown } } };
    };
    assert.equal(spec.schedule, '*/5 * * * *');
    assert.deepEqual(spec.jobTemplate.spec.template.spec, {
      containers: [{ name: 'tick', image: 'busybox', command: ['date'], resources: {} }],
      restartPolicy: 'OnFailure',
    });
  });

  test('auth can-i create pods (resource attributes)', async () => {
    const { stdout, post, object, discovery } = await kubectl(
      ['auth', 'can-i', 'create', 'pods'],
      'ssar-resource',
    );
    assert.equal(post.path.split('?', 1)[0], '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews');
    assert.deepEqual(object, {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      metadata: {},
      spec: { resourceAttributes: { namespace: 'default', verb: 'create', resource: 'pods' } },
      status: {},
    });
    assert.equal(stdout.trim(), 'yes');
    // can-i resolves the resource through discovery (it asks twice; our 404s make it use the name as given).
    assert.deepEqual(new Set(discovery), new Set(['/api', '/apis']));
  });

  test('auth can-i with subresource and namespace', async () => {
    const { object } = await kubectl([
      'auth',
      'can-i',
      'get',
      'pods',
      '--subresource=log',
      '-n',
      'kube-system',
    ]);
    assert.deepEqual((object['spec'] as Record<string, unknown>)['resourceAttributes'], {
      namespace: 'kube-system',
      verb: 'get',
      resource: 'pods',
      subresource: 'log',
    });
  });

  test('auth can-i on a non-resource URL', async () => {
    const { stdout, object, discovery } = await kubectl(
      ['auth', 'can-i', 'get', '/healthz'],
      'ssar-nonresource',
    );
    assert.deepEqual(object['spec'], { nonResourceAttributes: { path: '/healthz', verb: 'get' } });
    assert.equal(stdout.trim(), 'yes');
    assert.deepEqual(discovery, []);
  });
});
