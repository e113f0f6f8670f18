/**
 * Joining and staying joined: the first start fetches the server's CA without verifying TLS, pins it
 * against the hash in the join token, makes a key pair ON the node, and has the server sign a CSR
 * (token as bearer). Later starts use the stored certificate (mTLS only, no token). A certificate with
 * less than 30% of its lifetime left is renewed with the current certificate.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { KedgeError } from '../lib/errors.ts';
import { readIfExists, writeFileAtomic } from '../lib/files.ts';
import type { Logger } from '../lib/log.ts';
import { certInfo, createCsr, isIssuedBy, keyMatchesCertificate } from '../lib/pki.ts';
import { parseJoinToken } from '../lib/tokens.ts';
import { JOIN_CA_PATH, JOIN_CSR_PATH, type JoinRequest, RENEW_CSR_PATH } from '../protocol/messages.ts';
import type { NodeTls } from './session.ts';

export const AGENT_FILES = { caCert: 'ca.crt', nodeKey: 'node.key', nodeCert: 'node.crt' } as const;
export const NODE_USER_PREFIX = 'system:node:';
export const NODES_GROUP = 'system:nodes';
/** Renew when less than this fraction of the certificate's lifetime is left. */
export const RENEW_FRACTION = 0.3;

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const REQUEST_TIMEOUT_MS = 30_000;

function joinError(message: string, context: Record<string, unknown> = {}, cause?: unknown): KedgeError {
  return new KedgeError(
    'KEDGE_AGENT_JOIN_FAILED',
    message,
    cause === undefined ? { context } : { context, cause },
  );
}

/** Why a node name is invalid (Kubernetes: a lowercase RFC 1123 subdomain), or undefined. */
export function nodeNameError(name: string): string | undefined {
  if (name === '' || name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    return `Node name ${JSON.stringify(name)} is not a lowercase RFC 1123 subdomain of at most 253 characters`;
  }
  return undefined;
}

interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

/** One HTTPS request. `ca: undefined` with `insecure` skips verification (only for fetching the CA to pin). */
function httpsRequest(
  url: URL,
  options: {
    method: 'GET' | 'POST';
    ca?: string;
    insecure?: boolean;
    cert?: string;
    key?: string;
    bearer?: string;
    body?: unknown;
  },
): Promise<HttpAnswer> {
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method,
        rejectUnauthorized: options.insecure !== true,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        ...(options.cert === undefined ? {} : { cert: options.cert, key: options.key }),
        headers: {
          Accept: 'application/json, application/x-pem-file',
          ...(body === undefined
            ? {}
            : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }),
          ...(options.bearer === undefined ? {} : { Authorization: `Bearer ${options.bearer}` }),
        },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`No answer from ${url.origin} within ${REQUEST_TIMEOUT_MS} ms`)),
    );
    req.on('error', reject);
    req.end(body);
  });
}

function messageOf(answer: HttpAnswer): string {
  try {
    const parsed = JSON.parse(answer.body) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {}
  return answer.body.slice(0, 200);
}

function parseJoinAnswer(answer: HttpAnswer, what: string): { certPem: string; caPem: string } {
  if (answer.status !== 200) {
    throw joinError(`The server refused the ${what} with HTTP ${answer.status}: ${messageOf(answer)}`, {
      status: answer.status,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body);
  } catch (err) {
    throw joinError(`The server's ${what} answer is not JSON`, {}, err);
  }
  const p = parsed as { certPem?: unknown; caPem?: unknown };
  if (typeof p.certPem !== 'string' || typeof p.caPem !== 'string') {
    throw joinError(`The server's ${what} answer lacks certPem or caPem`);
  }
  return { certPem: p.certPem, caPem: p.caPem };
}

async function store(dataDir: string, tls: NodeTls): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(dataDir, AGENT_FILES.caCert), tls.caPem, 0o644);
  await writeFileAtomic(join(dataDir, AGENT_FILES.nodeKey), tls.keyPem, 0o600);
  // The certificate last: its presence means the set is complete.
  await writeFileAtomic(join(dataDir, AGENT_FILES.nodeCert), tls.certPem, 0o644);
}

/** The stored credentials, or undefined when the node has not joined (no node.crt). */
export async function loadCredentials(dataDir: string): Promise<NodeTls | undefined> {
  const certPem = await readIfExists(join(dataDir, AGENT_FILES.nodeCert));
  if (certPem === undefined) return undefined;
  const caPem = await readIfExists(join(dataDir, AGENT_FILES.caCert));
  const keyPem = await readIfExists(join(dataDir, AGENT_FILES.nodeKey));
  if (caPem === undefined || keyPem === undefined) {
    throw joinError(`The credentials in ${dataDir} are incomplete (ca.crt or node.key is missing)`, {
      dataDir,
    });
  }
  if (!keyMatchesCertificate(certPem, keyPem)) {
    throw joinError(`The key in ${join(dataDir, AGENT_FILES.nodeKey)} does not belong to node.crt`, {
      dataDir,
    });
  }
  if (!isIssuedBy(certPem, caPem)) {
    throw joinError(`The certificate in ${dataDir} is not issued by the stored CA`, { dataDir });
  }
  return { caPem, certPem, keyPem };
}

export interface JoinOptions {
  /** `https://HOST:PORT`. */
  readonly server: string;
  /** Needed only when the data dir holds no credentials yet. */
  readonly token?: string;
  readonly nodeName: string;
  readonly dataDir: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly logger: Logger;
}

/** Checks that stored credentials belong to this node name (and to the token's cluster, when given). */
function checkStored(tls: NodeTls, options: JoinOptions): void {
  const cn = certInfo(tls.certPem).commonName;
  if (cn !== `${NODE_USER_PREFIX}${options.nodeName}`) {
    throw joinError(
      `The data dir ${options.dataDir} holds the credentials of ${JSON.stringify(cn)}, not of node ${JSON.stringify(options.nodeName)}; use that --node-name or another --data-dir`,
      { dataDir: options.dataDir, commonName: cn },
    );
  }
  if (options.token !== undefined) {
    const pinned = parseJoinToken(options.token).caHash;
    if (caHashOf(tls.caPem) !== pinned) {
      throw new KedgeError(
        'KEDGE_AGENT_CA_MISMATCH',
        `The data dir ${options.dataDir} belongs to another cluster (its CA does not match the join token); use another --data-dir`,
        { context: { dataDir: options.dataDir } },
      );
    }
  }
}

function caHashOf(caPem: string): string {
  return createHash('sha256').update(new X509Certificate(caPem).raw).digest('hex');
}

/** The node's credentials: stored ones when present, else a fresh join with the token. */
export async function loadOrJoin(options: JoinOptions): Promise<NodeTls> {
  const nameErr = nodeNameError(options.nodeName);
  if (nameErr !== undefined)
    throw new KedgeError('KEDGE_CONFIG_INVALID', nameErr, { context: { nodeName: options.nodeName } });
  const stored = await loadCredentials(options.dataDir);
  if (stored !== undefined) {
    checkStored(stored, options);
    return stored;
  }
  if (options.token === undefined) {
    throw new KedgeError(
      'KEDGE_CONFIG_INVALID',
      `Node ${options.nodeName} has not joined yet: --token is required`,
      {
        context: { dataDir: options.dataDir },
      },
    );
  }
  return joinCluster({ ...options, token: options.token });
}

/** First join: pin the CA by the token's hash, make the key here, get the CSR signed, store all three. */
export async function joinCluster(options: JoinOptions & { readonly token: string }): Promise<NodeTls> {
  const log = options.logger;
  const token = parseJoinToken(options.token);
  const base = new URL(options.server);
  let caAnswer: HttpAnswer;
  try {
    caAnswer = await httpsRequest(new URL(JOIN_CA_PATH, base), { method: 'GET', insecure: true });
  } catch (err) {
    throw joinError(
      `Cannot reach ${base.origin} to fetch its CA: ${(err as Error).message}`,
      { server: base.origin },
      err,
    );
  }
  if (caAnswer.status !== 200) {
    throw joinError(`The server answered HTTP ${caAnswer.status} for its CA at ${JOIN_CA_PATH}`, {
      status: caAnswer.status,
    });
  }
  const caPem = caAnswer.body;
  let hash: string;
  try {
    hash = caHashOf(caPem);
  } catch (err) {
    throw joinError(`The server sent a CA that is not a PEM certificate`, {}, err);
  }
  if (hash !== token.caHash) {
    throw new KedgeError(
      'KEDGE_AGENT_CA_MISMATCH',
      `The CA of ${base.origin} has hash ${hash}, but the join token pins ${token.caHash}: refusing to join (wrong server, or someone in between)`,
      { context: { server: base.origin, caHash: hash, pinned: token.caHash } },
    );
  }
  const csr = await createCsr({
    commonName: `${NODE_USER_PREFIX}${options.nodeName}`,
    organizations: [NODES_GROUP],
  });
  const body: JoinRequest = {
    nodeName: options.nodeName,
    csrPem: csr.csrPem,
    ...(options.labels === undefined ? {} : { labels: options.labels }),
  };
  let answer: HttpAnswer;
  try {
    answer = await httpsRequest(new URL(JOIN_CSR_PATH, base), {
      method: 'POST',
      ca: caPem,
      bearer: options.token,
      body,
    });
  } catch (err) {
    throw joinError(`Cannot send the join request to ${base.origin}: ${(err as Error).message}`, {}, err);
  }
  const signed = parseJoinAnswer(answer, 'join request');
  const tls: NodeTls = { caPem, certPem: signed.certPem, keyPem: csr.keyPem };
  if (!keyMatchesCertificate(tls.certPem, tls.keyPem) || !isIssuedBy(tls.certPem, caPem)) {
    throw joinError('The server returned a certificate that is not for our key or not from its CA');
  }
  await store(options.dataDir, tls);
  log.info({ node: options.nodeName, notAfter: certInfo(tls.certPem).notAfter }, 'joined the cluster');
  return tls;
}

/** True when less than RENEW_FRACTION of the certificate's lifetime is left. */
export function needsRenewal(certPem: string, now = Date.now()): boolean {
  const { notBefore, notAfter } = certInfo(certPem);
  const lifetime = notAfter.getTime() - notBefore.getTime();
  return notAfter.getTime() - now < lifetime * RENEW_FRACTION;
}

/** Renews with the current certificate (mTLS, new key made here) and stores the result. */
export async function renewCertificate(options: {
  server: string;
  nodeName: string;
  dataDir: string;
  current: NodeTls;
  logger: Logger;
}): Promise<NodeTls> {
  const csr = await createCsr({
    commonName: `${NODE_USER_PREFIX}${options.nodeName}`,
    organizations: [NODES_GROUP],
  });
  const answer = await httpsRequest(new URL(RENEW_CSR_PATH, options.server), {
    method: 'POST',
    ca: options.current.caPem,
    cert: options.current.certPem,
    key: options.current.keyPem,
    body: { nodeName: options.nodeName, csrPem: csr.csrPem } satisfies JoinRequest,
  });
  const signed = parseJoinAnswer(answer, 'renewal');
  const tls: NodeTls = { caPem: options.current.caPem, certPem: signed.certPem, keyPem: csr.keyPem };
  if (!keyMatchesCertificate(tls.certPem, tls.keyPem) || !isIssuedBy(tls.certPem, tls.caPem)) {
    throw joinError('The server returned a renewed certificate that is not for our key or not from our CA');
  }
  await store(options.dataDir, tls);
  options.logger.info({ notAfter: certInfo(tls.certPem).notAfter }, 'node certificate renewed');
  return tls;
}

/** Holds the current credentials and renews them in time (checked at start and every `checkEveryMs`). */
export class CertificateKeeper {
  #current: NodeTls;
  readonly #o: { server: string; nodeName: string; dataDir: string; logger: Logger; checkEveryMs: number };
  #timer: NodeJS.Timeout | undefined;
  #renewing: Promise<void> | undefined;
  readonly #listeners = new Set<(tls: NodeTls) => void>();

  constructor(
    current: NodeTls,
    options: { server: string; nodeName: string; dataDir: string; logger: Logger; checkEveryMs?: number },
  ) {
    this.#current = current;
    this.#o = { ...options, checkEveryMs: options.checkEveryMs ?? 3_600_000 };
  }

  current(): NodeTls {
    return this.#current;
  }

  onRenewed(listener: (tls: NodeTls) => void): void {
    this.#listeners.add(listener);
  }

  start(): void {
    void this.check();
    this.#timer = setInterval(() => void this.check(), this.#o.checkEveryMs);
    this.#timer.unref();
  }

  /** Renews now if due; failures are logged and retried at the next check. */
  check(now = Date.now()): Promise<void> {
    if (this.#renewing !== undefined || !needsRenewal(this.#current.certPem, now))
      return this.#renewing ?? Promise.resolve();
    this.#renewing = renewCertificate({ ...this.#o, current: this.#current })
      .then((tls) => {
        this.#current = tls;
        for (const l of this.#listeners) l(tls);
      })
      .catch((err: unknown) => this.#o.logger.warn({ err }, 'certificate renewal failed; will retry'))
      .finally(() => {
        this.#renewing = undefined;
      });
    return this.#renewing;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#renewing;
  }
}
