/** What the API server serves for a CRD: one ResourceType per served version. */
import { KedgeError } from '../../lib/errors.ts';
import type { ResourceType } from '../resource.ts';
import type {
  CustomResourceColumnDefinition,
  CustomResourceDefinition,
  CustomResourceDefinitionVersion,
  JSONSchemaProps,
} from './types.ts';

const ALL_VERBS = [
  'create',
  'delete',
  'deletecollection',
  'get',
  'list',
  'patch',
  'update',
  'watch',
] as const;

/** The versions the API serves, in the CRD's order. */
export function servedVersions(crd: CustomResourceDefinition): CustomResourceDefinitionVersion[] {
  return crd.spec.versions.filter((v) => v.served);
}

/** The version objects are stored in (validation guarantees exactly one). */
export function storageVersion(crd: CustomResourceDefinition): CustomResourceDefinitionVersion | undefined {
  return crd.spec.versions.find((v) => v.storage);
}

/** A version by name; KEDGE_CRD_VERSION_NOT_FOUND when the CRD does not define it. */
export function crdVersion(crd: CustomResourceDefinition, version: string): CustomResourceDefinitionVersion {
  const found = crd.spec.versions.find((v) => v.name === version);
  if (found === undefined) {
    throw new KedgeError(
      'KEDGE_CRD_VERSION_NOT_FOUND',
      `CustomResourceDefinition ${crd.metadata.name ?? crd.spec.names.plural} has no version ${JSON.stringify(version)}`,
      { context: { crd: crd.metadata.name, version } },
    );
  }
  return found;
}

/** The openAPIV3Schema of a version, if it has one. */
export function versionSchema(crd: CustomResourceDefinition, version: string): JSONSchemaProps | undefined {
  return crdVersion(crd, version).schema?.openAPIV3Schema;
}

/** A version's additional printer columns (kubectl adds NAME and AGE itself when the list is empty). */
export function printerColumns(
  crd: CustomResourceDefinition,
  version: string,
): CustomResourceColumnDefinition[] {
  return crdVersion(crd, version).additionalPrinterColumns ?? [];
}

/** The ResourceType the API server registers for one version of a (validated, defaulted) CRD. */
export function resourceTypeFromCrd(crd: CustomResourceDefinition, version: string): ResourceType {
  const v = crdVersion(crd, version);
  const names = crd.spec.names;
  const scale = v.subresources?.scale;
  return {
    group: crd.spec.group,
    version: v.name,
    kind: names.kind,
    listKind: names.listKind ?? `${names.kind}List`,
    plural: names.plural,
    singular: names.singular ?? names.kind.toLowerCase(),
    namespaced: crd.spec.scope === 'Namespaced',
    shortNames: [...(names.shortNames ?? [])],
    categories: [...(names.categories ?? [])],
    verbs: ALL_VERBS,
    subresources: {
      ...(v.subresources?.status === undefined ? {} : { status: true }),
      ...(scale === undefined
        ? {}
        : {
            scale: {
              specReplicasPath: scale.specReplicasPath,
              statusReplicasPath: scale.statusReplicasPath,
              ...(scale.labelSelectorPath === undefined
                ? {}
                : { labelSelectorPath: scale.labelSelectorPath }),
            },
          }),
    },
    custom: true,
  };
}
