/** CustomResourceDefinitions: types, CRD validation, and schema validation, defaulting and pruning of custom resources. */
export { applyCrdDefaults, applySchemaDefaults } from './defaults.ts';
export { cronTabCrdExample, deviceCrdExample, deviceExample } from './examples.ts';
export {
  type FieldError,
  type FieldErrorType,
  FieldErrorTypes,
  formatFieldError,
  invalidMessage,
} from './field-error.ts';
export { pruneUnknownFields } from './prune.ts';
export {
  crdVersion,
  printerColumns,
  resourceTypeFromCrd,
  servedVersions,
  storageVersion,
  versionSchema,
} from './resource-type.ts';
export { validateStructuralSchema } from './schema.ts';
export * from './types.ts';
export { validateCustomResource } from './validate.ts';
export { dns1035LabelErrors, dns1123SubdomainErrors, validateCrd } from './validate-crd.ts';
