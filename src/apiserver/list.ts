import type { KubeObject } from '../api/meta.ts';
import type { ResourceType } from '../api/resource.ts';
import {
  checkFieldSelectorSupported,
  fieldsOf,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from '../api/selectors.ts';
import { isKedgeError } from '../lib/errors.ts';
import { ApiError, apiErrors } from './errors.ts';
import type { ObjectStorage } from './storage.ts';

/** Which objects a list or watch wants. */
export interface ObjectFilter {
  /** No selector at all: every object matches. */
  readonly all: boolean;
  matches(obj: KubeObject): boolean;
}

export function makeFilter(
  rt: ResourceType,
  labelSelector: string | undefined,
  fieldSelector: string | undefined,
): ObjectFilter {
  const labels =
    labelSelector === undefined || labelSelector.trim() === ''
      ? undefined
      : parseLabelSelector(labelSelector);
  const fields =
    fieldSelector === undefined || fieldSelector.trim() === ''
      ? undefined
      : parseFieldSelector(fieldSelector);
  if (fields !== undefined) checkFieldSelectorSupported(fields, rt.group, rt.kind);
  if (labels === undefined && fields === undefined) return { all: true, matches: () => true };
  return {
    all: false,
    matches(obj) {
      if (labels !== undefined && !matchesLabels(labels, obj.metadata.labels)) return false;
      if (fields !== undefined && !matchesFields(fields, fieldsOf(rt.group, rt.kind, obj))) return false;
      return true;
    },
  };
}

export interface ListRequest {
  readonly namespace: string | undefined;
  readonly filter: ObjectFilter;
  readonly limit?: number;
  readonly continueToken?: string;
  /** '' (latest), '0' (any: latest here), or a revision. */
  readonly resourceVersion?: string;
  readonly resourceVersionMatch?: string;
}

export interface ListResponse {
  readonly items: KubeObject[];
  readonly resourceVersion: string;
  readonly continueToken?: string;
  readonly remainingItemCount?: number;
}

interface ContinueToken {
  readonly v: 1;
  readonly rv: number;
  readonly start: string;
}

function encodeContinue(token: ContinueToken): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

function decodeContinue(text: string, prefix: string): ContinueToken {
  try {
    const t = JSON.parse(Buffer.from(text, 'base64url').toString()) as Partial<ContinueToken>;
    if (t.v === 1 && typeof t.rv === 'number' && typeof t.start === 'string' && t.start.startsWith(prefix)) {
      return { v: 1, rv: t.rv, start: t.start };
    }
  } catch {
    // fall through to the error below
  }
  throw apiErrors.badRequest('continue key is not valid: the continue token could not be parsed');
}

const SCAN_PAGE = 1000;

/** A list with Kubernetes' paging and resourceVersion semantics, filtered by selectors. */
export async function listObjects(
  storage: ObjectStorage,
  rt: ResourceType,
  req: ListRequest,
): Promise<ListResponse> {
  const prefix = storage.prefix(rt, req.namespace);
  let revision = 0;
  let startKey: string | undefined;
  if (req.continueToken !== undefined && req.continueToken !== '') {
    const token = decodeContinue(req.continueToken, prefix);
    revision = token.rv;
    startKey = token.start;
  } else if (req.resourceVersion !== undefined && req.resourceVersion !== '' && req.resourceVersion !== '0') {
    const rv = Number(req.resourceVersion);
    if (!Number.isSafeInteger(rv) || rv < 0) {
      throw apiErrors.badRequest(`invalid resource version: ${JSON.stringify(req.resourceVersion)}`);
    }
    if (req.resourceVersionMatch === 'Exact') revision = rv;
    else if (rv > storage.store.currentRevision()) {
      throw apiErrors.timeout(
        `Too large resource version: ${rv}, current: ${storage.store.currentRevision()}`,
      );
    }
  }
  const limit = req.limit !== undefined && req.limit > 0 ? req.limit : 0;
  const items: KubeObject[] = [];
  let readAt = revision;
  let nextStart: string | undefined;
  let remaining: number | undefined;
  try {
    for (;;) {
      const want = limit === 0 ? 0 : req.filter.all ? limit - items.length : Math.max(SCAN_PAGE, limit);
      const page = await storage.store.list(prefix, {
        ...(readAt > 0 ? { revision: readAt } : {}),
        ...(want > 0 ? { limit: want } : {}),
        ...(startKey !== undefined ? { startKey } : {}),
      });
      readAt = page.revision;
      let consumed = 0;
      for (const entry of page.entries) {
        consumed++;
        const obj = storage.fromEntry(rt, entry);
        if (!req.filter.matches(obj)) continue;
        items.push(obj);
        if (limit > 0 && items.length >= limit) break;
      }
      const last = page.entries[consumed - 1];
      const stoppedEarly = consumed < page.entries.length;
      if (limit > 0 && items.length >= limit && (stoppedEarly || page.more)) {
        nextStart = `${last?.key ?? ''}\u0000`;
        if (req.filter.all) remaining = page.remaining + (page.entries.length - consumed);
        break;
      }
      if (!page.more || last === undefined) break;
      startKey = `${last.key}\u0000`;
    }
  } catch (err) {
    if (isKedgeError(err, 'KEDGE_STORE_COMPACTED')) {
      if (req.continueToken !== undefined && req.continueToken !== '') {
        throw new ApiError(
          410,
          'Expired',
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue value from the response to resume.',
        );
      }
      throw apiErrors.gone(
        `too old resource version: ${revision} (${storage.store.compactedRevision() + 1})`,
      );
    }
    throw err;
  }
  return {
    items,
    resourceVersion: String(readAt),
    ...(nextStart !== undefined
      ? { continueToken: encodeContinue({ v: 1, rv: readAt, start: nextStart }) }
      : {}),
    ...(remaining !== undefined && remaining > 0 ? { remainingItemCount: remaining } : {}),
  };
}
