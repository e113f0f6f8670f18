/** Who an edge node is: the verified client certificate on the TLS connection (CN system:node:<name>, O system:nodes). */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

export const NODE_USER_PREFIX = 'system:node:';
export const NODES_GROUP = 'system:nodes';

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A node name must be a DNS-1123 subdomain (like every Node name in Kubernetes). */
export function nodeNameError(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'the node name must be a non-empty string';
  if (name.length > 253)
    return `the node name ${JSON.stringify(name.slice(0, 40))}... is longer than 253 characters`;
  if (!DNS1123_SUBDOMAIN.test(name)) {
    return `the node name ${JSON.stringify(name)} is not a lowercase RFC 1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)`;
  }
  return undefined;
}

/** The node name of a `system:node:<name>` user in group system:nodes, else undefined. */
export function nodeNameOfUser(user: { name: string; groups: readonly string[] }): string | undefined {
  if (!user.name.startsWith(NODE_USER_PREFIX) || !user.groups.includes(NODES_GROUP)) return undefined;
  const name = user.name.slice(NODE_USER_PREFIX.length);
  return nodeNameError(name) === undefined ? name : undefined;
}

export interface NodeIdentity {
  readonly node: string;
  /** The peer certificate (DER), for key fingerprint and expiry. */
  readonly certDer: Buffer;
  readonly notAfter: Date;
}

/** The node a TLS socket's verified client certificate names, or undefined (no cert, unverified, not a node). */
export function nodeIdentity(socket: Socket): NodeIdentity | undefined {
  const tls = socket as Partial<TLSSocket>;
  if (tls.authorized !== true || typeof tls.getPeerCertificate !== 'function') return undefined;
  const cert = tls.getPeerCertificate();
  if (cert === null || cert.subject === undefined || cert.raw === undefined) return undefined;
  const cn = cert.subject.CN;
  const o = cert.subject.O;
  const name = Array.isArray(cn) ? (cn.length === 1 ? cn[0] : undefined) : cn;
  const groups = o === undefined ? [] : Array.isArray(o) ? o : [o];
  if (typeof name !== 'string') return undefined;
  const node = nodeNameOfUser({ name, groups });
  if (node === undefined) return undefined;
  return { node, certDer: cert.raw, notAfter: new Date(cert.valid_to) };
}
