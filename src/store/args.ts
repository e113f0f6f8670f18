/** Argument checks and key-range helpers shared by the store backends. */
import { KedgeError } from '../lib/errors.ts';
import type { BatchOp, ListOptions } from './types.ts';

function invalid(message: string, context: Record<string, unknown>): KedgeError {
  return new KedgeError('KEDGE_STORE_INVALID', message, { context });
}

/** A key is a non-empty, well-formed string without NUL (NUL is reserved for paging bounds). */
export function checkKey(key: unknown, what = 'key'): string {
  if (typeof key !== 'string' || key.length === 0 || !key.isWellFormed() || key.includes('\0')) {
    throw invalid(`Store ${what} ${JSON.stringify(key)} is not a non-empty string without NUL`, {
      [what]: key,
    });
  }
  return key;
}

/** A prefix is any well-formed string ('' selects every key). */
export function checkPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || !prefix.isWellFormed()) {
    throw invalid(`Store prefix ${JSON.stringify(prefix)} is not a well-formed string`, { prefix });
  }
  return prefix;
}

export function checkValue(value: unknown, key: string): string {
  if (typeof value !== 'string') {
    throw invalid(`Store value for key ${key} is ${typeof value}, not a string`, { key });
  }
  return value;
}

/** A revision argument: a non-negative safe integer. */
export function checkRevision(revision: unknown, what: string): number {
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
    throw invalid(`Store ${what} ${String(revision)} is not a non-negative integer`, { [what]: revision });
  }
  return revision;
}

export function checkOptionalRevision(revision: unknown, what: string): number | undefined {
  return revision === undefined ? undefined : checkRevision(revision, what);
}

export interface CheckedListOptions {
  readonly revision: number;
  readonly limit: number;
  /** Inclusive lower bound of the scan: the prefix, or the caller's startKey. */
  readonly from: string;
}

export function checkListOptions(prefix: string, options: ListOptions | undefined): CheckedListOptions {
  const revision = checkRevision(options?.revision ?? 0, 'revision');
  const limit = checkRevision(options?.limit ?? 0, 'limit');
  const startKey = options?.startKey;
  if (startKey !== undefined && (typeof startKey !== 'string' || !startKey.startsWith(prefix))) {
    throw invalid(`Store startKey ${JSON.stringify(startKey)} does not lie under prefix ${prefix}`, {
      prefix,
      startKey,
    });
  }
  return { revision, limit, from: startKey ?? prefix };
}

export function checkBatch(ops: unknown): readonly BatchOp[] {
  if (!Array.isArray(ops)) throw invalid('Store batch is not an array', {});
  ops.forEach((op: unknown, index) => {
    if (typeof op !== 'object' || op === null)
      throw invalid(`Store batch op ${index} is not an object`, { index });
    const { type, key, value, expectedRevision } = op as Record<string, unknown>;
    const k = checkKey(key);
    if (type === 'create' || type === 'update') checkValue(value, k);
    else if (type !== 'delete') {
      throw invalid(`Store batch op ${index} has unknown type ${String(type)}`, { index, type });
    }
    if (type !== 'create') checkOptionalRevision(expectedRevision, 'expectedRevision');
  });
  return ops as readonly BatchOp[];
}

export function checkMaxBuffered(maxBuffered: unknown): number {
  if (maxBuffered === undefined) return 10_000;
  if (typeof maxBuffered !== 'number' || !Number.isSafeInteger(maxBuffered) || maxBuffered < 1) {
    throw invalid(`Store watch maxBuffered ${String(maxBuffered)} is not a positive integer`, {
      maxBuffered,
    });
  }
  return maxBuffered;
}

/**
 * The smallest string greater than every string that starts with `prefix`, in code point (= UTF-8 byte)
 * order; undefined when there is none ('' or only U+10FFFF).
 */
export function prefixEnd(prefix: string): string | undefined {
  const points = [...prefix];
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      const next = last === 0xd7ff ? 0xe000 : last + 1;
      return points.join('') + String.fromCodePoint(next);
    }
  }
  return undefined;
}

/** Compares keys by code point, which is the byte order of their UTF-8 encoding (SQLite's BINARY order). */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.codePointAt(i)!;
    const cb = b.codePointAt(i)!;
    if (ca !== cb) return ca - cb;
    if (ca > 0xffff) i++;
  }
  return a.length - b.length;
}
