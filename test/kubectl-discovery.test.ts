// The real kubectl against kedge's discovery and OpenAPI documents, served by a tiny plain-HTTP harness
// (the real request handlers live in src/apiserver; this harness only does what the scenarios need).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isPlainObject } from '../src/api/meta.ts';
import { BUILTIN_RESOURCES, type ResourceType } from '../src/api/resource.ts';
import {
  aggregatedContentType,
  aggregatedDiscovery,
  apiGroupList,
  apiResourceList,
  apiVersions,
  negotiateDiscovery,
} from '../src/apiserver/discovery.ts';
import {
  definitionName,
  findUnknownFields,
  openapiV3Document,
  openapiV3Index,
  type Schema,
} from '../src/apiserver/openapi.ts';

const KUBECTL = '/usr/bin/kubectl';
const available = existsSync(KUBECTL);
if (!available && process.env['CI'] === 'true') throw new Error(`kubectl is missing at ${KUBECTL}`);

const widgets: ResourceType = {
  group: 'example.com',
  version: 'v1',
  kind: 'Widget',
  listKind: 'WidgetList',
  plural: 'widgets',
  singular: 'widget',
  namespaced: true,
  shortNames: ['wd'],
  categories: [],
  verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
  subresources: { status: true },
  custom: true,
};
const widgetSchema: Schema = {
  type: 'object',
  properties: {
    spec: {
      type: 'object',
      properties: {
        size: { type: 'integer', description: 'How big the widget is.' },
        color: { type: 'string' },
      },
    },
    status: { type: 'object', properties: { ready: { type: 'boolean' } } },
  },
};
const resources: readonly ResourceType[] = [...BUILTIN_RESOURCES, widgets];
const openapiOptions = { customSchema: (rt: ResourceType) => (rt === widgets ? widgetSchema : undefined) };

interface Logged {
  method: string;
  path: string;
  query: string;
  accept: string;
  contentType: string;
  body: string;
}

type Json = Record<string, unknown>;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, code: number, body: unknown, contentType = 'application/json'): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function status(code: number, reason: string, message: string): Json {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** Just enough strategic merge for the harness: objects merge, lists of named objects merge by name. */
function naiveMerge(current: unknown, patch: unknown): unknown {
  if (isPlainObject(patch) && isPlainObject(current)) {
    const out: Json = { ...current };
    for (const [k, v] of Object.entries(patch)) {
      if (k.startsWith('$')) continue;
      if (v === null) delete out[k];
      else out[k] = naiveMerge(current[k], v);
    }
    return out;
  }
  if (Array.isArray(patch) && Array.isArray(current) && patch.every((e) => isPlainObject(e) && 'name' in e)) {
    const out = current.map((e: unknown) => {
      const match = patch.find((p: Json) => isPlainObject(e) && p['name'] === e['name']);
      return match === undefined ? e : naiveMerge(e, match);
    });
    for (const p of patch)
      if (!current.some((e: unknown) => isPlainObject(e) && e['name'] === p['name'])) out.push(p);
    return out;
  }
  return patch;
}

/** Which served resource type a request path names, and the object name. */
function parseObjectPath(path: string): { rt: ResourceType; collection: string; name?: string } | undefined {
  const m = /^(\/api\/v1|\/apis\/([^/]+)\/([^/]+))(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?$/.exec(
    path,
  );
  if (m === null) return undefined;
  const group = m[2] ?? '';
  const version = m[3] ?? 'v1';
  const rt = resources.find((r) => r.group === group && r.version === version && r.plural === m[5]);
  if (rt === undefined) return undefined;
  const collection = path.slice(0, path.length - (m[6] === undefined ? 0 : m[6].length + 1));
  return m[6] === undefined ? { rt, collection } : { rt, collection, name: m[6] };
}

class Harness {
  readonly log: Logged[] = [];
  readonly objects = new Map<string, Json>();
  #server: Server | undefined;
  #rv = 1;
  url = '';

  async start(): Promise<void> {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) =>
        sendJson(res, 500, status(500, 'InternalError', String(err))),
      );
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }

  /** Requests logged since `mark` (an index into the log). */
  since(mark: number): Logged[] {
    return this.log.slice(mark);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const body = await readBody(req);
    const path = url.pathname;
    this.log.push({
      method: req.method ?? '',
      path,
      query: url.search,
      accept: req.headers.accept ?? '',
      contentType: req.headers['content-type'] ?? '',
      body,
    });
    if (path === '/version') {
      sendJson(res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.0', platform: 'linux/amd64' });
      return;
    }
    if (path === '/api' || path === '/apis') {
      const scope = path === '/api' ? 'api' : 'apis';
      const format = negotiateDiscovery(req.headers.accept);
      if (format !== 'legacy') {
        sendJson(res, 200, aggregatedDiscovery(resources, scope, format), aggregatedContentType(format));
      } else sendJson(res, 200, scope === 'api' ? apiVersions(url.host) : apiGroupList(resources));
      return;
    }
    const gv = /^\/api\/(v1)$|^\/apis\/([^/]+)\/([^/]+)$/.exec(path);
    if (gv !== null) {
      const list = apiResourceList(resources, gv[2] ?? '', gv[1] ?? gv[3] ?? '');
      if (list === undefined)
        sendJson(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
      else sendJson(res, 200, list);
      return;
    }
    if (path === '/openapi/v3') {
      sendJson(res, 200, openapiV3Index(resources, openapiOptions));
      return;
    }
    if (path.startsWith('/openapi/v3/')) {
      const doc = openapiV3Document(resources, path.slice('/openapi/v3/'.length), openapiOptions);
      if (doc === undefined) sendJson(res, 404, status(404, 'NotFound', `no OpenAPI document at ${path}`));
      else sendJson(res, 200, doc);
      return;
    }
    const target = parseObjectPath(path);
    if (target === undefined) {
      sendJson(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
      return;
    }
    this.#object(req.method ?? '', url, body, target, res);
  }

  #object(
    method: string,
    url: URL,
    body: string,
    target: { rt: ResourceType; collection: string; name?: string },
    res: ServerResponse,
  ): void {
    const { rt, collection, name } = target;
    const notFound = (): void =>
      sendJson(res, 404, {
        ...status(
          404,
          'NotFound',
          `${rt.plural}${rt.group === '' ? '' : `.${rt.group}`} "${name}" not found`,
        ),
        details: { name, group: rt.group, kind: rt.plural },
      });
    if (method === 'GET' && name !== undefined) {
      const obj = this.objects.get(`${collection}/${name}`);
      if (obj === undefined) notFound();
      else sendJson(res, 200, obj);
      return;
    }
    if (method === 'POST' && name === undefined) {
      const obj = JSON.parse(body) as Json;
      if (url.searchParams.get('fieldValidation') === 'Strict') {
        const doc = openapiV3Document(
          resources,
          collection.split('/namespaces/')[0]!.slice(1),
          openapiOptions,
        )!;
        const unknown = findUnknownFields(doc, rt, obj);
        if (unknown.length > 0) {
          const fields = unknown.map((f) => `unknown field "${f.slice(1)}"`).join(', ');
          const msg = `${rt.kind} in version "${rt.version}" cannot be handled as a ${rt.kind}: strict decoding error: ${fields}`;
          sendJson(res, 400, status(400, 'BadRequest', msg));
          return;
        }
      }
      const meta = (obj['metadata'] ?? {}) as Json;
      const ns = /\/namespaces\/([^/]+)\//.exec(collection)?.[1];
      obj['metadata'] = {
        ...meta,
        ...(ns === undefined ? {} : { namespace: ns }),
        uid: `uid-${this.#rv}`,
        resourceVersion: String(++this.#rv),
        creationTimestamp: '2026-01-01T00:00:00Z',
      };
      this.objects.set(`${collection}/${String(meta['name'])}`, obj);
      sendJson(res, 201, obj);
      return;
    }
    if (method === 'PATCH' && name !== undefined) {
      const current = this.objects.get(`${collection}/${name}`);
      if (current === undefined) {
        notFound();
        return;
      }
      const next = naiveMerge(current, JSON.parse(body)) as Json;
      (next['metadata'] as Json)['resourceVersion'] = String(++this.#rv);
      this.objects.set(`${collection}/${name}`, next);
      sendJson(res, 200, next);
      return;
    }
    sendJson(
      res,
      405,
      status(405, 'MethodNotAllowed', `${method} ${url.pathname} is not handled by the harness`),
    );
  }
}

function deployment(image: string, extraSpec = ''): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2${extraSpec}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: ${image}
        ports:
        - containerPort: 80
      - name: sidecar
        image: busybox
`;
}

function showRequests(list: readonly Logged[]): string {
  return list
    .map((r) => {
      const body =
        r.body === '' ? '' : `\n    body: ${r.body.length > 600 ? `${r.body.slice(0, 600)}...` : r.body}`;
      const ct = r.contentType === '' ? '' : ` content-type=${r.contentType}`;
      return `  ${r.method} ${r.path}${r.query} accept=${r.accept}${ct}${body}`;
    })
    .join('\n');
}

describe('kubectl against kedge discovery and OpenAPI', {
  skip: available ? false : 'kubectl not installed',
}, () => {
  const harness = new Harness();
  let dir = '';

  async function kubectl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(
        KUBECTL,
        [`--kubeconfig=${join(dir, 'kubeconfig')}`, `--cache-dir=${join(dir, 'cache')}`, ...args],
        { env: { ...process.env, HOME: dir, KUBECTL_COMMAND_HEADERS: 'false' }, timeout: 60_000 },
        (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  async function manifest(name: string, text: string): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, text);
    return file;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kedge-kubectl-'));
    await harness.start();
    await writeFile(
      join(dir, 'kubeconfig'),
      `apiVersion: v1
kind: Config
clusters:
- name: kedge
  cluster: {server: "${harness.url}"}
users:
- name: admin
  user: {}
contexts:
- name: kedge
  context: {cluster: kedge, user: admin, namespace: default}
current-context: kedge
`,
    );
  });

  after(async () => {
    await harness.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('api-resources lists every resource with short names and scope, from aggregated discovery', async (t) => {
    const mark = harness.log.length;
    const out = await kubectl('api-resources');
    assert.equal(out.code, 0, out.stderr);
    const rows = out.stdout
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/));
    const row = (name: string, apiVersion: string): string[] | undefined =>
      rows.find((r) => r[0] === name && r.includes(apiVersion));
    assert.deepEqual(row('pods', 'v1'), ['pods', 'po', 'v1', 'true', 'Pod']);
    assert.deepEqual(row('nodes', 'v1'), ['nodes', 'no', 'v1', 'false', 'Node']);
    assert.deepEqual(row('deployments', 'apps/v1'), [
      'deployments',
      'deploy',
      'apps/v1',
      'true',
      'Deployment',
    ]);
    assert.deepEqual(row('customresourcedefinitions', 'apiextensions.k8s.io/v1'), [
      'customresourcedefinitions',
      'crd,crds',
      'apiextensions.k8s.io/v1',
      'false',
      'CustomResourceDefinition',
    ]);
    assert.deepEqual(row('leases', 'coordination.k8s.io/v1'), [
      'leases',
      'coordination.k8s.io/v1',
      'true',
      'Lease',
    ]);
    assert.deepEqual(row('widgets', 'example.com/v1'), ['widgets', 'wd', 'example.com/v1', 'true', 'Widget']);
    const seen = harness.since(mark);
    t.diagnostic(`kubectl api-resources requests:\n${showRequests(seen)}`);
    const discovery = seen.filter((r) => r.path === '/api' || r.path === '/apis');
    assert.ok(discovery.length >= 2, 'kubectl asked for /api and /apis');
    for (const r of discovery) assert.equal(negotiateDiscovery(r.accept), 'v2', `Accept: ${r.accept}`);
    // Aggregated discovery answered everything: no per-group-version fetches.
    assert.deepEqual(
      seen.filter((r) => /^\/apis?\/[^/]+/.test(r.path)).map((r) => r.path),
      [],
    );
  });

  test('get --raw /apis returns the group list', async () => {
    const out = await kubectl('get', '--raw', '/apis');
    assert.equal(out.code, 0, out.stderr);
    const doc = JSON.parse(out.stdout) as { kind: string; groups: { name: string }[] };
    assert.equal(doc.kind, 'APIGroupList');
    assert.ok(doc.groups.some((g) => g.name === 'apps'));
    assert.ok(doc.groups.some((g) => g.name === 'example.com'));
  });

  test('apply creates, then re-apply sends a strategic merge patch; no OpenAPI v2 needed', async (t) => {
    const file = await manifest('deploy.yaml', deployment('nginx:1.25'));
    let mark = harness.log.length;
    const created = await kubectl('apply', '-f', file);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /deployment\.apps\/web created/);
    const createRequests = harness.since(mark);
    t.diagnostic(`apply (new object):\n${showRequests(createRequests)}`);
    const post = createRequests.find((r) => r.method === 'POST');
    assert.ok(post !== undefined);
    assert.equal(post.path, '/apis/apps/v1/namespaces/default/deployments');
    const postQuery = new URLSearchParams(post.query);
    assert.equal(postQuery.get('fieldValidation'), 'Strict');
    assert.equal(postQuery.get('fieldManager'), 'kubectl-client-side-apply');

    await writeFile(file, deployment('nginx:1.26'));
    mark = harness.log.length;
    const configured = await kubectl('apply', '-f', file);
    assert.equal(configured.code, 0, configured.stderr);
    assert.match(configured.stdout, /deployment\.apps\/web configured/);
    assert.doesNotMatch(configured.stderr, /openapi/i);
    const updateRequests = harness.since(mark);
    t.diagnostic(`apply (existing object, image changed):\n${showRequests(updateRequests)}`);
    const patch = updateRequests.find((r) => r.method === 'PATCH');
    assert.ok(patch !== undefined);
    assert.equal(patch.path, '/apis/apps/v1/namespaces/default/deployments/web');
    assert.equal(patch.contentType, 'application/strategic-merge-patch+json');
    assert.equal(new URLSearchParams(patch.query).get('fieldValidation'), 'Strict');
    const body = JSON.parse(patch.body) as { spec: { template: { spec: Json } } };
    // The merge key `name` from our schema: the patch names the container and keeps the list order.
    assert.deepEqual(body.spec.template.spec['$setElementOrder/containers'], [
      { name: 'web' },
      { name: 'sidecar' },
    ]);
    assert.deepEqual(body.spec.template.spec['containers'], [{ image: 'nginx:1.26', name: 'web' }]);
    const stored = harness.objects.get('/apis/apps/v1/namespaces/default/deployments/web');
    assert.match(JSON.stringify(stored), /nginx:1\.26/);
    assert.ok(
      !harness.log.some((r) => r.path.startsWith('/openapi/v2')),
      'kubectl never asked for /openapi/v2',
    );
  });

  test('create -f with default validation sends fieldValidation=Strict', async (t) => {
    const file = await manifest(
      'cm.yaml',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: "1"}\n',
    );
    const mark = harness.log.length;
    const out = await kubectl('create', '-f', file);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /configmap\/settings created/);
    const seen = harness.since(mark);
    t.diagnostic(`create -f:\n${showRequests(seen)}`);
    const post = seen.find((r) => r.method === 'POST');
    assert.equal(post?.path, '/api/v1/namespaces/default/configmaps');
    assert.equal(new URLSearchParams(post?.query).get('fieldValidation'), 'Strict');
  });

  test('an unknown field reaches the server with fieldValidation=Strict and is rejected there', async (t) => {
    const file = await manifest(
      'bad.yaml',
      deployment('nginx:1.25', '\n  replicass: 3').replace('name: web\n', 'name: bad\n'),
    );
    const mark = harness.log.length;
    const out = await kubectl('apply', '-f', file);
    assert.notEqual(out.code, 0);
    assert.match(out.stderr, /BadRequest/);
    assert.match(out.stderr, /unknown field "spec\.replicass"/);
    const seen = harness.since(mark);
    t.diagnostic(`apply with an unknown field:\n${showRequests(seen)}\n  stderr: ${out.stderr.trim()}`);
    const post = seen.find((r) => r.method === 'POST');
    assert.ok(post !== undefined, 'kubectl sent the object instead of rejecting it itself');
    assert.equal(new URLSearchParams(post.query).get('fieldValidation'), 'Strict');
  });

  test('custom resources: apply uses a JSON merge patch (no strategic merge for CRDs)', async (t) => {
    const cr = (size: number): string =>
      `apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: ${size}, color: red}\n`;
    const file = await manifest('widget.yaml', cr(1));
    const created = await kubectl('apply', '-f', file);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /widget\.example\.com\/w1 created/);
    await writeFile(file, cr(2));
    const mark = harness.log.length;
    const configured = await kubectl('apply', '-f', file);
    assert.equal(configured.code, 0, configured.stderr);
    // kubectl asks /openapi/v2 (protobuf only) for a CR's patch type; our 404 makes it fall back quietly.
    assert.equal(configured.stderr, '');
    const seen = harness.since(mark);
    t.diagnostic(`apply of a custom resource (existing):\n${showRequests(seen)}`);
    const patch = seen.find((r) => r.method === 'PATCH');
    assert.equal(patch?.contentType, 'application/merge-patch+json');
    assert.deepEqual((JSON.parse(patch?.body ?? '{}') as { spec: unknown }).spec, { size: 2 });

    const bad = await manifest(
      'bad-widget.yaml',
      cr(1).replace('color: red', 'colour: red').replace('w1', 'w2'),
    );
    const rejected = await kubectl('create', '-f', bad);
    assert.notEqual(rejected.code, 0);
    assert.match(rejected.stderr, /unknown field "spec\.colour"/);
  });

  test('explain reads the OpenAPI v3 schemas', async () => {
    const out = await kubectl('explain', 'deployment.spec.replicas');
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /FIELD:\s+replicas\s+<integer>/);
    assert.match(out.stdout, /Number of desired pods/);
    const containers = await kubectl('explain', 'pods.spec.containers.ports');
    assert.equal(containers.code, 0, containers.stderr);
    assert.match(containers.stdout, /containerPort\s+<integer> -required-/);
    const widget = await kubectl('explain', 'widgets.spec.size');
    assert.equal(widget.code, 0, widget.stderr);
    assert.match(widget.stdout, /How big the widget is/);
  });

  test('the documents kubectl read name kinds the way Kubernetes does', () => {
    assert.equal(
      definitionName({ group: 'apps', version: 'v1', kind: 'Deployment' }),
      'io.k8s.api.apps.v1.Deployment',
    );
    assert.equal(definitionName(widgets, true), 'com.example.v1.Widget');
  });
});
