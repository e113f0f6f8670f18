import { randomBytes, randomUUID } from 'node:crypto';
import type { FieldError as SchemaFieldError } from '../api/crd/index.ts';
import { cloneJson, isPlainObject, type KubeObject, type ObjectMeta } from '../api/meta.ts';
import { apiVersionOf, type ResourceType } from '../api/resource.ts';
import { isKedgeError } from '../lib/errors.ts';
import type { Store, StoreEntry } from '../store/types.ts';
import { ApiError, apiErrors, type FieldError } from './errors.ts';
import { collectionPrefix, objectKey, type ResourceRegistry } from './registry.ts';
import { strategyFor, validateObject } from './strategy.ts';

/** Who asks, and how: what every write takes besides the object. */
export interface WriteOptions {
  readonly dryRun?: boolean;
  /** Kubernetes' fieldValidation: what to do with fields a schema does not know. */
  readonly fieldValidation?: 'Strict' | 'Warn' | 'Ignore';
  /** Collects warnings for the response's Warning headers. */
  readonly warnings?: string[];
}

export interface DeleteOptions extends WriteOptions {
  readonly propagationPolicy?: 'Orphan' | 'Background' | 'Foreground';
  readonly preconditions?: { readonly uid?: string; readonly resourceVersion?: string };
  readonly gracePeriodSeconds?: number;
}

/** Per-kind hooks the server wires in (custom resource schemas, cluster IPs, watchers of CRDs). */
export interface StorageHooks {
  /** Defaults, prunes and validates a custom resource against its CRD schema. */
  customResource?(rt: ResourceType, obj: KubeObject, options: WriteOptions): readonly SchemaFieldError[];
  /** Validates and defaults CustomResourceDefinitions (the CRD rules are not a per-kind strategy of this module). */
  crd?(obj: KubeObject, prev: KubeObject | undefined): readonly SchemaFieldError[];
  allocateClusterIp?(): Promise<string>;
}

/** What an update may change: the object without its status, only the status, or both (binding). */
export type UpdateScope = 'status' | 'all' | undefined;

export type Mutation = (current: KubeObject) => KubeObject | Promise<KubeObject>;

const MAX_RETRIES = 8;
const NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function randomSuffix(): string {
  const bytes = randomBytes(5);
  let s = '';
  for (const b of bytes) s += NAME_CHARS[b % NAME_CHARS.length];
  return s;
}

/** The object as stored: everything but resourceVersion, which is the store revision. */
export function encodeObject(obj: KubeObject): string {
  const { resourceVersion: _rv, ...meta } = obj.metadata;
  return JSON.stringify({ ...obj, metadata: meta });
}

/** Parse a stored value and set metadata.resourceVersion from the entry's revision. */
export function decodeEntry(value: string, revision: number): KubeObject {
  const obj = JSON.parse(value) as KubeObject;
  obj.metadata.resourceVersion = String(revision);
  return obj;
}

/** A namespace being deleted stays until its spec.finalizers (the namespace controller's) are gone. */
function namespaceHeld(rt: ResourceType, obj: KubeObject): boolean {
  if (rt.group !== '' || rt.kind !== 'Namespace') return false;
  const spec = isPlainObject(obj['spec']) ? obj['spec'] : {};
  return Array.isArray(spec['finalizers']) && spec['finalizers'].length > 0;
}

/** Everything except metadata, status, apiVersion and kind: what bumps metadata.generation. */
function specPart(o: KubeObject, statusSeparate: boolean): string {
  const { metadata: _m, status, apiVersion: _a, kind: _k, ...rest } = o;
  return JSON.stringify(statusSeparate ? rest : { ...rest, status });
}

/**
 * The generic REST storage of Kubernetes on a revisioned store: create, update (with subresources),
 * guaranteed update for patches, delete with finalizers and preconditions, list and get.
 */
export class ObjectStorage {
  readonly store: Store;
  readonly registry: ResourceRegistry;
  readonly hooks: StorageHooks;

  constructor(store: Store, registry: ResourceRegistry, hooks: StorageHooks = {}) {
    this.store = store;
    this.registry = registry;
    this.hooks = hooks;
  }

  async get(rt: ResourceType, namespace: string | undefined, name: string): Promise<KubeObject> {
    const entry = await this.store.get(objectKey(rt, namespace, name));
    if (entry === undefined) throw apiErrors.notFound(rt, name);
    return this.fromEntry(rt, entry);
  }

  fromEntry(rt: ResourceType, entry: Pick<StoreEntry, 'value' | 'revision'>): KubeObject {
    const obj = decodeEntry(entry.value, entry.revision);
    if (rt.custom) obj.apiVersion = apiVersionOf(rt);
    return obj;
  }

  async create(
    rt: ResourceType,
    namespace: string | undefined,
    body: unknown,
    options: WriteOptions = {},
  ): Promise<KubeObject> {
    const obj = this.checkBody(rt, namespace, body);
    const meta = obj.metadata;
    if (
      (meta.name === undefined || meta.name === '') &&
      typeof meta.generateName === 'string' &&
      meta.generateName !== ''
    ) {
      meta.name = `${meta.generateName}${randomSuffix()}`;
    }
    if (rt.namespaced) await this.checkNamespaceOpen(namespace ?? '');
    meta.uid = randomUUID();
    meta.creationTimestamp = now();
    meta.generation = 1;
    delete meta.resourceVersion;
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    delete meta.managedFields;
    const strategy = strategyFor(rt);
    strategy.defaults?.(obj);
    if (rt.custom && rt.subresources.status) delete obj['status'];
    strategy.prepareForCreate?.(obj);
    await this.allocate(rt, obj);
    this.validate(rt, obj, undefined, options);
    if (options.dryRun) return obj;
    try {
      const entry = await this.store.create(objectKey(rt, namespace, meta.name ?? ''), encodeObject(obj));
      obj.metadata.resourceVersion = String(entry.revision);
      return obj;
    } catch (err) {
      if (isKedgeError(err, 'KEDGE_STORE_KEY_EXISTS')) {
        if (
          meta.generateName !== undefined &&
          body !== null &&
          isPlainObject(body) &&
          isPlainObject(body['metadata']) &&
          !body['metadata']['name']
        ) {
          return this.create(rt, namespace, body, options);
        }
        throw apiErrors.alreadyExists(rt, meta.name ?? '');
      }
      throw err;
    }
  }

  /** PUT: replace the object (or its status), honouring metadata.resourceVersion as a precondition. */
  async update(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    subresource: 'status' | undefined,
    options: WriteOptions = {},
  ): Promise<KubeObject> {
    const obj = this.checkBody(rt, namespace, body);
    if (obj.metadata.name !== undefined && obj.metadata.name !== name) {
      throw apiErrors.badRequest(
        `the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`,
      );
    }
    obj.metadata.name = name;
    const expected = obj.metadata.resourceVersion;
    return this.guaranteedUpdate(
      rt,
      namespace,
      name,
      (current) => {
        if (expected !== undefined && expected !== '' && expected !== current.metadata.resourceVersion) {
          throw apiErrors.staleUpdate(rt, name);
        }
        return obj; // checkBody copies it for each attempt
      },
      subresource,
      options,
    );
  }

  /**
   * Read, mutate, write with the read revision as precondition; retry when someone else wrote in between.
   * The mutation sees a private copy. This is how patches, scale and binding change objects.
   */
  async guaranteedUpdate(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    mutate: Mutation,
    subresource: UpdateScope,
    options: WriteOptions = {},
  ): Promise<KubeObject> {
    const key = objectKey(rt, namespace, name);
    for (let attempt = 0; ; attempt++) {
      const entry = await this.store.get(key);
      if (entry === undefined) throw apiErrors.notFound(rt, name);
      const current = this.fromEntry(rt, entry);
      // The mutation gets its own copy (a second parse of the stored text). When it returns that copy,
      // checkBody need not copy it again; anything else may share parts with the caller's objects.
      const working = this.fromEntry(rt, entry);
      const proposed = await mutate(working);
      const next = this.mergeForUpdate(
        rt,
        current,
        this.checkBody(rt, namespace, proposed, proposed === working),
        subresource,
      );
      this.validate(rt, next, current, options);
      const text = encodeObject(next);
      // Stored text is encodeObject's output; a custom resource's apiVersion is set after reading, so re-encode.
      if (text === (rt.custom ? encodeObject(current) : entry.value)) return current;
      if (options.dryRun) return next;
      const meta = next.metadata;
      try {
        if (
          meta.deletionTimestamp !== undefined &&
          (meta.finalizers ?? []).length === 0 &&
          !namespaceHeld(rt, next)
        ) {
          const { revision } = await this.store.delete(key, entry.revision);
          next.metadata.resourceVersion = String(revision);
          return next;
        }
        const written = await this.store.update(key, text, entry.revision);
        next.metadata.resourceVersion = String(written.revision);
        return next;
      } catch (err) {
        if (isKedgeError(err, 'KEDGE_STORE_CONFLICT') && attempt < MAX_RETRIES) continue;
        if (isKedgeError(err, 'KEDGE_STORE_NOT_FOUND')) throw apiErrors.notFound(rt, name);
        if (isKedgeError(err, 'KEDGE_STORE_CONFLICT')) throw apiErrors.staleUpdate(rt, name);
        throw err;
      }
    }
  }

  /** pods/binding: set spec.nodeName of an unbound pod and its PodScheduled condition, in one write. */
  async bind(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    options: WriteOptions = {},
  ): Promise<KubeObject> {
    const target = isPlainObject(body) && isPlainObject(body['target']) ? body['target'] : undefined;
    const node = target?.['name'];
    if (typeof node !== 'string' || node === '') {
      throw apiErrors.invalid({ group: '', kind: 'Binding' }, name, [
        { type: 'FieldValueRequired', field: 'target.name' },
      ]);
    }
    return this.guaranteedUpdate(
      rt,
      namespace,
      name,
      (pod) => {
        const spec = isPlainObject(pod['spec']) ? pod['spec'] : {};
        if (pod.metadata.deletionTimestamp !== undefined) {
          throw apiErrors.conflict(rt, name, `pod ${name} is being deleted, cannot be assigned to a host`);
        }
        if (typeof spec['nodeName'] === 'string' && spec['nodeName'] !== '') {
          throw apiErrors.conflict(rt, name, `pod ${name} is already assigned to node "${spec['nodeName']}"`);
        }
        spec['nodeName'] = node;
        pod['spec'] = spec;
        const status = isPlainObject(pod['status']) ? pod['status'] : {};
        const conditions = (Array.isArray(status['conditions']) ? status['conditions'] : []).filter(
          (c: unknown) => !(isPlainObject(c) && c['type'] === 'PodScheduled'),
        );
        conditions.push({
          type: 'PodScheduled',
          status: 'True',
          lastProbeTime: null,
          lastTransitionTime: now(),
        });
        status['conditions'] = conditions;
        pod['status'] = status;
        return pod;
      },
      'all',
      options,
    );
  }

  /**
   * namespaces/finalize: replace spec.finalizers (the only way to change them); a namespace being deleted
   * with none left goes away in the same write.
   */
  async finalizeNamespace(
    rt: ResourceType,
    name: string,
    body: unknown,
    options: WriteOptions = {},
  ): Promise<KubeObject> {
    const spec = isPlainObject(body) && isPlainObject(body['spec']) ? body['spec'] : {};
    const finalizers = Array.isArray(spec['finalizers']) ? spec['finalizers'] : [];
    return this.guaranteedUpdate(
      rt,
      undefined,
      name,
      (ns) => {
        ns['spec'] = { ...(isPlainObject(ns['spec']) ? ns['spec'] : {}), finalizers };
        return ns;
      },
      'all',
      options,
    );
  }

  async delete(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    options: DeleteOptions = {},
  ): Promise<KubeObject> {
    const key = objectKey(rt, namespace, name);
    for (let attempt = 0; ; attempt++) {
      const entry = await this.store.get(key);
      if (entry === undefined) throw apiErrors.notFound(rt, name);
      const current = this.fromEntry(rt, entry);
      const pre = options.preconditions;
      if (pre?.uid !== undefined && pre.uid !== current.metadata.uid) {
        throw apiErrors.conflict(
          rt,
          name,
          `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid}`,
        );
      }
      if (pre?.resourceVersion !== undefined && pre.resourceVersion !== current.metadata.resourceVersion) {
        throw apiErrors.conflict(
          rt,
          name,
          `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`,
        );
      }
      const next = cloneJson(current);
      const meta = next.metadata;
      const finalizers = new Set(meta.finalizers ?? []);
      if (options.propagationPolicy === 'Orphan') finalizers.add('orphan');
      if (options.propagationPolicy === 'Foreground') finalizers.add('foregroundDeletion');
      if (rt.group === '' && rt.kind === 'Namespace') {
        const spec = isPlainObject(next['spec']) ? next['spec'] : {};
        const specFinalizers = Array.isArray(spec['finalizers']) ? spec['finalizers'] : [];
        if (specFinalizers.length > 0 || finalizers.size > 0) {
          next['status'] = { ...(isPlainObject(next['status']) ? next['status'] : {}), phase: 'Terminating' };
          if (meta.deletionTimestamp !== undefined && encodeObject(next) === encodeObject(current))
            return current;
        } else finalizers.clear();
      }
      const mustWait =
        finalizers.size > 0 ||
        (rt.kind === 'Namespace' && rt.group === '' && next['status'] !== current['status']);
      try {
        if (mustWait) {
          if (meta.deletionTimestamp === undefined) {
            meta.deletionTimestamp = now();
            meta.deletionGracePeriodSeconds = 0;
          }
          meta.finalizers = [...finalizers];
          if (meta.finalizers.length === 0) delete meta.finalizers;
          if (encodeObject(next) === encodeObject(current)) return current;
          if (options.dryRun) return next;
          const written = await this.store.update(key, encodeObject(next), entry.revision);
          next.metadata.resourceVersion = String(written.revision);
          return next;
        }
        if (options.dryRun) return current;
        await this.store.delete(key, entry.revision);
        return current;
      } catch (err) {
        if (isKedgeError(err, 'KEDGE_STORE_CONFLICT') && attempt < MAX_RETRIES) continue;
        if (isKedgeError(err, 'KEDGE_STORE_NOT_FOUND')) throw apiErrors.notFound(rt, name);
        throw err;
      }
    }
  }

  /** The object a write stores: immutable metadata kept, status or spec kept per the subresource. */
  private mergeForUpdate(
    rt: ResourceType,
    current: KubeObject,
    proposed: KubeObject,
    subresource: UpdateScope,
  ): KubeObject {
    let next: KubeObject;
    if (subresource === 'status') {
      next = cloneJson(current);
      if (proposed['status'] === undefined) delete next['status'];
      else next['status'] = proposed['status'];
      // Kubernetes lets status writers change labels and annotations? No: status writes change status only.
    } else if (subresource === 'all') {
      next = proposed;
    } else {
      next = proposed;
      if (rt.group === '' && rt.kind === 'Namespace') {
        // Only namespaces/finalize changes spec.finalizers, as in Kubernetes.
        const spec = isPlainObject(next['spec']) ? next['spec'] : {};
        const cur = isPlainObject(current['spec']) ? current['spec'] : {};
        if (cur['finalizers'] === undefined) delete spec['finalizers'];
        else spec['finalizers'] = cur['finalizers'];
        next['spec'] = spec;
      }
      if (rt.subresources.status) {
        if (current['status'] === undefined) delete next['status'];
        else next['status'] = current['status'];
      }
    }
    const meta: ObjectMeta = next.metadata;
    const cur = current.metadata;
    meta.name = cur.name ?? '';
    if (cur.namespace !== undefined) meta.namespace = cur.namespace;
    else delete meta.namespace;
    meta.uid = cur.uid ?? '';
    meta.creationTimestamp = cur.creationTimestamp ?? now();
    if (cur.deletionTimestamp !== undefined) meta.deletionTimestamp = cur.deletionTimestamp;
    else delete meta.deletionTimestamp;
    if (cur.deletionGracePeriodSeconds !== undefined)
      meta.deletionGracePeriodSeconds = cur.deletionGracePeriodSeconds;
    else delete meta.deletionGracePeriodSeconds;
    delete meta.managedFields;
    delete meta.generateName;
    if (cur.generateName !== undefined) meta.generateName = cur.generateName;
    meta.resourceVersion = cur.resourceVersion ?? '';
    if (subresource !== 'status') strategyFor(rt).defaults?.(next);
    const curGen = cur.generation ?? 1;
    const changed =
      specPart(next, rt.subresources.status === true) !== specPart(current, rt.subresources.status === true);
    meta.generation = changed && subresource !== 'status' ? curGen + 1 : curGen;
    if (rt.kind === 'CustomResourceDefinition' && subresource !== 'status') {
      const errors = this.hooks.crd?.(next, current) ?? [];
      if (errors.length > 0) throw apiErrors.invalid(rt, meta.name, errors);
    }
    return next;
  }

  /**
   * The body must be an object of the right kind for this URL; returns it with metadata, as a private copy
   * unless `owned` says the caller's object is already private to this write.
   */
  checkBody(rt: ResourceType, namespace: string | undefined, body: unknown, owned = false): KubeObject {
    if (!isPlainObject(body)) throw apiErrors.badRequest('the request body must be a JSON object');
    const obj = (owned ? body : cloneJson(body)) as KubeObject;
    if (obj.metadata === undefined || obj.metadata === null) obj.metadata = {};
    if (!isPlainObject(obj.metadata)) throw apiErrors.badRequest('metadata must be an object');
    const expected = apiVersionOf(rt);
    if (obj.apiVersion !== undefined && obj.apiVersion !== expected) {
      const sameGroup =
        rt.custom && typeof obj.apiVersion === 'string' && obj.apiVersion.startsWith(`${rt.group}/`);
      if (!sameGroup) {
        throw apiErrors.badRequest(
          `the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${expected})`,
        );
      }
    }
    if (obj.kind !== undefined && obj.kind !== rt.kind) {
      throw apiErrors.badRequest(
        `the kind in the data (${String(obj.kind)}) does not match the expected kind (${rt.kind})`,
      );
    }
    obj.apiVersion = expected;
    obj.kind = rt.kind;
    if (rt.namespaced) {
      if (
        obj.metadata.namespace !== undefined &&
        obj.metadata.namespace !== '' &&
        obj.metadata.namespace !== namespace
      ) {
        throw apiErrors.badRequest(
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      }
      if (namespace === undefined) throw apiErrors.badRequest(`${rt.plural} must be created in a namespace`);
      obj.metadata.namespace = namespace;
    } else {
      delete obj.metadata.namespace;
    }
    return obj;
  }

  private validate(
    rt: ResourceType,
    obj: KubeObject,
    prev: KubeObject | undefined,
    options: WriteOptions,
  ): void {
    const errors: Array<FieldError | SchemaFieldError> = rt.custom ? [] : validateObject(rt, obj, prev);
    if (rt.custom) {
      errors.push(...validateObject(rt, obj, prev).filter((e) => e.field.startsWith('metadata.')));
      errors.push(...(this.hooks.customResource?.(rt, obj, options) ?? []));
    } else if (rt.kind === 'CustomResourceDefinition' && prev === undefined) {
      errors.push(...(this.hooks.crd?.(obj, undefined) ?? []));
    }
    if (errors.length > 0) throw apiErrors.invalid(rt, obj.metadata.name ?? '', errors);
  }

  private async checkNamespaceOpen(namespace: string): Promise<void> {
    const ns = await this.store.get(`/registry/core/namespaces/${namespace}`);
    if (ns === undefined)
      throw new ApiError(404, 'NotFound', `namespaces "${namespace}" not found`, {
        name: namespace,
        kind: 'namespaces',
      });
    const obj = JSON.parse(ns.value) as KubeObject;
    if (obj.metadata.deletionTimestamp !== undefined) {
      throw new ApiError(
        403,
        'Forbidden',
        `unable to create new content in namespace ${namespace} because it is being terminated`,
        {
          causes: [
            {
              reason: 'NamespaceTerminating',
              message: `namespace ${namespace} is being terminated`,
              field: 'metadata.namespace',
            },
          ],
        },
      );
    }
  }

  private async allocate(rt: ResourceType, obj: KubeObject): Promise<void> {
    if (rt.group !== '' || rt.kind !== 'Service' || this.hooks.allocateClusterIp === undefined) return;
    const spec = isPlainObject(obj['spec']) ? obj['spec'] : {};
    if (spec['type'] === 'ExternalName' || spec['clusterIP'] === 'None') return;
    if (spec['clusterIP'] === undefined || spec['clusterIP'] === '') {
      const ip = await this.hooks.allocateClusterIp();
      spec['clusterIP'] = ip;
      spec['clusterIPs'] = [ip];
    }
  }

  /** Store prefix for a list or watch. */
  prefix(rt: ResourceType, namespace: string | undefined): string {
    return collectionPrefix(rt, namespace);
  }
}
