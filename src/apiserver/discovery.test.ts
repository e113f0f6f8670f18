import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { BUILTIN_RESOURCES, type ResourceType } from '../api/resource.ts';
import {
  aggregatedContentType,
  aggregatedDiscovery,
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersions,
  compareVersionPriority,
  negotiateDiscovery,
  storageVersionHash,
} from './discovery.ts';

const KUBECTL_132_ACCEPT =
  'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json';

function crd(group: string, version: string, extra: Partial<ResourceType> = {}): ResourceType {
  return {
    group,
    version,
    kind: 'Widget',
    listKind: 'WidgetList',
    plural: 'widgets',
    singular: 'widget',
    namespaced: true,
    shortNames: [],
    categories: [],
    verbs: ['get', 'list'],
    subresources: {},
    custom: true,
    ...extra,
  };
}

describe('negotiateDiscovery', () => {
  test('kubectl 1.32 gets v2', () => {
    assert.equal(negotiateDiscovery(KUBECTL_132_ACCEPT), 'v2');
  });

  test('older clients that only know v2beta1 get v2beta1', () => {
    assert.equal(
      negotiateDiscovery(
        'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json',
      ),
      'v2beta1',
    );
  });

  test('plain JSON, wildcards and no header get the legacy documents', () => {
    for (const accept of [
      undefined,
      '',
      'application/json',
      '*/*',
      'application/json, */*',
      'application/*',
    ]) {
      assert.equal(negotiateDiscovery(accept), 'legacy', String(accept));
    }
  });

  test('protobuf aggregated discovery is skipped (kedge serves JSON only)', () => {
    assert.equal(
      negotiateDiscovery(
        'application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList',
      ),
      'v2beta1',
    );
  });

  test('q values order the choices and q=0 refuses one', () => {
    assert.equal(
      negotiateDiscovery(
        'application/json;q=0.9,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList',
      ),
      'v2',
    );
    assert.equal(
      negotiateDiscovery(
        'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,application/json',
      ),
      'legacy',
    );
  });

  test('unknown versions, groups and as-kinds are not aggregated', () => {
    for (const accept of [
      'application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList',
      'application/json;g=other.io;v=v2;as=APIGroupDiscoveryList',
      'application/json;g=apidiscovery.k8s.io;v=v2;as=Table',
    ]) {
      assert.equal(negotiateDiscovery(accept), 'legacy', accept);
    }
  });

  test('never throws and always answers one of the three formats', () => {
    fc.assert(
      fc.property(fc.string(), (accept) => {
        assert.ok(['v2', 'v2beta1', 'legacy'].includes(negotiateDiscovery(accept)));
      }),
    );
  });

  test('the content type names the chosen version exactly', () => {
    assert.equal(
      aggregatedContentType('v2'),
      'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList',
    );
    assert.equal(
      aggregatedContentType('v2beta1'),
      'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList',
    );
  });
});

describe('legacy discovery', () => {
  test('/api names v1 and the server address', () => {
    assert.deepEqual(apiVersions('10.0.0.1:6443'), {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '10.0.0.1:6443' }],
    });
  });

  test('/api/v1 lists core resources with subresources', () => {
    const list = apiResourceList(BUILTIN_RESOURCES, '', 'v1');
    assert.ok(list !== undefined);
    assert.equal(list.groupVersion, 'v1');
    const pods = list.resources.find((r) => r.name === 'pods');
    assert.deepEqual(
      { ...pods, storageVersionHash: undefined },
      {
        name: 'pods',
        singularName: 'pod',
        namespaced: true,
        kind: 'Pod',
        verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
        shortNames: ['po'],
        categories: ['all'],
        storageVersionHash: undefined,
      },
    );
    assert.match(pods?.storageVersionHash ?? '', /^[A-Za-z0-9+/]{11}=$/);
    assert.deepEqual(
      list.resources.find((r) => r.name === 'pods/binding'),
      {
        name: 'pods/binding',
        singularName: '',
        namespaced: true,
        group: '',
        version: 'v1',
        kind: 'Binding',
        verbs: ['create'],
      },
    );
    assert.deepEqual(list.resources.find((r) => r.name === 'pods/status')?.verbs, ['get', 'patch', 'update']);
    assert.equal(
      list.resources.some((r) => r.name === 'pods/log' || r.name === 'pods/exec'),
      false,
    );
    const secrets = list.resources.find((r) => r.name === 'secrets');
    assert.equal(secrets?.shortNames, undefined);
  });

  test('deployments/scale is an autoscaling/v1 Scale', () => {
    const list = apiResourceList(BUILTIN_RESOURCES, 'apps', 'v1');
    assert.deepEqual(
      list?.resources.find((r) => r.name === 'deployments/scale'),
      {
        name: 'deployments/scale',
        singularName: '',
        namespaced: true,
        group: 'autoscaling',
        version: 'v1',
        kind: 'Scale',
        verbs: ['get', 'patch', 'update'],
      },
    );
    assert.equal(list?.groupVersion, 'apps/v1');
  });

  test('extra subresources come from the caller', () => {
    const list = apiResourceList(BUILTIN_RESOURCES, '', 'v1', {
      extraSubresources: (rt) => (rt.plural === 'pods' ? [{ name: 'log', verbs: ['get'] }] : []),
    });
    assert.deepEqual(list?.resources.find((r) => r.name === 'pods/log')?.verbs, ['get']);
  });

  test('an unserved group-version is undefined', () => {
    assert.equal(apiResourceList(BUILTIN_RESOURCES, 'apps', 'v2'), undefined);
    assert.equal(apiResourceList(BUILTIN_RESOURCES, 'nope', 'v1'), undefined);
    assert.equal(apiGroup(BUILTIN_RESOURCES, 'nope'), undefined);
  });

  test('/apis lists every group once with its preferred version', () => {
    const resources = [...BUILTIN_RESOURCES, crd('example.com', 'v1beta1'), crd('example.com', 'v1')];
    const list = apiGroupList(resources);
    assert.equal(list.groups.filter((g) => g.name === 'apps').length, 1);
    assert.equal(
      list.groups.some((g) => g.name === ''),
      false,
    );
    const example = list.groups.find((g) => g.name === 'example.com');
    assert.deepEqual(example, {
      name: 'example.com',
      versions: [
        { groupVersion: 'example.com/v1', version: 'v1' },
        { groupVersion: 'example.com/v1beta1', version: 'v1beta1' },
      ],
      preferredVersion: { groupVersion: 'example.com/v1', version: 'v1' },
    });
    assert.deepEqual(apiGroup(resources, 'example.com'), example);
  });

  test('versions sort like Kubernetes: GA, beta, alpha, then others', () => {
    const sorted = ['v1alpha1', 'foo', 'v2beta1', 'v1', 'v1beta2', 'v2', 'v1beta1', 'bar'].sort(
      compareVersionPriority,
    );
    assert.deepEqual(sorted, ['v2', 'v1', 'v2beta1', 'v1beta2', 'v1beta1', 'v1alpha1', 'bar', 'foo']);
  });

  test('storage version hashes are stable and distinct per kind', () => {
    const hashes = BUILTIN_RESOURCES.map(storageVersionHash);
    assert.equal(new Set(hashes).size, hashes.length);
    assert.deepEqual(BUILTIN_RESOURCES.map(storageVersionHash), hashes);
  });
});

describe('aggregated discovery', () => {
  test('/api holds the core group only, unnamed', () => {
    const doc = aggregatedDiscovery(BUILTIN_RESOURCES, 'api', 'v2');
    assert.equal(doc.kind, 'APIGroupDiscoveryList');
    assert.equal(doc.apiVersion, 'apidiscovery.k8s.io/v2');
    assert.equal(doc.items.length, 1);
    const core = doc.items[0]!;
    assert.equal(core.metadata.name, undefined);
    assert.equal(core.versions[0]?.version, 'v1');
    assert.equal(core.versions[0]?.freshness, 'Current');
    const pods = core.versions[0]?.resources.find((r) => r.resource === 'pods');
    assert.deepEqual(pods, {
      resource: 'pods',
      responseKind: { group: '', version: '', kind: 'Pod' },
      scope: 'Namespaced',
      singularResource: 'pod',
      verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
      shortNames: ['po'],
      categories: ['all'],
      subresources: [
        {
          subresource: 'status',
          responseKind: { group: '', version: '', kind: 'Pod' },
          verbs: ['get', 'patch', 'update'],
        },
        {
          subresource: 'binding',
          responseKind: { group: '', version: 'v1', kind: 'Binding' },
          verbs: ['create'],
        },
      ],
    });
    const nodes = core.versions[0]?.resources.find((r) => r.resource === 'nodes');
    assert.equal(nodes?.scope, 'Cluster');
  });

  test('/apis holds every named group; scale answers with autoscaling/v1 Scale', () => {
    const doc = aggregatedDiscovery(BUILTIN_RESOURCES, 'apis', 'v2');
    assert.deepEqual(
      doc.items.map((i) => i.metadata.name),
      apiGroupList(BUILTIN_RESOURCES).groups.map((g) => g.name),
    );
    const apps = doc.items.find((i) => i.metadata.name === 'apps');
    const deployments = apps?.versions[0]?.resources.find((r) => r.resource === 'deployments');
    assert.deepEqual(deployments?.subresources?.find((s) => s.subresource === 'scale')?.responseKind, {
      group: 'autoscaling',
      version: 'v1',
      kind: 'Scale',
    });
    const leases = doc.items.find((i) => i.metadata.name === 'coordination.k8s.io')?.versions[0]
      ?.resources[0];
    assert.equal(leases?.subresources, undefined);
    assert.equal(leases?.shortNames, undefined);
  });

  test('v2beta1 differs from v2 only in apiVersion', () => {
    for (const scope of ['api', 'apis'] as const) {
      const v2 = aggregatedDiscovery(BUILTIN_RESOURCES, scope, 'v2');
      const beta = aggregatedDiscovery(BUILTIN_RESOURCES, scope, 'v2beta1');
      assert.equal(beta.apiVersion, 'apidiscovery.k8s.io/v2beta1');
      assert.deepEqual({ ...beta, apiVersion: v2.apiVersion }, v2);
    }
  });

  test('custom resources appear and disappear with the list passed in', () => {
    const withCrd = aggregatedDiscovery([...BUILTIN_RESOURCES, crd('example.com', 'v1')], 'apis', 'v2');
    assert.ok(withCrd.items.some((i) => i.metadata.name === 'example.com'));
    const without = aggregatedDiscovery(BUILTIN_RESOURCES, 'apis', 'v2');
    assert.equal(
      without.items.some((i) => i.metadata.name === 'example.com'),
      false,
    );
  });

  test('versions of a group are in priority order', () => {
    const doc = aggregatedDiscovery(
      [crd('example.com', 'v1alpha1'), crd('example.com', 'v1'), crd('example.com', 'v1beta1')],
      'apis',
      'v2',
    );
    assert.deepEqual(
      doc.items[0]?.versions.map((v) => v.version),
      ['v1', 'v1beta1', 'v1alpha1'],
    );
  });

  test('no core resources: /api is an empty list', () => {
    assert.deepEqual(aggregatedDiscovery([crd('example.com', 'v1')], 'api', 'v2').items, []);
  });
});
