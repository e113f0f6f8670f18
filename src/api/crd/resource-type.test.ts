import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKedgeError } from '../../lib/errors.ts';
import { apiVersionOf } from '../resource.ts';
import { cronTabCrdExample, deviceCrdExample } from './examples.ts';
import {
  applyCrdDefaults,
  printerColumns,
  resourceTypeFromCrd,
  servedVersions,
  storageVersion,
  validateCrd,
} from './index.ts';

describe('resourceTypeFromCrd', () => {
  it('describes a version with status and scale subresources', () => {
    const { crd } = validateCrd(cronTabCrdExample());
    const rt = resourceTypeFromCrd(crd, 'v1');
    assert.deepEqual(rt, {
      group: 'stable.example.com',
      version: 'v1',
      kind: 'CronTab',
      listKind: 'CronTabList',
      plural: 'crontabs',
      singular: 'crontab',
      namespaced: true,
      shortNames: ['ct'],
      categories: [],
      verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
      subresources: {
        status: true,
        scale: {
          specReplicasPath: '.spec.replicas',
          statusReplicasPath: '.status.replicas',
          labelSelectorPath: '.status.labelSelector',
        },
      },
      custom: true,
    });
    assert.equal(apiVersionOf(rt), 'stable.example.com/v1');
  });

  it('describes a version without subresources, and a cluster-scoped CRD', () => {
    const crd = applyCrdDefaults(cronTabCrdExample());
    crd.spec.scope = 'Cluster';
    const rt = resourceTypeFromCrd(crd, 'v1beta1');
    assert.deepEqual(rt.subresources, {});
    assert.equal(rt.namespaced, false);
  });

  it('takes categories and defaulted names from the CRD', () => {
    const crd = deviceCrdExample();
    delete crd.spec.names.listKind;
    const rt = resourceTypeFromCrd(validateCrd(crd).crd, 'v1beta1');
    assert.equal(rt.listKind, 'DeviceList');
    assert.deepEqual(rt.categories, ['kedge']);
    assert.deepEqual(rt.subresources, { status: true });
  });

  it('throws KEDGE_CRD_VERSION_NOT_FOUND for a version the CRD lacks', () => {
    assert.throws(
      () => resourceTypeFromCrd(cronTabCrdExample(), 'v2'),
      (err: unknown) => isKedgeError(err, 'KEDGE_CRD_VERSION_NOT_FOUND') && /"v2"/.test(err.message),
    );
  });
});

describe('version helpers', () => {
  it('lists served versions in order and finds the storage version', () => {
    const crd = cronTabCrdExample();
    assert.deepEqual(
      servedVersions(crd).map((v) => v.name),
      ['v1', 'v1beta1'],
    );
    assert.equal(storageVersion(crd)?.name, 'v1');
  });

  it('returns printer columns of a version, or none', () => {
    const crd = cronTabCrdExample();
    assert.deepEqual(
      printerColumns(crd, 'v1').map((c) => c.name),
      ['Spec', 'Replicas', 'Image', 'Age'],
    );
    assert.deepEqual(printerColumns(crd, 'v1beta1'), []);
  });
});
