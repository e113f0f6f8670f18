import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Authorizer, UserInfo } from '../api/auth.ts';

export type { Authorizer, Decision, RequestAttributes, UserInfo } from '../api/auth.ts';

export type Authenticator = (req: IncomingMessage) => UserInfo | undefined | Promise<UserInfo | undefined>;

/** Identity per TLS connection: a connection's peer certificate never changes, and reading it costs a copy. */
const identities = new WeakMap<object, UserInfo | null>();

/** The subject of a verified client certificate: CN is the user, O the groups (as Kubernetes does). */
export const certificateAuthenticator: Authenticator = (req) => {
  const socket = req.socket as Partial<TLSSocket>;
  if (socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return undefined;
  let user = identities.get(socket);
  if (user === undefined) {
    user = certificateUser(socket.getPeerCertificate());
    identities.set(socket, user);
  }
  return user ?? undefined;
};

function certificateUser(cert: ReturnType<TLSSocket['getPeerCertificate']> | null): UserInfo | null {
  if (cert === null || cert.subject === undefined) return null;
  const cn = cert.subject.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  if (typeof name !== 'string' || name === '') return null;
  const o = cert.subject.O;
  const groups = o === undefined ? [] : Array.isArray(o) ? o : [o];
  return { name, groups: [...groups, 'system:authenticated'] };
}

/** Bearer tokens checked by a lookup function (the token store). */
export function bearerAuthenticator(
  lookup: (token: string) => UserInfo | undefined | Promise<UserInfo | undefined>,
): Authenticator {
  return async (req) => {
    const header = req.headers.authorization;
    if (header === undefined) return undefined;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match?.[1] === undefined) return undefined;
    const user = await lookup(match[1]);
    return user === undefined
      ? undefined
      : { name: user.name, groups: [...user.groups, 'system:authenticated'] };
  };
}

/** First authenticator that recognises the request wins. */
export function unionAuthenticator(list: readonly Authenticator[]): Authenticator {
  return async (req) => {
    for (const a of list) {
      const user = await a(req);
      if (user !== undefined) return user;
    }
    return undefined;
  };
}

/** Members of system:masters may do everything (the admin kubeconfig's identity). */
export const mastersAuthorizer: Authorizer = (attrs) =>
  attrs.user.groups.includes('system:masters') ? { allowed: true } : undefined;

/** Paths anyone authenticated may read: discovery, version, health (like system:discovery). */
export const discoveryAuthorizer: Authorizer = (attrs) => {
  if (attrs.resourceRequest || attrs.verb !== 'get') return undefined;
  const p = attrs.path;
  if (
    p === '/api' ||
    p === '/apis' ||
    p.startsWith('/api/') ||
    p.startsWith('/apis/') ||
    p.startsWith('/openapi/') ||
    p === '/version' ||
    p === '/healthz' ||
    p === '/readyz' ||
    p === '/livez'
  ) {
    return { allowed: true };
  }
  return undefined;
};

/** Asks each authorizer in turn; the first decision counts; no decision means denied. */
export function unionAuthorizer(list: readonly Authorizer[]): Authorizer {
  return async (attrs) => {
    for (const a of list) {
      const d = await a(attrs);
      if (d !== undefined) return d;
    }
    return { allowed: false, reason: 'no authorizer allowed the request' };
  };
}
