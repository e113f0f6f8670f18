import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { isPlainObject, type KubeObject, type Status } from '../api/meta.ts';
import type { PodStreamer } from '../api/pod-streams.ts';
import { buildTable, type CustomPrinterColumn } from '../api/printers.ts';
import { apiVersionOf, type ResourceType } from '../api/resource.ts';
import type { Logger } from '../lib/log.ts';
import type { Authenticator, Authorizer, RequestAttributes, UserInfo } from './auth.ts';
import {
  aggregatedContentType,
  aggregatedDiscovery,
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersions,
  negotiateDiscovery,
} from './discovery.ts';
import { ApiError, apiErrors, toApiError } from './errors.ts';
import { listObjects, makeFilter } from './list.ts';
import type { ApiMetrics } from './metrics.ts';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, patchMetaFor } from './patch/index.ts';
import {
  EXEC_PROTOCOLS,
  execOptions,
  logOptions,
  runExecSession,
  serveLogs,
  targetOf,
} from './pod-streams.ts';
import type { DeleteOptions, ObjectStorage, WriteOptions } from './storage.ts';
import { type ApiWatchEvent, bookmark, type WatchProgress, watchObjects } from './watch.ts';

export interface HandlerOptions {
  readonly storage: ObjectStorage;
  readonly logger: Logger;
  readonly authenticate: Authenticator;
  readonly authorize: Authorizer;
  readonly metrics?: ApiMetrics;
  /** Largest request body accepted (default 3 MiB, like Kubernetes). */
  readonly maxBodyBytes?: number;
  /** Interval between watch bookmarks (default 60 s). */
  readonly bookmarkIntervalMs?: number;
  /** Extra non-API routes (health, metrics, openapi): return true when handled. */
  readonly extraRoutes?: (
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    user: UserInfo | undefined,
  ) => Promise<boolean> | boolean;
  readonly serverAddress?: string;
  /** Where pods' logs and exec sessions come from (the hub's tunnel); without it they answer 503. */
  readonly podStreamer?: () => PodStreamer | undefined;
}

export const VERSION_INFO = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-kedge',
  gitCommit: 'kedge',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'node',
  compiler: 'kedge',
  platform: `${process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`,
} as const;

const JSON_TYPE = 'application/json';
const PATCH_TYPES = [
  'application/json-patch+json',
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
] as const;
const BODY_TYPES = [JSON_TYPE, 'application/yaml', 'application/vnd.kubernetes.protobuf'] as const;
const PUBLIC_PATHS = new Set(['/healthz', '/readyz', '/livez', '/version']);

/** A parsed request path under /api or /apis. */
export interface ResourcePath {
  readonly group: string;
  readonly version: string;
  readonly rt: ResourceType;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
  readonly subresource: string | undefined;
  readonly watch: boolean;
}

type Parsed =
  | {
      readonly kind: 'discovery';
      readonly scope: 'api' | 'apis';
      readonly group?: string;
      readonly version?: string;
    }
  | { readonly kind: 'resource'; readonly path: ResourcePath }
  | { readonly kind: 'other' };

function send(res: ServerResponse, code: number, body: unknown, contentType = JSON_TYPE): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, err: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  send(res, err.httpCode, err.toStatus());
}

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/** Which representation the client asked for: plain JSON, a Table, or metadata only. */
function negotiateOutput(accept: string | undefined): 'json' | 'table' | 'metadata' {
  if (accept === undefined) return 'json';
  let sawJson = false;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';').map((s) => s.trim());
    const p = new Map(params.map((kv) => kv.split('=').map((s) => s.trim()) as [string, string]));
    if (type === JSON_TYPE && p.get('as') === 'Table' && p.get('g') === 'meta.k8s.io') return 'table';
    if (
      type === JSON_TYPE &&
      (p.get('as') === 'PartialObjectMetadata' || p.get('as') === 'PartialObjectMetadataList')
    )
      return 'metadata';
    if (type === JSON_TYPE || type === '*/*' || type === 'application/*' || type === 'application/json-seq')
      sawJson = true;
    if (type === JSON_TYPE && p.has('as')) continue;
  }
  if (!sawJson && accept.trim() !== '' && !accept.includes('protobuf')) return 'json';
  if (!sawJson && accept.includes('protobuf')) {
    throw apiErrors.notAcceptable(
      'only the following media types are accepted: application/json, application/yaml',
    );
  }
  return 'json';
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) {
      reject(apiErrors.tooLarge(limit));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(apiErrors.tooLarge(limit));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseJsonBody(buf: Buffer): unknown {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw apiErrors.badRequest(`the request body is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Decode an object body of any accepted media type into a JSON value. The YAML and protobuf decoders are
 * loaded on first use: most clients send JSON, and the agent's read-only local API never decodes a body.
 */
async function decodeObjectBody(buf: Buffer, contentType: string | undefined): Promise<unknown> {
  const type = mediaType(contentType);
  if (type === '' || type === JSON_TYPE) return parseJsonBody(buf);
  if (type === 'application/yaml') {
    const { parse } = await import('yaml');
    try {
      return parse(buf.toString('utf8'));
    } catch (err) {
      throw apiErrors.badRequest(`the request body is not valid YAML: ${(err as Error).message}`);
    }
  }
  if (type === 'application/vnd.kubernetes.protobuf')
    return (await import('./protobuf/decode.ts')).decodeProtobufObject(buf);
  throw apiErrors.unsupportedMediaType(type, BODY_TYPES);
}

function intParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0)
    throw apiErrors.badRequest(`invalid value for ${name}: ${JSON.stringify(v)}`);
  return n;
}

function boolParam(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v === 'true' || v === '1';
}

function writeOptions(q: URLSearchParams, warnings: string[]): WriteOptions {
  const dryRun = q.getAll('dryRun');
  for (const d of dryRun)
    if (d !== 'All') throw apiErrors.badRequest(`unsupported dry run mode: ${JSON.stringify(d)}`);
  const fv = q.get('fieldValidation');
  if (fv !== null && fv !== 'Strict' && fv !== 'Warn' && fv !== 'Ignore') {
    throw apiErrors.badRequest(
      `fieldValidation must be one of Strict, Warn, Ignore, got ${JSON.stringify(fv)}`,
    );
  }
  return { dryRun: dryRun.length > 0, ...(fv === null ? {} : { fieldValidation: fv }), warnings };
}

/** The Kubernetes REST API over the object storage: routing, negotiation, auth, watch streaming. */
export class ApiHandler {
  readonly #o: HandlerOptions;
  readonly #storage: ObjectStorage;
  readonly #maxBody: number;
  #inflightWatches = new Set<AbortController>();
  readonly #execServer = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: 16 * 1024 * 1024,
    handleProtocols: (offered) => EXEC_PROTOCOLS.find((p) => offered.has(p)) ?? false,
  });
  #discoveryCache = new Map<string, { generation: number; text: string }>();

  constructor(options: HandlerOptions) {
    this.#o = options;
    this.#storage = options.storage;
    this.#maxBody = options.maxBodyBytes ?? 3 * 1024 * 1024;
  }

  /** Serve one request; never throws (every failure becomes a Status). */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = process.hrtime.bigint();
    const labels = { verb: 'unknown', resource: '', code: '0' };
    res.on('finish', () => {
      labels.code = String(res.statusCode);
      if (labels.verb !== 'watch')
        this.#o.metrics?.observeRequest(labels, Number(process.hrtime.bigint() - started) / 1e9);
    });
    this.#serve(req, res, labels).catch((err: unknown) => {
      const apiErr = toApiError(err);
      if (apiErr.httpCode >= 500)
        this.#o.logger.error({ err, url: req.url, method: req.method }, 'request failed');
      sendError(res, apiErr);
    });
  };

  /**
   * Takes a WebSocket upgrade for pods/NAME/exec (kubectl exec and cp); returns false for any other path.
   * Refusals before the upgrade are HTTP answers with a Status body, which kubectl prints.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(req.url ?? '/', 'http://kedge.invalid');
    const parsed = this.#parse(url.pathname);
    if (parsed.kind !== 'resource') return false;
    const p = parsed.path;
    if (p.rt.group !== '' || p.rt.plural !== 'pods' || p.subresource !== 'exec' || p.name === undefined)
      return false;
    this.#upgradeExec(req, socket, head, p, url).catch((err: unknown) => {
      const apiErr = toApiError(err);
      if (apiErr.httpCode >= 500) this.#o.logger.error({ err, url: req.url }, 'exec request failed');
      const body = JSON.stringify(apiErr.toStatus());
      socket.end(
        `HTTP/1.1 ${apiErr.httpCode} ${STATUS_CODES[apiErr.httpCode] ?? 'Error'}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
    return true;
  }

  async #upgradeExec(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    p: ResourcePath,
    url: URL,
  ): Promise<void> {
    const user = await this.#o.authenticate(req);
    if (user === undefined) throw apiErrors.unauthorized();
    // Opening an exec session is a create on pods/exec, whether it came as GET (websockets) or POST.
    await this.#authorize(user, {
      verb: 'create',
      path: url.pathname,
      resourceRequest: true,
      group: '',
      version: 'v1',
      resource: 'pods',
      subresource: 'exec',
      namespace: p.namespace,
      name: p.name,
    });
    const pod = await this.#storage.get(p.rt, p.namespace, p.name ?? '');
    const options = execOptions(url.searchParams, pod);
    const target = targetOf(pod);
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      throw new ApiError(
        400,
        'BadRequest',
        `kedge serves exec over WebSocket (${EXEC_PROTOCOLS.join(', ')}), not ${req.headers.upgrade ?? 'plain HTTP'}`,
      );
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    if (!EXEC_PROTOCOLS.some((proto) => offered.includes(proto))) {
      throw new ApiError(
        400,
        'BadRequest',
        `exec needs one of the WebSocket subprotocols ${EXEC_PROTOCOLS.join(', ')}; offered: ${offered.join(', ') || 'none'}`,
      );
    }
    const streamer = this.#o.podStreamer?.();
    if (streamer === undefined)
      throw new ApiError(503, 'ServiceUnavailable', 'this server has no tunnel to nodes');
    this.#o.metrics?.observeRequest({ verb: 'create', resource: 'pods/exec', code: '101' }, 0);
    this.#execServer.handleUpgrade(req, socket, head, (ws) => {
      void runExecSession(
        ws,
        streamer,
        target,
        options,
        this.#o.logger.child({ exec: `${target.namespace}/${target.name}` }),
      );
    });
  }

  /** End every running watch (on shutdown). */
  closeWatches(): void {
    for (const c of this.#inflightWatches) c.abort();
  }

  async #serve(
    req: IncomingMessage,
    res: ServerResponse,
    labels: { verb: string; resource: string },
  ): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://kedge.invalid');
    const path =
      url.pathname.length > 1 && url.pathname.endsWith('/') ? url.pathname.slice(0, -1) : url.pathname;
    const method = req.method ?? 'GET';
    const user = await this.#o.authenticate(req);
    if (path === '/version' && method === 'GET') {
      labels.verb = 'get';
      send(res, 200, VERSION_INFO);
      return;
    }
    if (user === undefined && !PUBLIC_PATHS.has(path)) throw apiErrors.unauthorized();
    const parsed = this.#parse(path);
    if (parsed.kind === 'other') {
      labels.verb = method.toLowerCase();
      if (user !== undefined && !PUBLIC_PATHS.has(path)) {
        await this.#authorize(user, {
          verb: method === 'GET' ? 'get' : method.toLowerCase(),
          path,
          resourceRequest: false,
        });
      }
      if (this.#o.extraRoutes !== undefined && (await this.#o.extraRoutes(req, res, path, user))) return;
      throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    }
    if (user === undefined) throw apiErrors.unauthorized();
    if (parsed.kind === 'discovery') {
      labels.verb = 'get';
      if (method !== 'GET') throw apiErrors.methodNotAllowed(`${method} is not supported on ${path}`);
      await this.#authorize(user, { verb: 'get', path, resourceRequest: false });
      this.#discovery(req, res, parsed);
      return;
    }
    const p = parsed.path;
    labels.resource = p.subresource === undefined ? p.rt.plural : `${p.rt.plural}/${p.subresource}`;
    const verb = this.#verbOf(method, p, url.searchParams);
    labels.verb = verb;
    await this.#authorize(user, {
      verb,
      path,
      resourceRequest: true,
      group: p.group,
      version: p.version,
      resource: p.rt.plural,
      subresource: p.subresource ?? '',
      namespace: p.namespace,
      name: p.name ?? (verb === 'create' && p.rt.virtual ? undefined : undefined),
    });
    await this.#resource(req, res, method, verb, p, url.searchParams, user);
  }

  async #authorize(
    user: UserInfo,
    attrs: Partial<Omit<RequestAttributes, 'user'>> &
      Pick<RequestAttributes, 'verb' | 'path' | 'resourceRequest'>,
  ): Promise<void> {
    const full: RequestAttributes = {
      user,
      group: '',
      version: '',
      resource: '',
      subresource: '',
      namespace: undefined,
      name: undefined,
      ...attrs,
    };
    const decision = await this.#o.authorize(full);
    if (decision?.allowed === true) return;
    if (!full.resourceRequest)
      throw new ApiError(
        403,
        'Forbidden',
        `forbidden: User "${user.name}" cannot ${full.verb} path "${full.path}"`,
      );
    const resource = full.subresource === '' ? full.resource : `${full.resource}/${full.subresource}`;
    throw apiErrors.forbidden(
      user.name,
      full.verb,
      resource,
      full.group,
      full.namespace,
      decision?.reason ?? '',
    );
  }

  #verbOf(method: string, p: ResourcePath, q: URLSearchParams): string {
    switch (method) {
      case 'GET':
        if (p.watch || boolParam(q, 'watch')) return 'watch';
        return p.name === undefined ? 'list' : 'get';
      case 'POST':
        return 'create';
      case 'PUT':
        return 'update';
      case 'PATCH':
        return 'patch';
      case 'DELETE':
        return p.name === undefined ? 'deletecollection' : 'delete';
      default:
        throw apiErrors.methodNotAllowed(`the server does not allow this method on the requested resource`);
    }
  }

  #parse(path: string): Parsed {
    const segs = path
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === 'api') {
      if (segs.length === 1) return { kind: 'discovery', scope: 'api' };
      group = '';
      version = segs[1] ?? '';
      rest = segs.slice(2);
      if (version !== 'v1') return { kind: 'other' };
    } else if (segs[0] === 'apis') {
      if (segs.length === 1) return { kind: 'discovery', scope: 'apis' };
      group = segs[1] ?? '';
      if (segs.length === 2) return { kind: 'discovery', scope: 'apis', group };
      version = segs[2] ?? '';
      rest = segs.slice(3);
    } else {
      return { kind: 'other' };
    }
    if (rest.length === 0)
      return { kind: 'discovery', scope: segs[0] === 'api' ? 'api' : 'apis', group, version };
    let watch = false;
    if (rest[0] === 'watch') {
      watch = true;
      rest = rest.slice(1);
    }
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const inner = this.#storage.registry.lookup(group, version, rest[2] ?? '');
      if (inner?.namespaced) {
        namespace = rest[1];
        rest = rest.slice(2);
      }
    }
    const rt = this.#storage.registry.lookup(group, version, rest[0] ?? '');
    if (rt === undefined || rest.length > 3) return { kind: 'other' };
    if (rt.namespaced && namespace === undefined && rest.length > 1) return { kind: 'other' };
    return {
      kind: 'resource',
      path: { group, version, rt, namespace, name: rest[1], subresource: rest[2], watch },
    };
  }

  #discovery(req: IncomingMessage, res: ServerResponse, d: Extract<Parsed, { kind: 'discovery' }>): void {
    const resources = this.#storage.registry.all();
    const accept = req.headers.accept;
    if (d.group === undefined) {
      const format = negotiateDiscovery(accept);
      if (format !== 'legacy') {
        const key = `${d.scope}/${format}`;
        const gen = this.#storage.registry.generation;
        let cached = this.#discoveryCache.get(key);
        if (cached === undefined || cached.generation !== gen) {
          cached = { generation: gen, text: JSON.stringify(aggregatedDiscovery(resources, d.scope, format)) };
          this.#discoveryCache.set(key, cached);
        }
        res.writeHead(200, {
          'Content-Type': aggregatedContentType(format),
          Vary: 'Accept',
          'Content-Length': Buffer.byteLength(cached.text),
        });
        res.end(cached.text);
        return;
      }
      if (d.scope === 'api')
        send(res, 200, apiVersions(this.#o.serverAddress ?? req.headers.host ?? '127.0.0.1:6443'));
      else send(res, 200, apiGroupList(resources));
      return;
    }
    if (d.version === undefined) {
      const g = apiGroup(resources, d.group);
      if (g === undefined)
        throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...g });
      return;
    }
    const list = apiResourceList(resources, d.group, d.version);
    if (list === undefined)
      throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    send(res, 200, list);
  }

  async #resource(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    verb: string,
    p: ResourcePath,
    q: URLSearchParams,
    user: UserInfo,
  ): Promise<void> {
    const { rt, namespace, name, subresource } = p;
    const storage = this.#storage;
    const warnings: string[] = [];
    const reply = (code: number, obj: KubeObject): void => {
      if (warnings.length > 0)
        res.setHeader(
          'Warning',
          warnings.map((w) => `299 - ${JSON.stringify(w)}`),
        );
      this.#sendObject(req, res, code, rt, obj);
    };
    if (rt.virtual) {
      if (verb !== 'create') throw apiErrors.methodNotAllowed(`${verb} is not supported on ${rt.plural}`);
      const body = await decodeObjectBody(await readBody(req, this.#maxBody), req.headers['content-type']);
      reply(201, await this.#virtualCreate(rt, body, user));
      return;
    }
    if (subresource !== undefined) {
      await this.#subresource(req, res, method, p, q, warnings, reply);
      return;
    }
    switch (verb) {
      case 'get': {
        reply(200, await storage.get(rt, namespace, name ?? ''));
        return;
      }
      case 'list': {
        const list = await listObjects(storage, rt, {
          namespace,
          filter: makeFilter(rt, q.get('labelSelector') ?? undefined, q.get('fieldSelector') ?? undefined),
          ...optional('limit', intParam(q, 'limit')),
          ...optional('continueToken', q.get('continue') ?? undefined),
          ...optional('resourceVersion', q.get('resourceVersion') ?? undefined),
          ...optional('resourceVersionMatch', q.get('resourceVersionMatch') ?? undefined),
        });
        const output = negotiateOutput(req.headers.accept);
        if (output === 'table') {
          send(
            res,
            200,
            buildTable(rt, list.items, {
              includeObject: includeObjectParam(q),
              resourceVersion: list.resourceVersion,
              ...optional('continue', list.continueToken),
              ...optional('remainingItemCount', list.remainingItemCount),
              ...optional('printerColumns', this.#printerColumns(rt)),
            }),
          );
          return;
        }
        const metadataOnly = output === 'metadata';
        send(res, 200, {
          kind: metadataOnly ? 'PartialObjectMetadataList' : rt.listKind,
          apiVersion: metadataOnly ? 'meta.k8s.io/v1' : apiVersionOf(rt),
          metadata: {
            resourceVersion: list.resourceVersion,
            ...optional('continue', list.continueToken),
            ...optional('remainingItemCount', list.remainingItemCount),
          },
          items: metadataOnly ? list.items.map(partialMetadata) : list.items,
        });
        return;
      }
      case 'watch': {
        await this.#watch(req, res, p, q);
        return;
      }
      case 'create': {
        if (name !== undefined)
          throw apiErrors.methodNotAllowed('POST is not allowed on a named object; use PUT to update');
        const body = await decodeObjectBody(await readBody(req, this.#maxBody), req.headers['content-type']);
        reply(201, await storage.create(rt, namespace, body, writeOptions(q, warnings)));
        return;
      }
      case 'update': {
        if (name === undefined) throw apiErrors.methodNotAllowed('PUT requires the name of the object');
        const body = await decodeObjectBody(await readBody(req, this.#maxBody), req.headers['content-type']);
        reply(200, await storage.update(rt, namespace, name, body, undefined, writeOptions(q, warnings)));
        return;
      }
      case 'patch': {
        if (name === undefined) throw apiErrors.methodNotAllowed('PATCH requires the name of the object');
        const patched = await this.#patch(req, p, q, warnings, undefined);
        reply(200, patched);
        return;
      }
      case 'delete': {
        const options = await this.#deleteOptions(req, q);
        reply(200, await storage.delete(rt, namespace, name ?? '', options));
        return;
      }
      case 'deletecollection': {
        const options = await this.#deleteOptions(req, q);
        const list = await listObjects(storage, rt, {
          namespace,
          filter: makeFilter(rt, q.get('labelSelector') ?? undefined, q.get('fieldSelector') ?? undefined),
        });
        const deleted: KubeObject[] = [];
        for (const item of list.items) {
          try {
            deleted.push(
              await storage.delete(rt, item.metadata.namespace, item.metadata.name ?? '', options),
            );
          } catch (err) {
            if (!(err instanceof ApiError && err.httpCode === 404)) throw err;
          }
        }
        send(res, 200, {
          kind: rt.listKind,
          apiVersion: apiVersionOf(rt),
          metadata: { resourceVersion: String(storage.store.currentRevision()) },
          items: deleted,
        });
        return;
      }
      default:
        throw apiErrors.methodNotAllowed(`${verb} is not supported`);
    }
  }

  async #subresource(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    p: ResourcePath,
    q: URLSearchParams,
    warnings: string[],
    reply: (code: number, obj: KubeObject) => void,
  ): Promise<void> {
    const { rt, namespace, subresource } = p;
    const name = p.name ?? '';
    const storage = this.#storage;
    if (subresource === 'status' && rt.subresources.status) {
      if (method === 'GET') return reply(200, await storage.get(rt, namespace, name));
      if (method === 'PUT') {
        const body = await decodeObjectBody(await readBody(req, this.#maxBody), req.headers['content-type']);
        return reply(
          200,
          await storage.update(rt, namespace, name, body, 'status', writeOptions(q, warnings)),
        );
      }
      if (method === 'PATCH') return reply(200, await this.#patch(req, p, q, warnings, 'status'));
    } else if (subresource === 'scale' && rt.subresources.scale !== undefined) {
      const scaleOf = (o: KubeObject): KubeObject => toScale(rt, o);
      if (method === 'GET') return send(res, 200, scaleOf(await storage.get(rt, namespace, name)));
      if (method === 'PUT' || method === 'PATCH') {
        const buf = await readBody(req, this.#maxBody);
        const contentType = req.headers['content-type'];
        const putBody = method === 'PUT' ? await decodeObjectBody(buf, contentType) : undefined;
        const updated = await storage.guaranteedUpdate(
          rt,
          namespace,
          name,
          (current) => {
            const scale = scaleOf(current);
            const next =
              method === 'PUT'
                ? putBody
                : this.#applyPatch(contentType, scale, parseJsonBody(buf), 'autoscaling', 'Scale');
            const replicas =
              isPlainObject(next) && isPlainObject(next['spec']) ? next['spec']['replicas'] : undefined;
            if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
              throw apiErrors.invalid({ group: 'autoscaling', kind: 'Scale' }, name, [
                {
                  type: 'FieldValueInvalid',
                  field: 'spec.replicas',
                  value: replicas,
                  detail: 'must be greater than or equal to 0',
                },
              ]);
            }
            const rv =
              isPlainObject(next) && isPlainObject(next['metadata'])
                ? next['metadata']['resourceVersion']
                : undefined;
            if (typeof rv === 'string' && rv !== '' && rv !== current.metadata.resourceVersion)
              throw apiErrors.staleUpdate(rt, name);
            const spec = isPlainObject(current['spec']) ? current['spec'] : {};
            spec['replicas'] = replicas;
            current['spec'] = spec;
            return current;
          },
          undefined,
          writeOptions(q, warnings),
        );
        return send(res, 200, scaleOf(updated));
      }
    } else if (subresource === 'binding' && rt.subresources.binding && method === 'POST') {
      const body = await decodeObjectBody(await readBody(req, this.#maxBody), req.headers['content-type']);
      await storage.bind(rt, namespace, name, body, writeOptions(q, warnings));
      return send(res, 201, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Success',
        code: 201,
      } satisfies Status);
    } else if (subresource === 'log' && rt.group === '' && rt.plural === 'pods' && method === 'GET') {
      const pod = await storage.get(rt, namespace, name);
      const options = logOptions(q, pod);
      const target = targetOf(pod);
      const streamer = this.#o.podStreamer?.();
      if (streamer === undefined)
        throw new ApiError(503, 'ServiceUnavailable', 'this server has no tunnel to nodes');
      return serveLogs(res, streamer, target, options);
    } else if (subresource === 'exec' && rt.group === '' && rt.plural === 'pods') {
      throw new ApiError(
        400,
        'BadRequest',
        `kedge serves exec over WebSocket (${EXEC_PROTOCOLS.join(', ')}): upgrade the connection`,
      );
    } else if (subresource === 'finalize' && rt.group === '' && rt.kind === 'Namespace' && method === 'PUT') {
      const body = await decodeObjectBody(await readBody(req, this.#maxBody), req.headers['content-type']);
      return reply(200, await storage.finalizeNamespace(rt, name, body, writeOptions(q, warnings)));
    }
    throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
  }

  #applyPatch(
    contentType: string | undefined,
    current: unknown,
    patch: unknown,
    group: string,
    kind: string,
    custom = false,
  ): unknown {
    const type = mediaType(contentType);
    switch (type) {
      case 'application/json-patch+json':
        return applyJsonPatch(current, patch);
      case 'application/merge-patch+json':
        return applyMergePatch(current, patch);
      case 'application/strategic-merge-patch+json':
        if (custom)
          throw apiErrors.unsupportedMediaType(type, [
            'application/json-patch+json',
            'application/merge-patch+json',
            'application/apply-patch+yaml',
          ]);
        return applyStrategicMergePatch(current, patch, patchMetaFor(group, kind));
      default:
        throw apiErrors.unsupportedMediaType(type, [...PATCH_TYPES, 'application/apply-patch+yaml']);
    }
  }

  async #patch(
    req: IncomingMessage,
    p: ResourcePath,
    q: URLSearchParams,
    warnings: string[],
    subresource: 'status' | undefined,
  ): Promise<KubeObject> {
    const { rt, namespace } = p;
    const name = p.name ?? '';
    const type = mediaType(req.headers['content-type']);
    if (type === 'application/apply-patch+yaml') {
      throw apiErrors.unsupportedMediaType(type, PATCH_TYPES);
    }
    if (!(PATCH_TYPES as readonly string[]).includes(type))
      throw apiErrors.unsupportedMediaType(type, PATCH_TYPES);
    if (type === 'application/strategic-merge-patch+json' && rt.custom) {
      throw apiErrors.unsupportedMediaType(type, [
        'application/json-patch+json',
        'application/merge-patch+json',
        'application/apply-patch+yaml',
      ]);
    }
    const patch = parseJsonBody(await readBody(req, this.#maxBody));
    const updated = await this.#storage.guaranteedUpdate(
      rt,
      namespace,
      name,
      (current) => {
        const next = this.#applyPatch(
          req.headers['content-type'],
          current,
          patch,
          rt.group,
          rt.kind,
          rt.custom,
        );
        if (!isPlainObject(next)) throw apiErrors.badRequest('the patch did not produce an object');
        const meta = isPlainObject(next['metadata']) ? next['metadata'] : {};
        const rv = meta['resourceVersion'];
        if (rv !== undefined && rv !== null && rv !== '' && rv !== current.metadata.resourceVersion) {
          throw apiErrors.staleUpdate(rt, name);
        }
        if (meta['name'] !== undefined && meta['name'] !== name) {
          throw apiErrors.badRequest(
            `the name of the object (${String(meta['name'])}) does not match the name on the URL (${name})`,
          );
        }
        return next as KubeObject;
      },
      subresource,
      writeOptions(q, warnings),
    );
    return updated;
  }

  async #deleteOptions(req: IncomingMessage, q: URLSearchParams): Promise<DeleteOptions> {
    const buf = await readBody(req, this.#maxBody);
    let body: Record<string, unknown> = {};
    if (buf.length > 0) {
      const decoded = await decodeObjectBody(buf, req.headers['content-type'] ?? JSON_TYPE);
      if (!isPlainObject(decoded)) throw apiErrors.badRequest('DeleteOptions must be an object');
      body = decoded;
    }
    const policy = (q.get('propagationPolicy') ?? body['propagationPolicy'] ?? undefined) as
      | string
      | undefined;
    const orphan = q.get('orphanDependents') ?? body['orphanDependents'];
    let propagationPolicy: DeleteOptions['propagationPolicy'];
    if (policy !== undefined && policy !== null) {
      if (policy !== 'Orphan' && policy !== 'Background' && policy !== 'Foreground') {
        throw apiErrors.badRequest(
          `propagationPolicy must be one of Orphan, Background, Foreground, got ${JSON.stringify(policy)}`,
        );
      }
      propagationPolicy = policy;
    } else if (orphan === true || orphan === 'true') propagationPolicy = 'Orphan';
    const pre = isPlainObject(body['preconditions']) ? body['preconditions'] : {};
    const dryRun = [...q.getAll('dryRun'), ...(Array.isArray(body['dryRun']) ? body['dryRun'] : [])];
    const grace = q.get('gracePeriodSeconds') ?? body['gracePeriodSeconds'];
    return {
      dryRun: dryRun.includes('All'),
      ...optional('propagationPolicy', propagationPolicy),
      preconditions: {
        ...optional('uid', typeof pre['uid'] === 'string' ? pre['uid'] : undefined),
        ...optional(
          'resourceVersion',
          typeof pre['resourceVersion'] === 'string' ? pre['resourceVersion'] : undefined,
        ),
      },
      ...optional('gracePeriodSeconds', grace === undefined || grace === null ? undefined : Number(grace)),
    };
  }

  #printerColumns(rt: ResourceType): CustomPrinterColumn[] | undefined {
    const info = this.#storage.registry.customInfo(rt);
    if (info === undefined) return undefined;
    return info.printerColumns as CustomPrinterColumn[];
  }

  #sendObject(
    req: IncomingMessage,
    res: ServerResponse,
    code: number,
    rt: ResourceType,
    obj: KubeObject,
  ): void {
    const output = negotiateOutput(req.headers.accept);
    if (output === 'table' && obj['kind'] === rt.kind) {
      const q = new URL(req.url ?? '/', 'http://x').searchParams;
      send(
        res,
        code,
        buildTable(rt, [obj], {
          includeObject: includeObjectParam(q),
          ...optional('resourceVersion', obj.metadata.resourceVersion),
          ...optional('printerColumns', this.#printerColumns(rt)),
        }),
      );
      return;
    }
    if (output === 'metadata') {
      send(res, code, partialMetadata(obj));
      return;
    }
    send(res, code, obj);
  }

  async #watch(
    req: IncomingMessage,
    res: ServerResponse,
    p: ResourcePath,
    q: URLSearchParams,
  ): Promise<void> {
    const { rt } = p;
    const filter = makeFilter(
      rt,
      q.get('labelSelector') ?? undefined,
      [q.get('fieldSelector') ?? '', p.name === undefined ? '' : `metadata.name=${p.name}`]
        .filter((s) => s !== '')
        .join(','),
    );
    const output = negotiateOutput(req.headers.accept);
    const includeObject = includeObjectParam(q);
    const timeout = intParam(q, 'timeoutSeconds');
    const allowBookmarks = boolParam(q, 'allowWatchBookmarks');
    const controller = new AbortController();
    this.#inflightWatches.add(controller);
    const progress: WatchProgress = { revision: 0 };
    const timers: NodeJS.Timeout[] = [];
    const stop = (): void => controller.abort();
    res.on('close', stop);
    if (timeout !== undefined && timeout > 0) timers.push(setTimeout(stop, timeout * 1000));
    this.#o.metrics?.watchStarted(rt.plural);
    let headerSent = false;
    let first = true;
    const writeEvent = async (event: ApiWatchEvent): Promise<void> => {
      if (!headerSent) {
        res.writeHead(200, {
          'Content-Type': JSON_TYPE,
          'Transfer-Encoding': 'chunked',
          'Cache-Control': 'no-cache, private',
        });
        headerSent = true;
      }
      let object: unknown = event.object;
      if (event.type !== 'ERROR' && event.type !== 'BOOKMARK') {
        if (output === 'table') {
          const table = buildTable(rt, [event.object], {
            includeObject,
            ...optional('resourceVersion', event.object.metadata.resourceVersion),
            ...optional('printerColumns', this.#printerColumns(rt)),
          });
          if (!first) table.columnDefinitions = [];
          first = false;
          object = table;
        } else if (output === 'metadata') object = partialMetadata(event.object);
      }
      const ok = res.write(
        object === event.object ? watchLine(event) : `${JSON.stringify({ type: event.type, object })}\n`,
      );
      if (!ok && !controller.signal.aborted) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            res.off('drain', done);
            controller.signal.removeEventListener('abort', done);
            resolve();
          };
          res.on('drain', done);
          controller.signal.addEventListener('abort', done, { once: true });
        });
      }
    };
    if (allowBookmarks) {
      const interval = this.#o.bookmarkIntervalMs ?? 60_000;
      const timer = setInterval(() => {
        if (progress.revision > 0 && !controller.signal.aborted)
          void writeEvent(bookmark(rt, progress.revision));
      }, interval);
      timers.push(timer);
    }
    res.writeHead(200, {
      'Content-Type': JSON_TYPE,
      'Transfer-Encoding': 'chunked',
      'Cache-Control': 'no-cache, private',
    });
    res.flushHeaders();
    headerSent = true;
    try {
      const events = watchObjects(
        this.#storage,
        rt,
        {
          namespace: p.namespace,
          filter,
          resourceVersion: q.get('resourceVersion') ?? '',
          sendInitialEvents: boolParam(q, 'sendInitialEvents'),
        },
        progress,
        controller.signal,
      );
      for await (const event of events) {
        if (controller.signal.aborted) break;
        await writeEvent(event);
      }
    } finally {
      for (const t of timers) clearTimeout(t);
      res.off('close', stop);
      this.#inflightWatches.delete(controller);
      this.#o.metrics?.watchEnded(rt.plural);
      if (!headerSent) {
        res.writeHead(200, { 'Content-Type': JSON_TYPE, 'Transfer-Encoding': 'chunked' });
      }
      res.end();
    }
  }

  async #virtualCreate(rt: ResourceType, body: unknown, user: UserInfo): Promise<KubeObject> {
    if (rt.kind !== 'SelfSubjectAccessReview' || !isPlainObject(body))
      throw apiErrors.badRequest(`cannot create ${rt.plural}`);
    const spec = isPlainObject(body['spec']) ? body['spec'] : {};
    const ra = isPlainObject(spec['resourceAttributes']) ? spec['resourceAttributes'] : undefined;
    const nra = isPlainObject(spec['nonResourceAttributes']) ? spec['nonResourceAttributes'] : undefined;
    const str = (o: Record<string, unknown> | undefined, k: string): string =>
      typeof o?.[k] === 'string' ? (o[k] as string) : '';
    const attrs: RequestAttributes =
      ra !== undefined
        ? {
            user,
            verb: str(ra, 'verb'),
            resourceRequest: true,
            group: str(ra, 'group'),
            version: str(ra, 'version'),
            resource: str(ra, 'resource'),
            subresource: str(ra, 'subresource'),
            namespace: str(ra, 'namespace') === '' ? undefined : str(ra, 'namespace'),
            name: str(ra, 'name') === '' ? undefined : str(ra, 'name'),
            path: '',
          }
        : {
            user,
            verb: str(nra, 'verb'),
            resourceRequest: false,
            group: '',
            version: '',
            resource: '',
            subresource: '',
            namespace: undefined,
            name: undefined,
            path: str(nra, 'path'),
          };
    const decision = await this.#o.authorize(attrs);
    return {
      apiVersion: apiVersionOf(rt),
      kind: rt.kind,
      metadata: { creationTimestamp: null as unknown as string },
      spec,
      status: { allowed: decision?.allowed === true, ...optional('reason', decision?.reason) },
    };
  }
}

const encodedEvents = new WeakMap<object, Map<string, string>>();

/**
 * The JSON line of a watch event. Objects of store events are shared by every watcher, so the line is
 * encoded once per event and type, not once per watcher (1,000 watchers: one JSON.stringify, not 1,000).
 */
function watchLine(event: ApiWatchEvent): string {
  let byType = encodedEvents.get(event.object);
  if (byType === undefined) {
    byType = new Map();
    encodedEvents.set(event.object, byType);
  }
  let line = byType.get(event.type);
  if (line === undefined) {
    line = `${JSON.stringify({ type: event.type, object: event.object })}\n`;
    byType.set(event.type, line);
  }
  return line;
}

function includeObjectParam(q: URLSearchParams): 'None' | 'Metadata' | 'Object' {
  const v = q.get('includeObject');
  return v === 'None' || v === 'Object' ? v : 'Metadata';
}

function partialMetadata(obj: KubeObject): KubeObject {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj.metadata };
}

function readPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const seg of path.split('.').filter((s) => s !== '')) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[seg];
  }
  return cur;
}

/** The autoscaling/v1 Scale view of an object with a scale subresource. */
function toScale(rt: ResourceType, obj: KubeObject): KubeObject {
  const scale = rt.subresources.scale;
  const specReplicas = readPath(obj, scale?.specReplicasPath ?? '.spec.replicas');
  const statusReplicas = readPath(obj, scale?.statusReplicasPath ?? '.status.replicas');
  let selector = scale?.labelSelectorPath === undefined ? undefined : readPath(obj, scale.labelSelectorPath);
  if (selector === undefined && !rt.custom) {
    const sel = readPath(obj, '.spec.selector');
    if (isPlainObject(sel) && isPlainObject(sel['matchLabels'])) {
      selector = Object.entries(sel['matchLabels'])
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(',');
    }
  }
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: {
      name: obj.metadata.name ?? '',
      ...optional('namespace', obj.metadata.namespace),
      ...optional('uid', obj.metadata.uid),
      ...optional('resourceVersion', obj.metadata.resourceVersion),
      ...optional('creationTimestamp', obj.metadata.creationTimestamp),
    },
    spec: { replicas: typeof specReplicas === 'number' ? specReplicas : 0 },
    status: {
      replicas: typeof statusReplicas === 'number' ? statusReplicas : 0,
      ...optional('selector', typeof selector === 'string' ? selector : undefined),
    },
  };
}

/** `{ [key]: value }` when value is defined, else `{}`: for exactOptionalPropertyTypes-friendly spreads. */
export function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
