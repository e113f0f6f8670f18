/**
 * Helpers every mapper needs: turning a twin's string value into a typed value (with the model's
 * minimum/maximum checked) and reading numbers and flags out of loosely typed configData, where YAML
 * manifests may give `502` or `"502"`.
 */
import { KedgeError } from '../../lib/errors.ts';
import type { MapperProperty } from './types.ts';

/** A refused write: names the property and the value. */
export function writeRefused(property: string, message: string, value?: string): KedgeError {
  return new KedgeError('KEDGE_MAPPER_WRITE_REFUSED', message, {
    context: value === undefined ? { property } : { property, value },
  });
}

/**
 * Parses a desired value for `property` by its type and checks minimum/maximum. Numbers come back as
 * numbers (int as a safe integer), booleans as booleans, strings and bytes (base64) as strings.
 * Throws KEDGE_MAPPER_WRITE_REFUSED with a clear message otherwise.
 */
export function parseDesired(property: MapperProperty, value: string): number | boolean | string {
  const name = property.name;
  switch (property.type) {
    case 'boolean': {
      const v = value.trim().toLowerCase();
      if (v === 'true' || v === '1' || v === 'on') return true;
      if (v === 'false' || v === '0' || v === 'off') return false;
      throw writeRefused(
        name,
        `Property ${name} is boolean; ${JSON.stringify(value)} is not true or false`,
        value,
      );
    }
    case 'int':
    case 'float':
    case 'double': {
      const n = value.trim() === '' ? Number.NaN : Number(value);
      if (!Number.isFinite(n))
        throw writeRefused(
          name,
          `Property ${name} is ${property.type}; ${JSON.stringify(value)} is not a number`,
          value,
        );
      if (property.type === 'int' && !Number.isSafeInteger(n))
        throw writeRefused(
          name,
          `Property ${name} is int; ${JSON.stringify(value)} is not an integer`,
          value,
        );
      if (property.minimum !== undefined && n < property.minimum)
        throw writeRefused(
          name,
          `Property ${name} must be at least ${property.minimum}, got ${value}`,
          value,
        );
      if (property.maximum !== undefined && n > property.maximum)
        throw writeRefused(name, `Property ${name} must be at most ${property.maximum}, got ${value}`, value);
      return n;
    }
    case 'bytes':
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0)
        throw writeRefused(name, `Property ${name} is bytes; the value must be base64`, value);
      return value;
    case 'string':
      return value;
  }
}

/** Formats a number with at most `digits` significant digits and no float noise (23.4, not 23.400000000000002). */
export function formatNumber(n: number, digits = 15): string {
  if (Number.isInteger(n)) return String(n);
  return String(Number(n.toPrecision(digits)));
}

/** Reads a number from configData (a number or a numeric string); pushes a problem and returns undefined otherwise. */
export function configNumber(
  where: string,
  raw: unknown,
  problems: string[],
  check: { integer?: boolean; min?: number; max?: number } = {},
): number | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? Number(raw) : Number.NaN;
  const range =
    check.min !== undefined && check.max !== undefined
      ? ` from ${check.min} to ${check.max}`
      : check.min !== undefined
        ? ` of at least ${check.min}`
        : '';
  if (
    !Number.isFinite(n) ||
    (check.integer === true && !Number.isInteger(n)) ||
    (check.min !== undefined && n < check.min) ||
    (check.max !== undefined && n > check.max)
  ) {
    problems.push(
      `${where} must be ${check.integer === true ? 'an integer' : 'a number'}${range}, got ${JSON.stringify(raw)}`,
    );
    return undefined;
  }
  return n;
}

/** Reads a flag from configData (true/false or their string forms). */
export function configBoolean(where: string, raw: unknown, problems: string[]): boolean | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (raw === true || raw === 'true') return true;
  if (raw === false || raw === 'false') return false;
  problems.push(`${where} must be true or false, got ${JSON.stringify(raw)}`);
  return undefined;
}

/** Reads a string from configData. */
export function configString(where: string, raw: unknown, problems: string[]): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === 'string' && raw !== '') return raw;
  problems.push(`${where} must be a non-empty string, got ${JSON.stringify(raw)}`);
  return undefined;
}
