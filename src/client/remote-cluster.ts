import type { IncomingMessage } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeList, KubeObject, Status } from '../api/meta.ts';
import { ApiError } from '../api/status-error.ts';
import type { ResolvedKubeconfig } from '../lib/kubeconfig.ts';
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
} from './types.ts';

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
};

/**
 * The Cluster interface over HTTPS: any Kubernetes API (kedge's or another), authenticated with a
 * kubeconfig's client certificate or bearer token. JSON only; watches are read line by line.
 */
export class RemoteCluster implements Cluster {
  readonly #server: URL;
  readonly #agent: Agent;
  /** Watches hold their connection for good: they get their own pool so they never starve requests. */
  readonly #watchAgent: Agent;
  readonly #token: string | undefined;
  readonly #namespaced = new Map<string, boolean>();

  constructor(config: Pick<ResolvedKubeconfig, 'cluster' | 'user'>) {
    this.#server = new URL(config.cluster.server);
    const tls = {
      ...(config.cluster.caPem === undefined ? {} : { ca: config.cluster.caPem }),
      ...(config.user.clientCertPem === undefined ? {} : { cert: config.user.clientCertPem }),
      ...(config.user.clientKeyPem === undefined ? {} : { key: config.user.clientKeyPem }),
      rejectUnauthorized: !config.cluster.insecureSkipTlsVerify,
      ...(config.cluster.tlsServerName === undefined ? {} : { servername: config.cluster.tlsServerName }),
    };
    this.#agent = new Agent({ keepAlive: true, maxSockets: 64, ...tls });
    this.#watchAgent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY, ...tls });
    this.#token = config.user.token;
  }

  close(): void {
    this.#agent.destroy();
    this.#watchAgent.destroy();
  }

  async #isNamespaced(ref: ResourceRef): Promise<boolean> {
    const id = `${ref.group}/${ref.version}/${ref.resource}`;
    const known = this.#namespaced.get(id);
    if (known !== undefined) return known;
    const path = ref.group === '' ? `/api/${ref.version}` : `/apis/${ref.group}/${ref.version}`;
    const list = (await this.#json('GET', path)) as {
      resources?: Array<{ name: string; namespaced: boolean }>;
    };
    for (const r of list.resources ?? []) {
      if (!r.name.includes('/')) this.#namespaced.set(`${ref.group}/${ref.version}/${r.name}`, r.namespaced);
    }
    const found = this.#namespaced.get(id);
    if (found === undefined) throw new ApiError(404, 'NotFound', `the server does not serve ${id}`);
    return found;
  }

  async #path(ref: ResourceRef, namespace: string | undefined, name?: string, sub?: string): Promise<string> {
    const base = ref.group === '' ? `/api/${ref.version}` : `/apis/${ref.group}/${ref.version}`;
    const ns =
      (await this.#isNamespaced(ref)) && namespace !== undefined
        ? `/namespaces/${encodeURIComponent(namespace)}`
        : '';
    const n = name === undefined ? '' : `/${encodeURIComponent(name)}`;
    const s = sub === undefined ? '' : `/${sub}`;
    return `${base}${ns}/${ref.resource}${n}${s}`;
  }

  #send(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
    signal?: AbortSignal,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = httpsRequest(
        {
          protocol: 'https:',
          hostname: this.#server.hostname.replace(/^\[|\]$/g, ''),
          port: this.#server.port || 443,
          path,
          method,
          agent: method === 'GET' && path.includes('watch=true') ? this.#watchAgent : this.#agent,
          headers: {
            Accept: 'application/json',
            ...(payload === undefined
              ? {}
              : { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(payload) }),
            ...(this.#token === undefined ? {} : { Authorization: `Bearer ${this.#token}` }),
          },
          ...(signal === undefined ? {} : { signal }),
        },
        resolve,
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  async #json(method: string, path: string, body?: unknown, contentType?: string): Promise<unknown> {
    const res = await this.#send(method, path, body, contentType);
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let parsed: unknown;
    try {
      parsed = text === '' ? {} : JSON.parse(text);
    } catch {
      throw new ApiError(
        res.statusCode ?? 500,
        'InternalError',
        `the server sent a body that is not JSON (HTTP ${res.statusCode})`,
      );
    }
    if ((res.statusCode ?? 500) >= 400) throw ApiError.fromStatus(parsed as Partial<Status>, res.statusCode);
    return parsed;
  }

  async get<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
  ): Promise<T> {
    return (await this.#json('GET', await this.#path(ref, namespace, name))) as T;
  }

  async list<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    options: ListOptions = {},
  ): Promise<KubeList<T>> {
    const q = query({
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
      limit: options.limit === undefined ? undefined : String(options.limit),
      continue: options.continue,
      resourceVersion: options.resourceVersion,
    });
    return (await this.#json('GET', `${await this.#path(ref, options.namespace)}${q}`)) as KubeList<T>;
  }

  async *watch<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    options: WatchOptions,
  ): AsyncGenerator<ClusterWatchEvent<T>> {
    const q = query({
      watch: 'true',
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
      resourceVersion: options.resourceVersion,
      allowWatchBookmarks: options.allowWatchBookmarks === true ? 'true' : undefined,
    });
    const path = `${await this.#path(ref, options.namespace)}${q}`;
    let res: IncomingMessage;
    try {
      res = await this.#send('GET', path, undefined, undefined, options.signal);
    } catch (err) {
      if (options.signal?.aborted) return;
      throw err;
    }
    if ((res.statusCode ?? 500) >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      throw ApiError.fromStatus(
        JSON.parse(Buffer.concat(chunks).toString() || '{}') as Partial<Status>,
        res.statusCode,
      );
    }
    const lines = createInterface({ input: res, crlfDelay: Number.POSITIVE_INFINITY });
    try {
      for await (const line of lines) {
        if (line.trim() === '') continue;
        const ev = JSON.parse(line) as { type: string; object: KubeObject };
        if (ev.type === 'ERROR') throw ApiError.fromStatus(ev.object as unknown as Partial<Status>, 500);
        yield ev as ClusterWatchEvent<T>;
      }
    } catch (err) {
      if (options.signal?.aborted) return;
      throw err;
    } finally {
      res.destroy();
    }
  }

  async create<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    obj: T,
    options: WriteOptions = {},
  ): Promise<T> {
    return (await this.#json('POST', `${await this.#path(ref, namespace)}${writeQuery(options)}`, obj)) as T;
  }

  async update<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    obj: T,
    options: UpdateOptions = {},
  ): Promise<T> {
    const path = await this.#path(ref, obj.metadata.namespace, obj.metadata.name ?? '', options.subresource);
    return (await this.#json('PUT', `${path}${writeQuery(options)}`, obj)) as T;
  }

  async patch<T extends KubeObject = KubeObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    patch: unknown,
    options: UpdateOptions = {},
  ): Promise<T> {
    const path = await this.#path(ref, namespace, name, options.subresource);
    return (await this.#json(
      'PATCH',
      `${path}${writeQuery(options)}`,
      patch,
      PATCH_CONTENT_TYPES[type],
    )) as T;
  }

  async delete(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    options: DeleteOptions = {},
  ): Promise<KubeObject> {
    const body = {
      kind: 'DeleteOptions',
      apiVersion: 'v1',
      ...(options.propagationPolicy === undefined ? {} : { propagationPolicy: options.propagationPolicy }),
      ...(options.preconditions === undefined ? {} : { preconditions: options.preconditions }),
      ...(options.gracePeriodSeconds === undefined ? {} : { gracePeriodSeconds: options.gracePeriodSeconds }),
      ...(options.dryRun === true ? { dryRun: ['All'] } : {}),
    };
    return (await this.#json('DELETE', await this.#path(ref, namespace, name), body)) as KubeObject;
  }

  async createSubresource(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    subresource: string,
    body: unknown,
  ): Promise<unknown> {
    return this.#json('POST', await this.#path(ref, namespace, name, subresource), body);
  }

  async updateSubresource(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    subresource: string,
    body: unknown,
  ): Promise<KubeObject> {
    return (await this.#json('PUT', await this.#path(ref, namespace, name, subresource), body)) as KubeObject;
  }
}

function query(params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}

function writeQuery(options: WriteOptions): string {
  return query({ dryRun: options.dryRun === true ? 'All' : undefined, fieldManager: options.fieldManager });
}
