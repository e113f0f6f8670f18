/** Validation of a CustomResourceDefinition on create and update: what Kubernetes refuses. */
import { isPlainObject } from '../meta.ts';
import { applyCrdDefaults } from './defaults.ts';
import {
  type FieldError,
  forbidden,
  invalid,
  notSupported,
  required,
  tooLong,
  typeInvalid,
} from './field-error.ts';
import { cloneJson } from './json.ts';
import { validateStructuralSchema } from './schema.ts';
import {
  type CustomResourceDefinition,
  PrinterColumnFormats,
  PrinterColumnTypes,
  ResourceScopes,
} from './types.ts';

const DNS1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS1123_SUBDOMAIN = new RegExp(`^${DNS1123_LABEL}(\\.${DNS1123_LABEL})*$`);
const DNS1035_MSG =
  "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const SIMPLE_JSON_PATH = /^(\.[^.\s[\]]+|\[[^\]]+\])+$/;

/** Problems with a DNS-1035 label, as Kubernetes words them (empty when valid). */
export function dns1035LabelErrors(value: string): string[] {
  const out: string[] = [];
  if (value.length > 63) out.push('must be no more than 63 characters');
  if (!DNS1035.test(value)) out.push(DNS1035_MSG);
  return out;
}

/** Problems with a DNS-1123 subdomain, as Kubernetes words them (empty when valid). */
export function dns1123SubdomainErrors(value: string): string[] {
  const out: string[] = [];
  if (value.length > 253) out.push('must be no more than 253 characters');
  if (!DNS1123_SUBDOMAIN.test(value)) out.push(DNS1123_SUBDOMAIN_MSG);
  return out;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * Validates a CRD as the API server does on create and update (after applying its defaults). `crd` is the
 * defaulted object; it is only well typed when `errors` is empty.
 */
export function validateCrd(obj: unknown): { crd: CustomResourceDefinition; errors: FieldError[] } {
  const errors: FieldError[] = [];
  if (!isPlainObject(obj)) {
    errors.push(typeInvalid('', obj, 'must be an object'));
    return { crd: obj as unknown as CustomResourceDefinition, errors };
  }
  const raw = cloneJson(obj);
  if (!isPlainObject(raw['metadata'])) raw['metadata'] = {};
  if (!isPlainObject(raw['spec'])) {
    errors.push(required('spec'));
    return { crd: raw as unknown as CustomResourceDefinition, errors };
  }
  const spec = raw['spec'];
  if (!isPlainObject(spec['names'])) {
    errors.push(required('spec.names.plural'), required('spec.names.kind'));
    spec['names'] = {};
  }
  const crd = applyCrdDefaults(raw as unknown as CustomResourceDefinition);
  validateMetaAndGroup(crd, errors);
  validateNames(crd.spec.names as unknown as Record<string, unknown>, errors);
  validateScope(crd.spec.scope, errors);
  validateVersions(crd.spec.versions as unknown, errors);
  validateConversion(crd.spec.conversion as unknown, errors);
  if (crd.spec.preserveUnknownFields === true) {
    errors.push(
      invalid(
        'spec.preserveUnknownFields',
        true,
        'cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead',
      ),
    );
  }
  return { crd, errors };
}

function validateMetaAndGroup(crd: CustomResourceDefinition, errors: FieldError[]): void {
  const group = str(crd.spec.group) ?? '';
  const plural = str(crd.spec.names.plural) ?? '';
  if (group === '') {
    errors.push(required('spec.group'));
  } else {
    const errs = dns1123SubdomainErrors(group);
    if (errs.length > 0) errors.push(invalid('spec.group', group, errs.join(',')));
    if (!group.includes('.'))
      errors.push(invalid('spec.group', group, 'should be a domain with at least one dot'));
  }
  const name = str(crd.metadata.name) ?? '';
  if (name === '') errors.push(required('metadata.name', 'name or generateName is required'));
  else if (name !== `${plural}.${group}`) {
    errors.push(invalid('metadata.name', name, 'must be spec.names.plural+"."+spec.group'));
  }
}

function validateNames(names: Record<string, unknown>, errors: FieldError[]): void {
  const label = (field: string, value: unknown, transform: (s: string) => string = (s) => s): void => {
    if (value === undefined || value === '') return;
    if (typeof value !== 'string') {
      errors.push(typeInvalid(field, value, 'must be a string'));
      return;
    }
    const errs = dns1035LabelErrors(transform(value));
    if (errs.length > 0) errors.push(invalid(field, value, errs.join(',')));
  };
  const list = (field: string, value: unknown): void => {
    if (value === undefined) return;
    if (!Array.isArray(value)) {
      errors.push(typeInvalid(field, value, 'must be a list of strings'));
      return;
    }
    const seen = new Set<unknown>();
    value.forEach((v, i) => {
      label(`${field}[${i}]`, v);
      if (seen.has(v)) errors.push(invalid(`${field}[${i}]`, v, 'duplicate value'));
      seen.add(v);
    });
  };
  const lower = (s: string): string => s.toLowerCase();
  if (names['plural'] === undefined || names['plural'] === '') errors.push(required('spec.names.plural'));
  label('spec.names.plural', names['plural']);
  label('spec.names.singular', names['singular']);
  const kind = names['kind'];
  if (kind === undefined || kind === '') errors.push(required('spec.names.kind'));
  label('spec.names.kind', kind, lower);
  if (typeof kind === 'string' && /^[a-z]/.test(kind)) {
    errors.push(invalid('spec.names.kind', kind, 'must start with an upper-case letter'));
  }
  const listKind = names['listKind'];
  if (listKind === undefined || listKind === '') errors.push(required('spec.names.listKind'));
  label('spec.names.listKind', listKind, lower);
  if (typeof kind === 'string' && kind !== '' && kind === listKind) {
    errors.push(invalid('spec.names.listKind', listKind, 'kind and listKind may not be the same'));
  }
  list('spec.names.shortNames', names['shortNames']);
  list('spec.names.categories', names['categories']);
}

function validateScope(scope: unknown, errors: FieldError[]): void {
  if (scope === undefined || scope === '') errors.push(required('spec.scope'));
  else if (!ResourceScopes.includes(scope as never))
    errors.push(notSupported('spec.scope', scope, ResourceScopes));
}

function validateVersions(versions: unknown, errors: FieldError[]): void {
  if (versions === undefined || (Array.isArray(versions) && versions.length === 0)) {
    errors.push(required('spec.versions', 'must have at least one version'));
    return;
  }
  if (!Array.isArray(versions)) {
    errors.push(typeInvalid('spec.versions', versions, 'must be a list of versions'));
    return;
  }
  let storage = 0;
  const names = new Set<string>();
  versions.forEach((v: unknown, i) => {
    const p = `spec.versions[${i}]`;
    if (!isPlainObject(v)) {
      errors.push(typeInvalid(p, v, 'must be an object'));
      return;
    }
    const name = v['name'];
    if (name === undefined || name === '') errors.push(required(`${p}.name`));
    else if (typeof name !== 'string') errors.push(typeInvalid(`${p}.name`, name, 'must be a string'));
    else {
      const errs = dns1035LabelErrors(name);
      if (errs.length > 0) errors.push(invalid(`${p}.name`, name, errs.join(',')));
      if (names.has(name)) errors.push(invalid(`${p}.name`, name, 'must be unique'));
      names.add(name);
    }
    for (const flag of ['served', 'storage']) {
      if (v[flag] === undefined) errors.push(required(`${p}.${flag}`));
      else if (typeof v[flag] !== 'boolean')
        errors.push(typeInvalid(`${p}.${flag}`, v[flag], 'must be a boolean'));
    }
    if (v['storage'] === true) storage++;
    validateDeprecation(v, p, errors);
    validateVersionSchema(v['schema'], p, errors);
    validateSubresources(v['subresources'], `${p}.subresources`, errors);
    validatePrinterColumns(v['additionalPrinterColumns'], `${p}.additionalPrinterColumns`, errors);
  });
  if (storage !== 1) {
    errors.push(
      invalid('spec.versions', versions, 'must have exactly one version marked as storage version'),
    );
  }
}

function validateDeprecation(v: Record<string, unknown>, p: string, errors: FieldError[]): void {
  const deprecated = v['deprecated'];
  if (deprecated !== undefined && typeof deprecated !== 'boolean') {
    errors.push(typeInvalid(`${p}.deprecated`, deprecated, 'must be a boolean'));
  }
  const warning = v['deprecationWarning'];
  if (warning === undefined) return;
  const wp = `${p}.deprecationWarning`;
  if (typeof warning !== 'string') errors.push(typeInvalid(wp, warning, 'must be a string'));
  else if (deprecated !== true) errors.push(invalid(wp, warning, 'can only be set for deprecated versions'));
  else if (warning.length > 256) errors.push(tooLong(wp, warning, 256));
}

function validateVersionSchema(schema: unknown, p: string, errors: FieldError[]): void {
  const sp = `${p}.schema.openAPIV3Schema`;
  if (schema === undefined || !isPlainObject(schema) || schema['openAPIV3Schema'] === undefined) {
    errors.push(required(sp, 'schemas are required'));
    return;
  }
  errors.push(...validateStructuralSchema(schema['openAPIV3Schema'], sp));
}

function validateSubresources(sub: unknown, p: string, errors: FieldError[]): void {
  if (sub === undefined) return;
  if (!isPlainObject(sub)) {
    errors.push(typeInvalid(p, sub, 'must be an object'));
    return;
  }
  if (sub['status'] !== undefined && !isPlainObject(sub['status'])) {
    errors.push(typeInvalid(`${p}.status`, sub['status'], 'must be an object'));
  }
  const scale = sub['scale'];
  if (scale === undefined) return;
  if (!isPlainObject(scale)) {
    errors.push(typeInvalid(`${p}.scale`, scale, 'must be an object'));
    return;
  }
  const checkPath = (key: string, prefixes: readonly string[], detail: string, optional: boolean): void => {
    const fp = `${p}.scale.${key}`;
    const value = scale[key];
    if (value === undefined || value === '') {
      if (!optional) errors.push(required(fp));
      return;
    }
    if (typeof value !== 'string') errors.push(typeInvalid(fp, value, 'must be a string'));
    else if (!SIMPLE_JSON_PATH.test(value)) errors.push(invalid(fp, value, 'must be a valid json path'));
    else if (!prefixes.some((prefix) => value.startsWith(prefix))) errors.push(invalid(fp, value, detail));
  };
  checkPath('specReplicasPath', ['.spec.'], 'should be a json path under .spec', false);
  checkPath('statusReplicasPath', ['.status.'], 'should be a json path under .status', false);
  checkPath(
    'labelSelectorPath',
    ['.spec.', '.status.'],
    'should be a json path under either .spec or .status',
    true,
  );
}

function validatePrinterColumns(cols: unknown, p: string, errors: FieldError[]): void {
  if (cols === undefined) return;
  if (!Array.isArray(cols)) {
    errors.push(typeInvalid(p, cols, 'must be a list of columns'));
    return;
  }
  cols.forEach((col: unknown, i) => {
    const cp = `${p}[${i}]`;
    if (!isPlainObject(col)) {
      errors.push(typeInvalid(cp, col, 'must be an object'));
      return;
    }
    if (col['name'] === undefined || col['name'] === '') errors.push(required(`${cp}.name`));
    else if (typeof col['name'] !== 'string')
      errors.push(typeInvalid(`${cp}.name`, col['name'], 'must be a string'));
    const type = col['type'];
    if (type === undefined || type === '') errors.push(required(`${cp}.type`));
    else if (!PrinterColumnTypes.includes(type as never)) {
      errors.push(notSupported(`${cp}.type`, type, PrinterColumnTypes));
    }
    const format = col['format'];
    if (format !== undefined && format !== '' && !PrinterColumnFormats.includes(format as never)) {
      errors.push(notSupported(`${cp}.format`, format, PrinterColumnFormats));
    }
    const priority = col['priority'];
    if (
      priority !== undefined &&
      (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0)
    ) {
      errors.push(invalid(`${cp}.priority`, priority, 'must be a non-negative integer'));
    }
    const jsonPath = col['jsonPath'];
    if (jsonPath === undefined || jsonPath === '') errors.push(required(`${cp}.jsonPath`));
    else if (typeof jsonPath !== 'string')
      errors.push(typeInvalid(`${cp}.jsonPath`, jsonPath, 'must be a string'));
    else if (!jsonPath.startsWith('.')) {
      errors.push(invalid(`${cp}.jsonPath`, jsonPath, 'must be a simple json path starting with .'));
    }
  });
}

function validateConversion(conversion: unknown, errors: FieldError[]): void {
  if (!isPlainObject(conversion)) {
    errors.push(typeInvalid('spec.conversion', conversion, 'must be an object'));
    return;
  }
  const strategy = conversion['strategy'];
  const webhook = conversion['webhook'];
  if (strategy !== 'None' && strategy !== 'Webhook') {
    errors.push(notSupported('spec.conversion.strategy', strategy, ['None', 'Webhook']));
    return;
  }
  if (strategy === 'None') {
    if (webhook !== undefined) {
      errors.push(
        forbidden('spec.conversion.webhook', 'should not be set when strategy is not set to Webhook'),
      );
    }
    return;
  }
  if (!isPlainObject(webhook)) {
    errors.push(required('spec.conversion.webhook', 'required when strategy is set to Webhook'));
    return;
  }
  const config = webhook['clientConfig'];
  if (!isPlainObject(config)) {
    errors.push(required('spec.conversion.webhook.clientConfig', 'required when strategy is set to Webhook'));
  } else if ((config['url'] === undefined) === (config['service'] === undefined)) {
    errors.push(
      required('spec.conversion.webhook.clientConfig', 'exactly one of url or service is required'),
    );
  }
  const versions = webhook['conversionReviewVersions'];
  if (!Array.isArray(versions) || !versions.some((v) => v === 'v1' || v === 'v1beta1')) {
    errors.push(
      invalid(
        'spec.conversion.webhook.conversionReviewVersions',
        versions ?? [],
        'must include at least one of v1, v1beta1',
      ),
    );
  }
}
