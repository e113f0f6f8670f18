/** Field errors shaped like Kubernetes' `field.Error`: the API server turns them into Status causes. */

export const FieldErrorTypes = {
  Required: 'FieldValueRequired',
  Invalid: 'FieldValueInvalid',
  NotSupported: 'FieldValueNotSupported',
  Duplicate: 'FieldValueDuplicate',
  Forbidden: 'FieldValueForbidden',
  TypeInvalid: 'FieldValueTypeInvalid',
  TooLong: 'FieldValueTooLong',
  TooMany: 'FieldValueTooMany',
} as const;
export type FieldErrorType = (typeof FieldErrorTypes)[keyof typeof FieldErrorTypes];

export interface FieldError {
  /** Path as Kubernetes prints it, e.g. `spec.versions[0].name` or `spec.items[2].name`. */
  readonly field: string;
  readonly type: FieldErrorType;
  /** The text Kubernetes puts after `<field>: `, e.g. `Required value` or `Invalid value: "x": must be ...`. */
  readonly message: string;
  readonly value?: unknown;
}

/** Renders a bad value the way Go's field errors print it (strings quoted, scalars bare, the rest as JSON). */
export function renderValue(value: unknown): string {
  if (value === null || value === undefined) return '"null"';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value) ?? '"null"';
}

function withDetail(head: string, detail: string): string {
  return detail === '' ? head : `${head}: ${detail}`;
}

export function required(field: string, detail = ''): FieldError {
  return { field, type: FieldErrorTypes.Required, message: withDetail('Required value', detail) };
}

export function forbidden(field: string, detail: string): FieldError {
  return { field, type: FieldErrorTypes.Forbidden, message: withDetail('Forbidden', detail) };
}

export function invalid(field: string, value: unknown, detail: string): FieldError {
  return {
    field,
    type: FieldErrorTypes.Invalid,
    message: withDetail(`Invalid value: ${renderValue(value)}`, detail),
    value,
  };
}

export function typeInvalid(field: string, value: unknown, detail: string): FieldError {
  return {
    field,
    type: FieldErrorTypes.TypeInvalid,
    message: withDetail(`Invalid value: ${renderValue(value)}`, detail),
    value,
  };
}

export function notSupported(field: string, value: unknown, supported: readonly string[]): FieldError {
  const detail =
    supported.length === 0 ? '' : `supported values: ${supported.map((s) => JSON.stringify(s)).join(', ')}`;
  return {
    field,
    type: FieldErrorTypes.NotSupported,
    message: withDetail(`Unsupported value: ${renderValue(value)}`, detail),
    value,
  };
}

export function duplicate(field: string, value: unknown): FieldError {
  return { field, type: FieldErrorTypes.Duplicate, message: `Duplicate value: ${renderValue(value)}`, value };
}

export function tooLong(field: string, value: unknown, max: number): FieldError {
  return { field, type: FieldErrorTypes.TooLong, message: `Too long: may not be longer than ${max}`, value };
}

export function tooMany(field: string, actual: number, max: number): FieldError {
  return {
    field,
    type: FieldErrorTypes.TooMany,
    message: `Too many: ${actual}: must have at most ${max} items`,
    value: actual,
  };
}

/** `field: message`, as one line of a Kubernetes Invalid status. */
export function formatFieldError(err: FieldError): string {
  return err.field === '' ? err.message : `${err.field}: ${err.message}`;
}

/** The message of an Invalid status: `<Kind> "<name>" is invalid: <errors>` (several errors in brackets). */
export function invalidMessage(kind: string, name: string, errors: readonly FieldError[]): string {
  const lines = errors.map(formatFieldError);
  const body = lines.length === 1 ? lines[0] : `[${lines.join(', ')}]`;
  return `${kind} "${name}" is invalid: ${body}`;
}

/** Joins path segments: `child('spec', 'replicas')` is `spec.replicas`; an empty parent gives the key alone. */
export function child(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}
