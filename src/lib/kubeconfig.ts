import { mkdir, readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { KedgeError } from './errors.ts';
import { writeFileAtomic } from './files.ts';

export interface WriteKubeconfigOptions {
  /** https://HOST:PORT */
  server: string;
  caPem: string;
  clientCertPem?: string;
  clientKeyPem?: string;
  token?: string;
  /** Name of the user entry. */
  user: string;
  /** Name of the cluster entry. Default 'kedge'. */
  cluster?: string;
  /** Name of the context (made current). Default `${user}@${cluster}`. */
  context?: string;
  namespace?: string;
}

export interface KubeconfigCluster {
  name: string;
  server: string;
  /** PEM, from certificate-authority-data or the certificate-authority file. */
  caPem?: string;
  insecureSkipTlsVerify: boolean;
  tlsServerName?: string;
}

export interface KubeconfigUser {
  name: string;
  clientCertPem?: string;
  clientKeyPem?: string;
  token?: string;
}

export interface KubeconfigContext {
  name: string;
  cluster: string;
  user: string;
  namespace?: string;
}

/** A parsed, validated kubeconfig; file references are already read. */
export interface Kubeconfig {
  clusters: KubeconfigCluster[];
  users: KubeconfigUser[];
  contexts: KubeconfigContext[];
  currentContext?: string;
}

/** Everything needed to talk to one cluster as one user. */
export interface ResolvedKubeconfig {
  context: string;
  cluster: KubeconfigCluster;
  user: KubeconfigUser;
  namespace: string;
}

function configError(message: string, context: Record<string, unknown>): KedgeError {
  return new KedgeError('KEDGE_CONFIG_INVALID', message, { context });
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

/** Renders a kubeconfig YAML (apiVersion v1, kind Config) with embedded *-data fields. */
export function renderKubeconfig(options: WriteKubeconfigOptions): string {
  let url: URL;
  try {
    url = new URL(options.server);
  } catch {
    throw configError(`Kubeconfig server ${JSON.stringify(options.server)} is not a URL`, {
      server: options.server,
    });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw configError(`Kubeconfig server ${JSON.stringify(options.server)} must be an https:// URL`, {
      server: options.server,
    });
  }
  if (!options.caPem.includes('-----BEGIN CERTIFICATE-----')) {
    throw configError('Kubeconfig caPem is not a PEM certificate', {});
  }
  if ((options.clientCertPem === undefined) !== (options.clientKeyPem === undefined)) {
    throw configError('Kubeconfig needs both clientCertPem and clientKeyPem, or neither', {
      user: options.user,
    });
  }
  if (options.clientCertPem === undefined && options.token === undefined) {
    throw configError(
      `Kubeconfig user ${JSON.stringify(options.user)} needs a client certificate or a token`,
      {
        user: options.user,
      },
    );
  }
  for (const [field, value] of [
    ['user', options.user],
    ['cluster', options.cluster],
    ['context', options.context],
  ] as const) {
    if (value !== undefined && value.trim() === '')
      throw configError(`Kubeconfig ${field} must not be empty`, {});
  }
  const cluster = options.cluster ?? 'kedge';
  const context = options.context ?? `${options.user}@${cluster}`;
  const user: Record<string, string> = {};
  if (options.clientCertPem !== undefined && options.clientKeyPem !== undefined) {
    user['client-certificate-data'] = b64(options.clientCertPem);
    user['client-key-data'] = b64(options.clientKeyPem);
  }
  if (options.token !== undefined) user['token'] = options.token;
  const ctx: Record<string, string> = { cluster, user: options.user };
  if (options.namespace !== undefined) ctx['namespace'] = options.namespace;
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: cluster,
        cluster: { server: options.server, 'certificate-authority-data': b64(options.caPem) },
      },
    ],
    users: [{ name: options.user, user }],
    contexts: [{ name: context, context: ctx }],
    'current-context': context,
    preferences: {},
  };
  return stringifyYaml(doc, { lineWidth: 0 });
}

/** Writes a kubeconfig atomically with mode 0600 (it may hold a private key or token). */
export async function writeKubeconfig(path: string, options: WriteKubeconfigOptions): Promise<void> {
  const text = renderKubeconfig(options);
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, text, 0o600);
}

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses kubeconfig text; `baseDir` resolves relative file references (default: the process cwd). */
export async function parseKubeconfig(
  text: string,
  source = 'kubeconfig',
  baseDir?: string,
): Promise<Kubeconfig> {
  const fail = (message: string, ctx: Record<string, unknown> = {}): KedgeError =>
    configError(`${source}: ${message}`, { source, ...ctx });
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new KedgeError('KEDGE_CONFIG_INVALID', `${source}: not valid YAML: ${(err as Error).message}`, {
      cause: err,
      context: { source },
    });
  }
  if (!isObj(doc)) throw fail('must be a YAML mapping');
  if (doc['kind'] !== undefined && doc['kind'] !== 'Config') {
    throw fail(`kind must be Config, got ${JSON.stringify(doc['kind'])}`);
  }

  const str = (obj: Obj, key: string, where: string): string | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw fail(`${where}.${key} must be a string`, { field: `${where}.${key}` });
    return v;
  };
  const decode = (obj: Obj, key: string, where: string): string | undefined => {
    const v = str(obj, key, where);
    if (v === undefined) return undefined;
    if (!/^[A-Za-z0-9+/=\s]*$/.test(v))
      throw fail(`${where}.${key} is not base64`, { field: `${where}.${key}` });
    return Buffer.from(v, 'base64').toString('utf8');
  };
  const readRef = async (obj: Obj, key: string, where: string): Promise<string | undefined> => {
    const ref = str(obj, key, where);
    if (ref === undefined) return undefined;
    const file = isAbsolute(ref) ? ref : resolve(baseDir ?? process.cwd(), ref);
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw fail(`${where}.${key} file ${JSON.stringify(file)} cannot be read: ${(err as Error).message}`, {
        field: `${where}.${key}`,
        file,
      });
    }
  };
  const named = (key: string, inner: string): Array<{ name: string; body: Obj; where: string }> => {
    const list = doc[key] ?? [];
    if (!Array.isArray(list)) throw fail(`${key} must be a list`, { field: key });
    const seen = new Set<string>();
    return list.map((item: unknown, i) => {
      const where = `${key}[${i}]`;
      if (!isObj(item)) throw fail(`${where} must be a mapping`, { field: where });
      const name = item['name'];
      if (typeof name !== 'string' || name === '')
        throw fail(`${where}.name must be a non-empty string`, { field: where });
      if (seen.has(name)) throw fail(`${where}.name ${JSON.stringify(name)} is duplicated`, { field: where });
      seen.add(name);
      const body = item[inner] ?? {};
      if (!isObj(body)) throw fail(`${where}.${inner} must be a mapping`, { field: `${where}.${inner}` });
      return { name, body, where: `${where}.${inner}` };
    });
  };

  const clusters: KubeconfigCluster[] = [];
  for (const { name, body, where } of named('clusters', 'cluster')) {
    const server = str(body, 'server', where);
    if (server === undefined || server === '')
      throw fail(`${where}.server is required`, { field: `${where}.server` });
    try {
      new URL(server);
    } catch {
      throw fail(`${where}.server ${JSON.stringify(server)} is not a URL`, { field: `${where}.server` });
    }
    const caPem =
      decode(body, 'certificate-authority-data', where) ??
      (await readRef(body, 'certificate-authority', where));
    if (caPem !== undefined && !caPem.includes('-----BEGIN CERTIFICATE-----')) {
      throw fail(`${where} certificate authority is not a PEM certificate`, { field: where });
    }
    const skip = body['insecure-skip-tls-verify'];
    if (skip !== undefined && typeof skip !== 'boolean') {
      throw fail(`${where}.insecure-skip-tls-verify must be a boolean`, { field: where });
    }
    const cluster: KubeconfigCluster = { name, server, insecureSkipTlsVerify: skip === true };
    if (caPem !== undefined) cluster.caPem = caPem;
    const tlsServerName = str(body, 'tls-server-name', where);
    if (tlsServerName !== undefined) cluster.tlsServerName = tlsServerName;
    clusters.push(cluster);
  }

  const users: KubeconfigUser[] = [];
  for (const { name, body, where } of named('users', 'user')) {
    const user: KubeconfigUser = { name };
    const cert =
      decode(body, 'client-certificate-data', where) ?? (await readRef(body, 'client-certificate', where));
    const key = decode(body, 'client-key-data', where) ?? (await readRef(body, 'client-key', where));
    if ((cert === undefined) !== (key === undefined)) {
      throw fail(`${where} needs both a client certificate and a client key, or neither`, { field: where });
    }
    if (cert !== undefined && !cert.includes('-----BEGIN CERTIFICATE-----')) {
      throw fail(`${where} client certificate is not a PEM certificate`, { field: where });
    }
    if (key !== undefined && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
      throw fail(`${where} client key is not a PEM private key`, { field: where });
    }
    if (cert !== undefined) user.clientCertPem = cert;
    if (key !== undefined) user.clientKeyPem = key;
    const token = str(body, 'token', where) ?? (await readRef(body, 'tokenFile', where))?.trim();
    if (token !== undefined) user.token = token;
    users.push(user);
  }

  const contexts: KubeconfigContext[] = [];
  for (const { name, body, where } of named('contexts', 'context')) {
    const cluster = str(body, 'cluster', where);
    const user = str(body, 'user', where);
    if (cluster === undefined || !clusters.some((c) => c.name === cluster)) {
      throw fail(`${where}.cluster ${JSON.stringify(cluster)} names no cluster`, {
        field: `${where}.cluster`,
      });
    }
    if (user === undefined || !users.some((u) => u.name === user)) {
      throw fail(`${where}.user ${JSON.stringify(user)} names no user`, { field: `${where}.user` });
    }
    const ctx: KubeconfigContext = { name, cluster, user };
    const namespace = str(body, 'namespace', where);
    if (namespace !== undefined) ctx.namespace = namespace;
    contexts.push(ctx);
  }

  const current = str(doc, 'current-context', 'kubeconfig');
  const config: Kubeconfig = { clusters, users, contexts };
  if (current !== undefined && current !== '') {
    if (!contexts.some((c) => c.name === current)) {
      throw fail(`current-context ${JSON.stringify(current)} names no context`, { field: 'current-context' });
    }
    config.currentContext = current;
  }
  return config;
}

/** Reads and validates a kubeconfig file; relative file references resolve against its folder. */
export async function readKubeconfig(path: string): Promise<Kubeconfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new KedgeError(
      'KEDGE_CONFIG_INVALID',
      `Kubeconfig ${path} cannot be read: ${(err as Error).message}`,
      {
        cause: err,
        context: { path },
      },
    );
  }
  return parseKubeconfig(text, path, dirname(resolve(path)));
}

/** Picks a context (default: the current one) and returns its cluster, user and namespace. */
export function resolveKubeconfig(config: Kubeconfig, contextName?: string): ResolvedKubeconfig {
  const name = contextName ?? config.currentContext;
  if (name === undefined) throw configError('Kubeconfig has no current-context and none was given', {});
  const ctx = config.contexts.find((c) => c.name === name);
  if (ctx === undefined)
    throw configError(`Kubeconfig has no context ${JSON.stringify(name)}`, { context: name });
  // parseKubeconfig checked these references; a hand-built config may not have.
  const cluster = config.clusters.find((c) => c.name === ctx.cluster);
  const user = config.users.find((u) => u.name === ctx.user);
  if (cluster === undefined || user === undefined) {
    throw configError(`Kubeconfig context ${JSON.stringify(name)} names a missing cluster or user`, {
      context: name,
    });
  }
  return { context: name, cluster, user, namespace: ctx.namespace ?? 'default' };
}
