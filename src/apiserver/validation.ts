import { isPlainObject, type KubeObject } from '../api/meta.ts';
import type { FieldError } from './errors.ts';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function dns1123LabelErrors(field: string, value: string): FieldError[] {
  if (value.length > 63)
    return [{ type: 'FieldValueInvalid', field, value, detail: 'must be no more than 63 characters' }];
  if (!DNS1123_LABEL.test(value)) {
    return [
      {
        type: 'FieldValueInvalid',
        field,
        value,
        detail:
          "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
      },
    ];
  }
  return [];
}

export function dns1123SubdomainErrors(field: string, value: string): FieldError[] {
  if (value.length > 253)
    return [{ type: 'FieldValueInvalid', field, value, detail: 'must be no more than 253 characters' }];
  if (!DNS1123_SUBDOMAIN.test(value)) {
    return [
      {
        type: 'FieldValueInvalid',
        field,
        value,
        detail:
          "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
      },
    ];
  }
  return [];
}

/** Label and annotation keys: an optional DNS subdomain prefix and a name of at most 63 characters. */
export function qualifiedNameErrors(field: string, key: string): FieldError[] {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  const errors: FieldError[] = [];
  if (prefix !== undefined && (prefix === '' || dns1123SubdomainErrors(field, prefix).length > 0)) {
    errors.push({
      type: 'FieldValueInvalid',
      field,
      value: key,
      detail: 'prefix part must be a lowercase RFC 1123 subdomain',
    });
  }
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) {
    errors.push({
      type: 'FieldValueInvalid',
      field,
      value: key,
      detail:
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with at most 63 characters",
    });
  }
  return errors;
}

function validateStringMap(field: string, value: unknown, checkValues: boolean): FieldError[] {
  if (value === undefined || value === null) return [];
  if (!isPlainObject(value))
    return [{ type: 'FieldValueTypeInvalid', field, value, detail: 'must be an object of strings' }];
  const errors: FieldError[] = [];
  for (const [k, v] of Object.entries(value)) {
    errors.push(...qualifiedNameErrors(field, k));
    if (typeof v !== 'string') {
      errors.push({
        type: 'FieldValueTypeInvalid',
        field: `${field}.${k}`,
        value: v,
        detail: 'must be a string',
      });
    } else if (checkValues && (v.length > 63 || !LABEL_VALUE.test(v))) {
      errors.push({
        type: 'FieldValueInvalid',
        field,
        value: v,
        detail:
          "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
      });
    }
  }
  return errors;
}

/** Checks every kind shares: the name's shape and the labels, annotations, finalizers and owner references. */
export function validateObjectMeta(obj: KubeObject, nameRule: 'label' | 'subdomain' | 'path'): FieldError[] {
  const meta = obj.metadata;
  const errors: FieldError[] = [];
  const name = meta.name;
  if (name === undefined || name === '') {
    errors.push({
      type: 'FieldValueRequired',
      field: 'metadata.name',
      detail: 'name or generateName is required',
    });
  } else if (typeof name !== 'string') {
    errors.push({
      type: 'FieldValueTypeInvalid',
      field: 'metadata.name',
      value: name,
      detail: 'must be a string',
    });
  } else if (nameRule === 'label') {
    errors.push(...dns1123LabelErrors('metadata.name', name));
  } else if (nameRule === 'subdomain') {
    errors.push(...dns1123SubdomainErrors('metadata.name', name));
  } else if (name === '.' || name === '..' || name.includes('/') || name.includes('%')) {
    errors.push({
      type: 'FieldValueInvalid',
      field: 'metadata.name',
      value: name,
      detail: 'may not contain "/" or "%", or be "." or ".."',
    });
  }
  errors.push(...validateStringMap('metadata.labels', meta.labels, true));
  errors.push(...validateStringMap('metadata.annotations', meta.annotations, false));
  if (meta.finalizers !== undefined) {
    if (!Array.isArray(meta.finalizers) || meta.finalizers.some((f) => typeof f !== 'string')) {
      errors.push({
        type: 'FieldValueTypeInvalid',
        field: 'metadata.finalizers',
        detail: 'must be a list of strings',
      });
    }
  }
  if (meta.ownerReferences !== undefined) {
    if (!Array.isArray(meta.ownerReferences)) {
      errors.push({
        type: 'FieldValueTypeInvalid',
        field: 'metadata.ownerReferences',
        detail: 'must be a list',
      });
    } else {
      meta.ownerReferences.forEach((ref, i) => {
        for (const f of ['apiVersion', 'kind', 'name', 'uid'] as const) {
          if (!isPlainObject(ref) || typeof ref[f] !== 'string' || ref[f] === '') {
            errors.push({ type: 'FieldValueRequired', field: `metadata.ownerReferences[${i}].${f}` });
          }
        }
      });
    }
  }
  return errors;
}
