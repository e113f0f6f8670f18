import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { BUILTIN_RESOURCES, type ResourceType } from '../api/resource.ts';
import {
  builtinSchemas,
  customResourceSchema,
  definitionName,
  findUnknownFields,
  type JsonValue,
  type OpenApiDocument,
  openapiHash,
  openapiPrefixes,
  openapiV3Document,
  openapiV3Index,
  type Schema,
  schemaForKind,
} from './openapi.ts';

const widgets: ResourceType = {
  group: 'stable.example.com',
  version: 'v1',
  kind: 'Widget',
  listKind: 'WidgetList',
  plural: 'widgets',
  singular: 'widget',
  namespaced: true,
  shortNames: [],
  categories: [],
  verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
  subresources: { status: true },
  custom: true,
};

function doc(prefix: string, resources: readonly ResourceType[] = BUILTIN_RESOURCES): OpenApiDocument {
  const d = openapiV3Document(resources, prefix);
  assert.ok(d !== undefined, `no document for ${prefix}`);
  return d;
}

function op(d: OpenApiDocument, path: string, method: string): Schema {
  const item = d.paths[path];
  assert.ok(item !== undefined, `no path ${path}`);
  const o = item[method];
  assert.ok(typeof o === 'object' && o !== null && !Array.isArray(o), `no ${method} on ${path}`);
  return o;
}

function paramNames(o: Schema): string[] {
  const params = o['parameters'];
  return Array.isArray(params) ? params.map((p) => (p as Schema)['name'] as string) : [];
}

/** Every $ref in a value. */
function refs(value: JsonValue, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) refs(v, out);
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string') out.push(v);
      else refs(v, out);
    }
  }
  return out;
}

describe('OpenAPI v3 index', () => {
  test('lists every served group-version with a hashed URL', () => {
    const index = openapiV3Index(BUILTIN_RESOURCES);
    assert.deepEqual(Object.keys(index.paths), openapiPrefixes(BUILTIN_RESOURCES));
    assert.ok('api/v1' in index.paths);
    assert.ok('apis/apps/v1' in index.paths);
    const url = index.paths['apis/apps/v1']?.serverRelativeURL ?? '';
    assert.equal(url, `/openapi/v3/apis/apps/v1?hash=${openapiHash(doc('apis/apps/v1'))}`);
    assert.match(url, /\?hash=[0-9A-F]{128}$/);
  });

  test('the hash changes when a custom resource appears in its group-version only', () => {
    const before = openapiV3Index(BUILTIN_RESOURCES);
    const after = openapiV3Index([...BUILTIN_RESOURCES, widgets]);
    assert.ok('apis/stable.example.com/v1' in after.paths);
    assert.deepEqual(after.paths['apis/apps/v1'], before.paths['apis/apps/v1']);
  });
});

describe('openapiHash', () => {
  test('equal content hashes equal whatever the key order; different content differs', () => {
    const json = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.string(),
        fc.integer(),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.dictionary(fc.string(), tie('value'), { maxKeys: 4 }),
      ),
    })).value;
    const reversed = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(reversed);
      if (typeof v === 'object' && v !== null) {
        return Object.fromEntries(
          Object.entries(v)
            .reverse()
            .map(([k, x]) => [k, reversed(x)]),
        );
      }
      return v;
    };
    fc.assert(
      fc.property(json, (v) => {
        assert.equal(openapiHash(reversed(v)), openapiHash(v));
      }),
    );
    assert.notEqual(openapiHash({ a: 1 }), openapiHash({ a: 2 }));
    assert.notEqual(openapiHash({ a: [1, 2] }), openapiHash({ a: [2, 1] }));
  });
});

describe('OpenAPI v3 documents', () => {
  test('unserved or malformed prefixes have no document', () => {
    for (const prefix of ['apis/apps/v2', 'apis/nope/v1', 'api', 'apis/apps', 'api/v1/extra', '']) {
      assert.equal(openapiV3Document(BUILTIN_RESOURCES, prefix), undefined, prefix);
    }
    assert.ok(openapiV3Document(BUILTIN_RESOURCES, '/apis/apps/v1') !== undefined);
  });

  test('every $ref resolves inside the document', () => {
    for (const prefix of openapiPrefixes([...BUILTIN_RESOURCES, widgets])) {
      const d = doc(prefix, [...BUILTIN_RESOURCES, widgets]);
      for (const r of refs(d as unknown as JsonValue)) {
        const name = r.replace('#/components/schemas/', '');
        assert.ok(name in d.components.schemas, `${prefix}: dangling ${r}`);
      }
    }
  });

  test('every built-in kind has a schema tagged with its GVK in its group-version document', () => {
    for (const rt of BUILTIN_RESOURCES) {
      const d = doc(rt.group === '' ? `api/${rt.version}` : `apis/${rt.group}/${rt.version}`);
      const schema = schemaForKind(d, rt);
      assert.ok(schema !== undefined, `${rt.kind} has no schema`);
      assert.equal(
        schema['x-kubernetes-preserve-unknown-fields'],
        undefined,
        `${rt.kind} is only a placeholder`,
      );
      assert.ok(
        d.components.schemas[definitionName(rt)] === schema,
        `${rt.kind} is not under its definition name`,
      );
    }
  });

  test('a document carries only the schemas it reaches', () => {
    const apps = doc('apis/apps/v1');
    assert.ok('io.k8s.api.apps.v1.Deployment' in apps.components.schemas);
    assert.ok('io.k8s.api.core.v1.PodSpec' in apps.components.schemas);
    assert.ok('io.k8s.api.autoscaling.v1.Scale' in apps.components.schemas);
    assert.equal('io.k8s.api.core.v1.Node' in apps.components.schemas, false);
    assert.equal('io.k8s.api.batch.v1.Job' in apps.components.schemas, false);
  });

  test('the Deployment schema has the patch strategies kubectl apply relies on', () => {
    const s = builtinSchemas();
    const props = (name: string): Record<string, Schema> =>
      (s[name] as { properties: Record<string, Schema> }).properties;
    assert.equal(props('io.k8s.api.core.v1.PodSpec')['containers']?.['x-kubernetes-patch-merge-key'], 'name');
    assert.equal(
      props('io.k8s.api.core.v1.PodSpec')['volumes']?.['x-kubernetes-patch-strategy'],
      'merge,retainKeys',
    );
    assert.equal(
      props('io.k8s.api.core.v1.Container')['ports']?.['x-kubernetes-patch-merge-key'],
      'containerPort',
    );
    assert.equal(props('io.k8s.api.core.v1.Container')['env']?.['x-kubernetes-patch-merge-key'], 'name');
    assert.equal(
      props('io.k8s.api.core.v1.Container')['volumeMounts']?.['x-kubernetes-patch-merge-key'],
      'mountPath',
    );
    assert.equal(
      props('io.k8s.api.apps.v1.DeploymentSpec')['strategy']?.['x-kubernetes-patch-strategy'],
      'retainKeys',
    );
    assert.equal(props('io.k8s.api.core.v1.ServiceSpec')['ports']?.['x-kubernetes-patch-merge-key'], 'port');
    assert.equal(
      props('io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta')['ownerReferences']?.[
        'x-kubernetes-patch-merge-key'
      ],
      'uid',
    );
    assert.deepEqual(props('io.k8s.api.apps.v1.Deployment')['spec'], {
      allOf: [{ $ref: '#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec' }],
    });
  });

  test('namespaced resources get collection, item, all-namespaces and subresource paths', () => {
    const apps = doc('apis/apps/v1');
    const base = '/apis/apps/v1/namespaces/{namespace}/deployments';
    assert.deepEqual(Object.keys(apps.paths[base] ?? {}).sort(), ['delete', 'get', 'parameters', 'post']);
    assert.deepEqual(Object.keys(apps.paths[`${base}/{name}`] ?? {}).sort(), [
      'delete',
      'get',
      'parameters',
      'patch',
      'put',
    ]);
    assert.ok('/apis/apps/v1/deployments' in apps.paths);
    assert.equal(
      op(apps, `${base}/{name}/scale`, 'get')['x-kubernetes-group-version-kind'] !== undefined,
      true,
    );
    assert.deepEqual(op(apps, `${base}/{name}/scale`, 'put')['x-kubernetes-group-version-kind'], {
      group: 'autoscaling',
      version: 'v1',
      kind: 'Scale',
    });
    assert.deepEqual(op(apps, `${base}/{name}/status`, 'patch')['x-kubernetes-group-version-kind'], {
      group: 'apps',
      version: 'v1',
      kind: 'Deployment',
    });
    const core = doc('api/v1');
    assert.deepEqual(
      op(core, '/api/v1/namespaces/{namespace}/pods/{name}/binding', 'post')['x-kubernetes-action'],
      'post',
    );
    assert.ok('/api/v1/nodes/{name}' in core.paths);
    assert.equal('/api/v1/namespaces/{namespace}/nodes' in core.paths, false);
    // Namespaces have no deletecollection verb, so no collection DELETE.
    assert.equal(core.paths['/api/v1/namespaces']?.['delete'], undefined);
    assert.equal('/api/v1/namespaces/{namespace}/pods/{name}/log' in core.paths, false);
  });

  test('operations declare the query parameters of the Kubernetes apiserver', () => {
    const apps = doc('apis/apps/v1');
    const base = '/apis/apps/v1/namespaces/{namespace}/deployments';
    for (const [path, method] of [
      [base, 'post'],
      [`${base}/{name}`, 'put'],
      [`${base}/{name}`, 'patch'],
    ] as const) {
      const names = paramNames(op(apps, path, method));
      for (const p of ['dryRun', 'fieldManager', 'fieldValidation'])
        assert.ok(names.includes(p), `${method} ${p}`);
    }
    assert.ok(paramNames(op(apps, `${base}/{name}`, 'patch')).includes('force'));
    const list = paramNames(op(apps, base, 'get'));
    for (const p of ['watch', 'labelSelector', 'fieldSelector', 'limit', 'continue', 'resourceVersion']) {
      assert.ok(list.includes(p), p);
    }
    assert.ok(paramNames(op(apps, `${base}/{name}`, 'delete')).includes('propagationPolicy'));
    assert.ok(paramNames(op(apps, base, 'delete')).includes('labelSelector'));
    const pathParams = apps.paths[`${base}/{name}`]?.['parameters'] as Schema[];
    assert.deepEqual(
      pathParams.map((p) => `${p['in']}:${p['name']}`),
      ['path:name', 'path:namespace', 'query:pretty'],
    );
  });

  test('PATCH declares strategic merge for built-ins only; server-side apply only when asked', () => {
    const contentTypes = (d: OpenApiDocument, path: string): string[] =>
      Object.keys(((op(d, path, 'patch')['requestBody'] as Schema)['content'] as Schema) ?? {});
    const apps = doc('apis/apps/v1');
    const item = '/apis/apps/v1/namespaces/{namespace}/deployments/{name}';
    assert.ok(contentTypes(apps, item).includes('application/strategic-merge-patch+json'));
    assert.equal(contentTypes(apps, item).includes('application/apply-patch+yaml'), false);
    const ssa = openapiV3Document(BUILTIN_RESOURCES, 'apis/apps/v1', { serverSideApply: true });
    assert.ok(ssa !== undefined && contentTypes(ssa, item).includes('application/apply-patch+yaml'));
    const custom = doc('apis/stable.example.com/v1', [...BUILTIN_RESOURCES, widgets]);
    const crItem = '/apis/stable.example.com/v1/namespaces/{namespace}/widgets/{name}';
    assert.deepEqual(contentTypes(custom, crItem), [
      'application/json-patch+json',
      'application/merge-patch+json',
    ]);
  });

  test('custom resources wrap their CRD schema with apiVersion, kind, metadata and GVK', () => {
    const schema: Schema = {
      type: 'object',
      properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } },
    };
    const d = openapiV3Document([widgets], 'apis/stable.example.com/v1', { customSchema: () => schema });
    assert.ok(d !== undefined);
    const s = d.components.schemas['com.example.stable.v1.Widget'];
    assert.deepEqual(s, customResourceSchema(widgets, schema));
    const props = s?.['properties'] as Record<string, Schema>;
    assert.deepEqual(Object.keys(props).sort(), ['apiVersion', 'kind', 'metadata', 'spec']);
    assert.deepEqual(s?.['x-kubernetes-group-version-kind'], [
      { group: 'stable.example.com', version: 'v1', kind: 'Widget' },
    ]);
    assert.ok('com.example.stable.v1.WidgetList' in d.components.schemas);
    assert.ok('io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' in d.components.schemas);
    // Without a schema the custom resource accepts any fields.
    const open = openapiV3Document([widgets], 'apis/stable.example.com/v1');
    assert.equal(
      open?.components.schemas['com.example.stable.v1.Widget']?.['x-kubernetes-preserve-unknown-fields'],
      true,
    );
  });

  test('definition names follow Kubernetes', () => {
    assert.equal(definitionName({ group: '', version: 'v1', kind: 'Pod' }), 'io.k8s.api.core.v1.Pod');
    assert.equal(
      definitionName({ group: 'coordination.k8s.io', version: 'v1', kind: 'Lease' }),
      'io.k8s.api.coordination.v1.Lease',
    );
    assert.equal(
      definitionName({ group: 'apiextensions.k8s.io', version: 'v1', kind: 'CustomResourceDefinition' }),
      'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition',
    );
    assert.equal(definitionName(widgets, true), 'com.example.stable.v1.Widget');
  });
});

describe('findUnknownFields', () => {
  const apps = doc('apis/apps/v1');
  const gvk = { group: 'apps', version: 'v1', kind: 'Deployment' };
  const valid = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', labels: { a: 'b' }, annotations: { 'x/y': 'z' } },
    spec: {
      replicas: 1,
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%' } },
      selector: { matchLabels: { a: 'b' } },
      template: {
        metadata: { labels: { a: 'b' } },
        spec: {
          containers: [
            {
              name: 'c',
              image: 'i',
              env: [{ name: 'A', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
              resources: { limits: { cpu: '1', memory: '1Gi' } },
              ports: [{ containerPort: 80 }],
            },
          ],
          volumes: [{ name: 'v', configMap: { name: 'cm' } }],
        },
      },
    },
    status: { replicas: 1, conditions: [{ type: 'Available', status: 'True' }] },
  };

  test('a valid object has none', () => {
    assert.deepEqual(findUnknownFields(apps, gvk, valid), []);
  });

  test('unknown fields are named by path, at any depth', () => {
    const bad = structuredClone(valid) as Record<string, unknown> & typeof valid;
    (bad.spec as Record<string, unknown>)['replicass'] = 2;
    (bad.spec.template.spec.containers[0] as Record<string, unknown>)['imagee'] = 'x';
    (bad.metadata as Record<string, unknown>)['labelz'] = {};
    assert.deepEqual(findUnknownFields(apps, gvk, bad).sort(), [
      '.metadata.labelz',
      '.spec.replicass',
      '.spec.template.spec.containers[0].imagee',
    ]);
  });

  test('maps, untyped objects and preserved fields accept anything', () => {
    const cr = openapiV3Document([widgets], 'apis/stable.example.com/v1', {
      customSchema: () => ({
        type: 'object',
        properties: {
          spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          status: { type: 'object' },
        },
      }),
    });
    assert.ok(cr !== undefined);
    assert.deepEqual(
      findUnknownFields(cr, widgets, {
        metadata: { name: 'w' },
        spec: { anything: 1 },
        status: { x: 1 },
        extra: 1,
      }),
      ['.extra'],
    );
  });

  test('an unknown kind has no schema to check against', () => {
    assert.deepEqual(findUnknownFields(apps, { group: 'apps', version: 'v1', kind: 'Nope' }, { a: 1 }), []);
  });
});
