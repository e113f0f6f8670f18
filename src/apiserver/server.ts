import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Registry } from 'prom-client';
import {
  applySchemaDefaults,
  type CustomResourceDefinition,
  printerColumns,
  pruneUnknownFields,
  resourceTypeFromCrd,
  servedVersions,
  storageVersion,
  validateCrd,
  validateCustomResource,
  versionSchema,
} from '../api/crd/index.ts';
import { DEVICES_GROUP, validateDevice, validateDeviceModel } from '../api/devices.ts';
import { isPlainObject, type KubeObject } from '../api/meta.ts';
import type { PodStreamer } from '../api/pod-streams.ts';
import type { ResourceType } from '../api/resource.ts';
import { isKedgeError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import type { Store } from '../store/types.ts';
import {
  type Authenticator,
  type Authorizer,
  discoveryAuthorizer,
  mastersAuthorizer,
  unionAuthorizer,
} from './auth.ts';
import { ApiHandler } from './handler.ts';
import { createApiMetrics } from './metrics.ts';
import { openapiHash, openapiV3Document, openapiV3Index, type Schema } from './openapi.ts';
import { ResourceRegistry } from './registry.ts';
import { ObjectStorage } from './storage.ts';
import { randomClusterIp } from './strategy.ts';

export interface ApiServerOptions {
  readonly store: Store;
  readonly logger: Logger;
  readonly authenticate: Authenticator;
  /** Extra authorizers asked after system:masters (the node authorizer plugs in here). */
  readonly authorizers?: readonly Authorizer[];
  readonly metricsRegistry?: Registry;
  readonly bookmarkIntervalMs?: number;
  readonly maxBodyBytes?: number;
  /** Where pods' logs and exec come from (the hub's tunnel); asked on each request, so it may come later. */
  readonly podStreamer?: () => PodStreamer | undefined;
}

const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'] as const;

/**
 * The Kubernetes API on a store: registry of served types, storage semantics, HTTP handler, and the
 * apiserver's own loops (CRDs become served types; namespaces the cluster needs exist).
 */
export class ApiServer {
  readonly registry = new ResourceRegistry();
  readonly storage: ObjectStorage;
  readonly handler: ApiHandler;
  readonly metrics: Registry;
  readonly #log: Logger;
  readonly #store: Store;
  #crdLoop: AbortController | undefined;
  #crdLoopDone: Promise<void> | undefined;
  readonly #usedIps = new Set<string>();
  #ipsLoaded = false;
  #openapiCache: { generation: number; index: unknown; byPrefix(prefix: string): unknown } | undefined;

  constructor(options: ApiServerOptions) {
    this.#log = options.logger;
    this.#store = options.store;
    this.metrics = options.metricsRegistry ?? new Registry();
    this.storage = new ObjectStorage(options.store, this.registry, {
      customResource: (rt, obj, opts) => this.#checkCustomResource(rt, obj, opts),
      crd: (obj) => {
        const { crd, errors } = validateCrd(obj);
        if (errors.length === 0) Object.assign(obj, { spec: crd.spec });
        return errors;
      },
      allocateClusterIp: () => this.#allocateIp(),
    });
    this.handler = new ApiHandler({
      storage: this.storage,
      logger: options.logger.child({ component: 'apiserver' }),
      authenticate: options.authenticate,
      authorize: unionAuthorizer([mastersAuthorizer, ...(options.authorizers ?? []), discoveryAuthorizer]),
      metrics: createApiMetrics(this.metrics, options.store),
      ...(options.bookmarkIntervalMs === undefined ? {} : { bookmarkIntervalMs: options.bookmarkIntervalMs }),
      ...(options.maxBodyBytes === undefined ? {} : { maxBodyBytes: options.maxBodyBytes }),
      extraRoutes: (req, res, path) => this.#extraRoutes(req, res, path),
      ...(options.podStreamer === undefined ? {} : { podStreamer: options.podStreamer }),
    });
  }

  /** Create the system namespaces, load CRDs and follow their changes. */
  async start(): Promise<void> {
    const nsType = this.registry.lookup('', 'v1', 'namespaces');
    if (nsType === undefined) throw new Error('namespaces are not registered');
    for (const name of SYSTEM_NAMESPACES) {
      try {
        await this.storage.create(nsType, undefined, { metadata: { name } });
      } catch (err) {
        if (!(err instanceof Error && 'httpCode' in err && err.httpCode === 409)) throw err;
      }
    }
    const ready = Promise.withResolvers<void>();
    this.#crdLoop = new AbortController();
    this.#crdLoopDone = this.#followCrds(this.#crdLoop.signal, ready.resolve).catch((err: unknown) => {
      this.#log.error({ err }, 'the CRD loop stopped');
    });
    await ready.promise;
  }

  async close(): Promise<void> {
    this.handler.closeWatches();
    this.#crdLoop?.abort();
    await this.#crdLoopDone;
  }

  handle = (req: IncomingMessage, res: ServerResponse): void => this.handler.handle(req, res);

  /** WebSocket upgrades of the API (pods/NAME/exec); false for paths it does not serve. */
  handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): boolean =>
    this.handler.handleUpgrade(req, socket, head);

  async #extraRoutes(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    if (req.method !== 'GET') return false;
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return true;
    }
    if (path === '/openapi/v3' || path.startsWith('/openapi/v3/')) {
      const docs = this.#openapi();
      const body = path === '/openapi/v3' ? docs.index : docs.byPrefix(path.slice('/openapi/v3/'.length));
      if (body === undefined) return false;
      const text = JSON.stringify(body);
      res.writeHead(200, {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(text),
        ...(path === '/openapi/v3'
          ? {}
          : { 'Cache-Control': 'public, immutable', Etag: `"${openapiHash(body)}"` }),
      });
      res.end(text);
      return true;
    }
    if (path === '/metrics') {
      const text = await this.metrics.metrics();
      res.writeHead(200, { 'Content-Type': this.metrics.contentType });
      res.end(text);
      return true;
    }
    return false;
  }

  /** OpenAPI v3 documents, rebuilt only when the set of served types changes. */
  #openapi(): { index: unknown; byPrefix(prefix: string): unknown } {
    const generation = this.registry.generation;
    if (this.#openapiCache?.generation !== generation) {
      const resources = this.registry.all();
      const options = {
        customSchema: (rt: ResourceType) => {
          const schema = this.registry.customInfo(rt)?.schema;
          return isPlainObject(schema) ? (schema as Schema) : undefined;
        },
      };
      const docs = new Map<string, unknown>();
      this.#openapiCache = {
        generation,
        index: openapiV3Index(resources, options),
        byPrefix(prefix) {
          if (!docs.has(prefix)) docs.set(prefix, openapiV3Document(resources, prefix, options));
          return docs.get(prefix);
        },
      };
    }
    return this.#openapiCache;
  }

  #checkCustomResource(
    rt: ResourceType,
    obj: KubeObject,
    opts: { fieldValidation?: string; warnings?: string[] },
  ): ReturnType<typeof validateCustomResource> {
    const info = this.registry.customInfo(rt);
    const schema = info?.schema;
    if (schema === undefined || !isPlainObject(schema)) return [];
    const before = JSON.stringify(obj);
    const pruned = pruneUnknownFields(schema, obj) as KubeObject;
    if (JSON.stringify(pruned) !== before && opts.fieldValidation !== 'Ignore') {
      const message = 'unknown fields were removed by the schema (pruning)';
      if (opts.fieldValidation === 'Strict') {
        return [{ field: '', type: 'FieldValueInvalid', message: `strict decoding error: ${message}` }];
      }
      opts.warnings?.push(message);
    }
    const defaulted = applySchemaDefaults(schema, pruned) as KubeObject;
    for (const key of Object.keys(obj)) delete obj[key];
    Object.assign(obj, defaulted);
    const errors = validateCustomResource(schema, obj);
    if (errors.length > 0 || rt.group !== DEVICES_GROUP) return errors;
    // devices.kubeedge.io: checks a schema cannot express (typed desired values, ordered ranges).
    const problems = rt.kind === 'Device' ? validateDevice(obj) : validateDeviceModel(obj);
    return problems.map(([field, message]) => ({ field, type: 'FieldValueInvalid' as const, message }));
  }

  async #allocateIp(): Promise<string> {
    if (!this.#ipsLoaded) {
      const list = await this.#store.list('/registry/core/services/');
      for (const e of list.entries) {
        const spec = (JSON.parse(e.value) as KubeObject)['spec'];
        if (isPlainObject(spec) && typeof spec['clusterIP'] === 'string')
          this.#usedIps.add(spec['clusterIP']);
      }
      this.#ipsLoaded = true;
    }
    for (let i = 0; i < 1000; i++) {
      const ip = randomClusterIp();
      if (!this.#usedIps.has(ip)) {
        this.#usedIps.add(ip);
        return ip;
      }
    }
    throw new Error('no free cluster IP in 10.43.0.0/16');
  }

  /** Serve the types of every CRD, and keep its status (Established, NamesAccepted) up to date. */
  async #followCrds(signal: AbortSignal, ready: () => void): Promise<void> {
    const prefix = '/registry/apiextensions.k8s.io/customresourcedefinitions/';
    const list = await this.#store.list(prefix);
    for (const e of list.entries) await this.#applyCrd(e.key, e.value, e.revision);
    ready();
    const watch = this.#store.watch(prefix, { afterRevision: list.revision });
    signal.addEventListener('abort', () => watch.close(), { once: true });
    try {
      for await (const ev of watch) {
        if (ev.type === 'delete') this.registry.setCustomTypes(crdNameOf(ev.key), []);
        else await this.#applyCrd(ev.key, ev.value, ev.revision);
      }
    } catch (err) {
      if (isKedgeError(err, 'KEDGE_STORE_CLOSED')) return;
      if (isKedgeError(err, 'KEDGE_STORE_WATCH_OVERFLOW') && !signal.aborted) {
        return this.#followCrds(signal, () => {});
      }
      throw err;
    }
  }

  async #applyCrd(key: string, value: string, revision: number): Promise<void> {
    const obj = JSON.parse(value) as KubeObject;
    const crd = obj as unknown as CustomResourceDefinition;
    const name = crdNameOf(key);
    if (obj.metadata.deletionTimestamp !== undefined) {
      this.registry.setCustomTypes(name, []);
      return;
    }
    const stored = storageVersion(crd)?.name ?? '';
    this.registry.setCustomTypes(
      name,
      servedVersions(crd).map((v) => ({
        rt: resourceTypeFromCrd(crd, v.name),
        info: {
          crd: obj,
          schema: versionSchema(crd, v.name),
          printerColumns: printerColumns(crd, v.name),
          storageVersion: stored,
        },
      })),
    );
    await this.#markEstablished(name, obj, revision);
  }

  async #markEstablished(name: string, obj: KubeObject, revision: number): Promise<void> {
    const crdType = this.registry.lookup('apiextensions.k8s.io', 'v1', 'customresourcedefinitions');
    if (crdType === undefined) return;
    const spec = isPlainObject(obj['spec']) ? obj['spec'] : {};
    const status = isPlainObject(obj['status']) ? obj['status'] : {};
    const conditions = Array.isArray(status['conditions']) ? status['conditions'] : [];
    const established = conditions.some(
      (c: unknown) => isPlainObject(c) && c['type'] === 'Established' && c['status'] === 'True',
    );
    if (established && JSON.stringify(status['acceptedNames']) === JSON.stringify(spec['names'])) return;
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    try {
      await this.storage.guaranteedUpdate(
        crdType,
        undefined,
        name,
        (cur) => {
          if (cur.metadata.resourceVersion !== String(revision)) return cur;
          cur['status'] = {
            acceptedNames: spec['names'],
            storedVersions: [
              ...new Set(
                [
                  ...(Array.isArray(status['storedVersions']) ? status['storedVersions'] : []),
                  storageVersion(cur as unknown as CustomResourceDefinition)?.name,
                ].filter((v) => v !== undefined),
              ),
            ],
            conditions: [
              {
                type: 'NamesAccepted',
                status: 'True',
                reason: 'NoConflicts',
                message: 'no conflicts found',
                lastTransitionTime: now,
              },
              {
                type: 'Established',
                status: 'True',
                reason: 'InitialNamesAccepted',
                message: 'the initial names have been accepted',
                lastTransitionTime: now,
              },
            ],
          };
          return cur;
        },
        'status',
      );
    } catch (err) {
      this.#log.warn({ err, crd: name }, 'could not update CRD status');
    }
  }
}

function crdNameOf(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}
