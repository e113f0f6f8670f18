/**
 * Node bootstrap on the server's TLS port: the CA certificate (public), CSR signing with a join token,
 * and renewal with the node's current certificate. A name belongs to the first key that joined with it
 * (NodeRegistry); on first join the server creates the Node object.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isPlainObject } from '../api/meta.ts';
import { labelValueErrors, qualifiedNameErrors } from '../api/selectors.ts';
import { isApiError } from '../api/status-error.ts';
import { type Cluster, Resources } from '../client/types.ts';
import { isKedgeError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { type CertKeyPair, signCsr } from '../lib/pki.ts';
import type { TokenStore } from '../lib/tokens.ts';
import {
  JOIN_CA_PATH,
  JOIN_CSR_PATH,
  type JoinRequest,
  type JoinResponse,
  RENEW_CSR_PATH,
} from '../protocol/messages.ts';
import { NODE_USER_PREFIX, NODES_GROUP, nodeIdentity, nodeNameError } from './identity.ts';
import { type NodeRegistry, publicKeyFingerprint } from './node-registry.ts';

const MAX_BODY_BYTES = 64 * 1024;

export interface JoinOptions {
  /** The cluster CA (it signs node certificates). */
  readonly ca: CertKeyPair;
  readonly tokens: TokenStore;
  readonly registry: NodeRegistry;
  /** Where the Node object is created on first join. */
  readonly cluster: Cluster;
  readonly logger: Logger;
  /** Node certificate lifetime; default 365. */
  readonly validityDays?: number;
}

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES)
      throw new HttpError(413, `The request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'The request body is not valid JSON');
  }
}

function parseJoinRequest(body: unknown): JoinRequest {
  if (!isPlainObject(body)) throw new HttpError(400, 'The request body must be a JSON object');
  const { nodeName, csrPem, labels } = body;
  const nameErr = nodeNameError(nodeName);
  if (nameErr !== undefined) throw new HttpError(400, `Invalid nodeName: ${nameErr}`);
  if (typeof csrPem !== 'string' || csrPem.length > 16 * 1024) {
    throw new HttpError(400, 'csrPem must be a PEM certificate request of at most 16 KiB');
  }
  if (labels === undefined) return { nodeName: nodeName as string, csrPem };
  if (!isPlainObject(labels)) throw new HttpError(400, 'labels must be an object of strings');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    const errs = [
      ...qualifiedNameErrors(k),
      ...(typeof v === 'string' ? labelValueErrors(v) : ['must be a string']),
    ];
    if (errs.length > 0) throw new HttpError(400, `Invalid label ${JSON.stringify(k)}: ${errs.join('; ')}`);
    out[k] = v as string;
  }
  return { nodeName: nodeName as string, csrPem, labels: out };
}

function bearer(req: IncomingMessage): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m?.[1];
}

/**
 * The join endpoints as one request handler: returns true when it took the request (the answer is
 * written asynchronously), false for any other path, so the caller passes it on to the API.
 */
export function joinHandlers(options: JoinOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const log = options.logger;
  const validityDays = options.validityDays ?? 365;

  async function sign(req: JoinRequest): Promise<{ certPem: string; fingerprint: string }> {
    try {
      const certPem = await signCsr(options.ca, req.csrPem, {
        commonName: `${NODE_USER_PREFIX}${req.nodeName}`,
        organizations: [NODES_GROUP],
        usage: 'client',
        validityDays,
      });
      return { certPem, fingerprint: publicKeyFingerprint(certPem) };
    } catch (err) {
      if (isKedgeError(err, 'KEDGE_PKI_INVALID')) throw new HttpError(400, err.message);
      throw err;
    }
  }

  async function ensureNode(req: JoinRequest): Promise<void> {
    const labels = {
      'kubernetes.io/hostname': req.nodeName,
      'node-role.kubernetes.io/edge': '',
      ...req.labels,
    };
    try {
      await options.cluster.create(Resources.nodes, undefined, {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: req.nodeName, labels },
      });
    } catch (err) {
      if (!isApiError(err, 409)) throw err;
    }
  }

  async function join(req: IncomingMessage): Promise<JoinResponse> {
    const token = bearer(req);
    if (token === undefined)
      throw new HttpError(401, 'A join token is required (Authorization: Bearer <token>)');
    if (options.tokens.verify(token) === undefined) {
      throw new HttpError(401, 'The join token is unknown, expired or revoked');
    }
    const body = parseJoinRequest(await readBody(req));
    const { certPem, fingerprint } = await sign(body);
    const owner = options.registry.claim(body.nodeName, fingerprint);
    if (owner.keyFingerprint !== fingerprint) {
      throw new HttpError(
        409,
        `The node name ${JSON.stringify(body.nodeName)} already belongs to another key; choose another name, or have an operator remove the node first`,
      );
    }
    await ensureNode(body);
    log.info({ node: body.nodeName }, 'node joined');
    return { certPem, caPem: options.ca.certPem };
  }

  async function renew(req: IncomingMessage): Promise<JoinResponse> {
    const id = nodeIdentity(req.socket);
    if (id === undefined) throw new HttpError(401, 'Renewal needs the node client certificate');
    const body = parseJoinRequest(await readBody(req));
    if (body.nodeName !== id.node) {
      throw new HttpError(
        403,
        `Node ${JSON.stringify(id.node)} cannot renew the certificate of ${JSON.stringify(body.nodeName)}`,
      );
    }
    const current = publicKeyFingerprint(id.certDer);
    const owner = options.registry.claim(id.node, current);
    if (owner.keyFingerprint !== current) {
      throw new HttpError(
        403,
        `The certificate of node ${JSON.stringify(id.node)} is for a key the node no longer owns`,
      );
    }
    const { certPem, fingerprint } = await sign(body);
    if (fingerprint !== current) options.registry.rekey(id.node, fingerprint);
    log.info({ node: id.node, newKey: fingerprint !== current }, 'node certificate renewed');
    return { certPem, caPem: options.ca.certPem };
  }

  return (req, res) => {
    const path = new URL(req.url ?? '/', 'http://kedge.invalid').pathname;
    if (path === JOIN_CA_PATH) {
      if (req.method !== 'GET') sendJson(res, 405, { message: `${req.method} is not supported on ${path}` });
      else {
        res.writeHead(200, { 'Content-Type': 'application/x-pem-file' });
        res.end(options.ca.certPem);
      }
      return true;
    }
    if (path !== JOIN_CSR_PATH && path !== RENEW_CSR_PATH) return false;
    if (req.method !== 'POST') {
      sendJson(res, 405, { message: `${req.method} is not supported on ${path}` });
      return true;
    }
    (path === JOIN_CSR_PATH ? join(req) : renew(req)).then(
      (answer) => sendJson(res, 200, answer),
      (err: unknown) => {
        if (err instanceof HttpError) {
          log.info({ path, status: err.status, reason: err.message }, 'join request refused');
          sendJson(res, err.status, { message: err.message });
        } else {
          log.error({ err, path }, 'join request failed');
          sendJson(res, 500, { message: 'Internal error while signing the node certificate' });
        }
      },
    );
    return true;
  };
}
