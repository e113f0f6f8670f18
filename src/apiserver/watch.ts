import type { KubeObject, Status } from '../api/meta.ts';
import { apiVersionOf, type ResourceType } from '../api/resource.ts';
import { isKedgeError } from '../lib/errors.ts';
import type { Watch, WatchEvent } from '../store/types.ts';
import { listObjects, type ObjectFilter } from './list.ts';
import type { ObjectStorage } from './storage.ts';

export type ApiWatchEvent =
  | { readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK'; readonly object: KubeObject }
  | { readonly type: 'ERROR'; readonly object: Status };

export interface WatchRequest {
  readonly namespace: string | undefined;
  readonly filter: ObjectFilter;
  /** '' or '0': start with the current state as ADDED events; otherwise every change after this revision. */
  readonly resourceVersion: string;
  readonly sendInitialEvents?: boolean;
  readonly maxBuffered?: number;
}

/** Progress of a watch: every revision up to this one has been considered (for bookmarks). */
export interface WatchProgress {
  revision: number;
}

const decoded = new WeakMap<WatchEvent, KubeObject>();

/** One decoded object per store event, shared by every watcher that sees it (treat as read-only). */
function objectOf(storage: ObjectStorage, rt: ResourceType, event: WatchEvent): KubeObject {
  let obj = decoded.get(event);
  if (obj === undefined) {
    obj = storage.fromEntry(rt, { value: event.value, revision: event.revision });
    decoded.set(event, obj);
  }
  return obj;
}

function expired(requested: number, oldest: number): ApiWatchEvent {
  return {
    type: 'ERROR',
    object: {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `too old resource version: ${requested} (${oldest})`,
      reason: 'Expired',
      code: 410,
    },
  };
}

export function bookmark(
  rt: ResourceType,
  revision: number,
  annotations?: Record<string, string>,
): ApiWatchEvent {
  return {
    type: 'BOOKMARK',
    object: {
      kind: rt.kind,
      apiVersion: apiVersionOf(rt),
      metadata: { resourceVersion: String(revision), ...(annotations === undefined ? {} : { annotations }) },
    },
  };
}

/**
 * Kubernetes watch semantics on the store's watch: synthetic ADDED events for the initial state when asked,
 * then changes in revision order, with objects moving in or out of the selector seen as ADDED or DELETED.
 */
export async function* watchObjects(
  storage: ObjectStorage,
  rt: ResourceType,
  req: WatchRequest,
  progress: WatchProgress,
  signal: AbortSignal,
): AsyncGenerator<ApiWatchEvent> {
  let after: number;
  const initial = req.resourceVersion === '' || req.resourceVersion === '0' || req.sendInitialEvents === true;
  if (initial) {
    const list = await listObjects(storage, rt, {
      namespace: req.namespace,
      filter: req.filter,
      ...(req.resourceVersion !== '' && req.resourceVersion !== '0'
        ? { resourceVersion: req.resourceVersion }
        : {}),
    });
    after = Number(list.resourceVersion);
    progress.revision = after;
    for (const item of list.items) yield { type: 'ADDED', object: item };
    if (req.sendInitialEvents === true) yield bookmark(rt, after, { 'k8s.io/initial-events-end': 'true' });
  } else {
    after = Number(req.resourceVersion);
    progress.revision = after;
  }
  let watch: Watch | undefined;
  const onAbort = (): void => watch?.close();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    watch = storage.store.watch(storage.prefix(rt, req.namespace), {
      afterRevision: after,
      ...(req.maxBuffered === undefined ? {} : { maxBuffered: req.maxBuffered }),
    });
    for await (const event of watch) {
      progress.revision = event.revision;
      const obj = objectOf(storage, rt, event);
      if (event.type === 'delete') {
        if (req.filter.matches(obj)) yield { type: 'DELETED', object: obj };
        continue;
      }
      const now = req.filter.matches(obj);
      if (event.prevValue === undefined) {
        if (now) yield { type: 'ADDED', object: obj };
        continue;
      }
      const before = req.filter.all
        ? true
        : req.filter.matches(storage.fromEntry(rt, { value: event.prevValue, revision: event.revision }));
      if (now && before) yield { type: 'MODIFIED', object: obj };
      else if (now) yield { type: 'ADDED', object: obj };
      else if (before) yield { type: 'DELETED', object: obj };
    }
  } catch (err) {
    if (isKedgeError(err, 'KEDGE_STORE_COMPACTED')) {
      yield expired(after, storage.store.compactedRevision() + 1);
      return;
    }
    if (isKedgeError(err, 'KEDGE_STORE_WATCH_OVERFLOW')) {
      // The watcher fell too far behind: like Kubernetes, tell it its revision is gone so it re-lists
      // (ending quietly made informers re-watch from the same stale revision, overflowing forever).
      yield expired(progress.revision, progress.revision + 1);
      return;
    }
    if (isKedgeError(err, 'KEDGE_STORE_CLOSED')) return;
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    watch?.close();
  }
}
