import type { KubeList, KubeObject } from '../api/meta.ts';
import type { ResourceType } from '../api/resource.ts';
import { ApiError } from '../api/status-error.ts';
import type {
  Cluster,
  ClusterWatchEvent,
  DeleteOptions,
  ListOptions,
  PatchType,
  ResourceRef,
  UpdateOptions,
  WatchOptions,
  WriteOptions,
} from '../client/types.ts';
import { apiErrors, toApiError } from './errors.ts';
import { listObjects, makeFilter } from './list.ts';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, patchMetaFor } from './patch/index.ts';
import type { ObjectStorage } from './storage.ts';
import { watchObjects } from './watch.ts';

/**
 * The Cluster interface in process: the same storage semantics as the HTTP API, without HTTP,
 * serialization or authorization. The server's own loops (controllers, hub) use it.
 */
export class LocalCluster implements Cluster {
  readonly #storage: ObjectStorage;

  constructor(storage: ObjectStorage) {
    this.#storage = storage;
  }

  #type(ref: ResourceRef): ResourceType {
    const rt = this.#storage.registry.lookup(ref.group, ref.version, ref.resource);
    if (rt === undefined) {
      throw new ApiError(
        404,
        'NotFound',
        `the server could not find the requested resource (${ref.group}/${ref.version} ${ref.resource})`,
      );
    }
    return rt;
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toApiError(err);
    }
  }

  get<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
  ): Promise<T> {
    return this.#call(async () => (await this.#storage.get(this.#type(ref), namespace, name)) as T);
  }

  list<T extends KubeObject = KubeObject>(ref: ResourceRef, options: ListOptions = {}): Promise<KubeList<T>> {
    return this.#call(async () => {
      const rt = this.#type(ref);
      const list = await listObjects(this.#storage, rt, {
        namespace: options.namespace,
        filter: makeFilter(rt, options.labelSelector, options.fieldSelector),
        ...(options.limit === undefined ? {} : { limit: options.limit }),
        ...(options.continue === undefined ? {} : { continueToken: options.continue }),
        ...(options.resourceVersion === undefined ? {} : { resourceVersion: options.resourceVersion }),
      });
      return {
        apiVersion: rt.group === '' ? rt.version : `${rt.group}/${rt.version}`,
        kind: rt.listKind,
        metadata: {
          resourceVersion: list.resourceVersion,
          ...(list.continueToken === undefined ? {} : { continue: list.continueToken }),
          ...(list.remainingItemCount === undefined ? {} : { remainingItemCount: list.remainingItemCount }),
        },
        items: list.items as T[],
      };
    });
  }

  async *watch<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    options: WatchOptions,
  ): AsyncGenerator<ClusterWatchEvent<T>> {
    const rt = this.#type(ref);
    const filter = makeFilter(rt, options.labelSelector, options.fieldSelector);
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const events = watchObjects(
        this.#storage,
        rt,
        { namespace: options.namespace, filter, resourceVersion: options.resourceVersion },
        { revision: 0 },
        controller.signal,
      );
      for await (const event of events) {
        if (event.type === 'ERROR') throw ApiError.fromStatus(event.object, 410);
        yield event as ClusterWatchEvent<T>;
      }
    } catch (err) {
      throw toApiError(err);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      controller.abort();
    }
  }

  create<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    obj: T,
    options: WriteOptions = {},
  ): Promise<T> {
    return this.#call(
      async () => (await this.#storage.create(this.#type(ref), namespace, obj, writeOpts(options))) as T,
    );
  }

  update<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    obj: T,
    options: UpdateOptions = {},
  ): Promise<T> {
    return this.#call(async () => {
      const name = obj.metadata.name;
      if (name === undefined || name === '')
        throw apiErrors.badRequest('metadata.name is required for an update');
      return (await this.#storage.update(
        this.#type(ref),
        obj.metadata.namespace,
        name,
        obj,
        options.subresource,
        writeOpts(options),
      )) as T;
    });
  }

  patch<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    patch: unknown,
    options: UpdateOptions = {},
  ): Promise<T> {
    return this.#call(async () => {
      const rt = this.#type(ref);
      if (type === 'strategic' && rt.custom) {
        throw apiErrors.unsupportedMediaType('application/strategic-merge-patch+json', [
          'application/json-patch+json',
          'application/merge-patch+json',
        ]);
      }
      return (await this.#storage.guaranteedUpdate(
        rt,
        namespace,
        name,
        (current) => {
          const next =
            type === 'json'
              ? applyJsonPatch(current, patch)
              : type === 'merge'
                ? applyMergePatch(current, patch)
                : applyStrategicMergePatch(current, patch, patchMetaFor(rt.group, rt.kind));
          const rv = (next as KubeObject).metadata?.resourceVersion;
          if (rv !== undefined && rv !== '' && rv !== current.metadata.resourceVersion)
            throw apiErrors.staleUpdate(rt, name);
          return next as KubeObject;
        },
        options.subresource,
        writeOpts(options),
      )) as T;
    });
  }

  modify<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    change: (current: T) => T | undefined,
    options: UpdateOptions = {},
  ): Promise<T | undefined> {
    return this.#call(async () => {
      let wrote = true;
      const result = await this.#storage.guaranteedUpdate(
        this.#type(ref),
        namespace,
        name,
        (current) => {
          const next = change(current as T);
          wrote = next !== undefined;
          return next ?? current;
        },
        options.subresource,
        writeOpts(options),
      );
      return wrote ? (result as T) : undefined;
    });
  }

  delete(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    options: DeleteOptions = {},
  ): Promise<KubeObject> {
    return this.#call(() =>
      this.#storage.delete(this.#type(ref), namespace, name, {
        ...writeOpts(options),
        ...(options.propagationPolicy === undefined ? {} : { propagationPolicy: options.propagationPolicy }),
        ...(options.preconditions === undefined ? {} : { preconditions: options.preconditions }),
        ...(options.gracePeriodSeconds === undefined
          ? {}
          : { gracePeriodSeconds: options.gracePeriodSeconds }),
      }),
    );
  }

  createSubresource(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    subresource: string,
    body: unknown,
  ): Promise<unknown> {
    return this.#call(async () => {
      const rt = this.#type(ref);
      if (subresource === 'binding' && rt.subresources.binding)
        return this.#storage.bind(rt, namespace, name, body);
      throw new ApiError(404, 'NotFound', `${rt.plural}/${subresource} is not served`);
    });
  }

  updateSubresource(
    ref: ResourceRef,
    _namespace: string | undefined,
    name: string,
    subresource: string,
    body: unknown,
  ): Promise<KubeObject> {
    return this.#call(async () => {
      const rt = this.#type(ref);
      if (subresource === 'finalize' && rt.group === '' && rt.kind === 'Namespace') {
        return this.#storage.finalizeNamespace(rt, name, body);
      }
      throw new ApiError(404, 'NotFound', `${rt.plural}/${subresource} is not served`);
    });
  }
}

function writeOpts(options: WriteOptions): { dryRun?: boolean } {
  return options.dryRun === true ? { dryRun: true } : {};
}
