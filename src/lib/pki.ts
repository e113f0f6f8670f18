/** PKI for the server and agents: a cluster CA, server and client certificates, CSR signing. ECDSA P-256, PEM. */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  X509Certificate as NodeX509Certificate,
  type webcrypto,
} from 'node:crypto';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type * as X509 from '@peculiar/x509';
import { KedgeError } from './errors.ts';
import { readIfExists, writeFileAtomic } from './files.ts';

// @peculiar/x509 registers its algorithms through tsyringe, which refuses to load without a Reflect
// metadata API. It only ever stores and reads injection tokens there, so a tiny WeakMap-backed
// implementation is enough; it is installed only when no real polyfill is present.
function installReflectMetadata(): void {
  const reflect = Reflect as unknown as Record<string, unknown>;
  if (typeof reflect['getMetadata'] === 'function') return;
  const store = new WeakMap<object, Map<unknown, unknown>>();
  const own = (target: object, key: unknown): unknown => store.get(target)?.get(key);
  reflect['defineMetadata'] = (key: unknown, value: unknown, target: object): void => {
    let map = store.get(target);
    if (map === undefined) {
      map = new Map();
      store.set(target, map);
    }
    map.set(key, value);
  };
  reflect['getOwnMetadata'] = (key: unknown, target: object): unknown => own(target, key);
  reflect['getMetadata'] = (key: unknown, target: object): unknown => {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
      const value = own(t, key);
      if (value !== undefined) return value;
    }
    return undefined;
  };
  reflect['hasMetadata'] = (key: unknown, target: object): boolean =>
    (reflect['getMetadata'] as (k: unknown, t: object) => unknown)(key, target) !== undefined;
}

let loaded: typeof X509 | undefined;
/**
 * @peculiar/x509 is loaded on first use (through this proxy), not at import: it and its ASN.1 stack cost an
 * agent ~5 MiB of memory it needs only to join or renew. Loaded with require so that the shim above runs
 * first.
 */
const x509 = new Proxy({} as typeof X509, {
  get(_target, property) {
    if (loaded === undefined) {
      installReflectMetadata();
      loaded = createRequire(import.meta.url)('@peculiar/x509') as typeof X509;
      loaded.cryptoProvider.set(globalThis.crypto);
    }
    return Reflect.get(loaded, property);
  },
});

/** A certificate and its private key, both PEM. */
export interface CertKeyPair {
  certPem: string;
  keyPem: string;
}

/** What an issued certificate may be used for (extended key usage). */
export type CertUsage = 'server' | 'client' | 'both';

export interface CreateCAOptions {
  commonName: string;
  /** Default 3650 (10 years). */
  validityDays?: number;
}

export interface IssueCertificateOptions {
  commonName: string;
  /** Subject O= values; Kubernetes reads them as the user's groups. */
  organizations?: readonly string[];
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  usage: CertUsage;
  /** Default 365. */
  validityDays?: number;
  /** Certify this public key (PEM, SPKI) instead of generating a key pair; then no keyPem is returned. */
  publicKeyPem?: string;
}

export interface SignCsrOptions {
  /** The CSR's CN must equal this. */
  commonName: string;
  /** The CSR's O= values must be exactly these (any order). Default: none. */
  organizations?: readonly string[];
  /** Default 'client'. */
  usage?: CertUsage;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  /** Default 365. */
  validityDays?: number;
}

/** What kedge needs to know about a certificate. */
export interface CertInfo {
  commonName: string;
  organizations: string[];
  issuerCommonName: string;
  dnsNames: string[];
  ipAddresses: string[];
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** sha256 of the DER, lowercase hex without separators. */
  fingerprint: string;
  isCA: boolean;
}

const DAY_MS = 24 * 60 * 60 * 1000;
// Edge machines often boot with a wrong clock until NTP catches up; back-date so fresh certs work anyway.
const BACKDATE_MS = 60 * 60 * 1000;
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

function pkiError(message: string, context: Record<string, unknown> = {}, cause?: unknown): KedgeError {
  return new KedgeError('KEDGE_PKI_INVALID', message, cause === undefined ? { context } : { context, cause });
}

function causeText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function checkValidityDays(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > 36500) {
    throw pkiError(`Validity must be a whole number of days from 1 to 36500, got ${value}`, {
      validityDays: value,
    });
  }
  return value;
}

function checkNameValue(what: string, value: string): void {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (value.length === 0 || value.length > 256 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw pkiError(`${what} must be 1 to 256 printable characters, got ${JSON.stringify(value)}`, {
      [what]: value,
    });
  }
}

const DNS_NAME = /^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

function checkDnsName(name: string): string {
  const lower = name.toLowerCase();
  if (lower.length > 253 || !DNS_NAME.test(lower)) {
    throw pkiError(`DNS name ${JSON.stringify(name)} is not a valid host name`, { dnsName: name });
  }
  return lower;
}

function checkIpAddress(ip: string): string {
  if (isIP(ip) === 0) throw pkiError(`IP address ${JSON.stringify(ip)} is not valid`, { ipAddress: ip });
  return ip;
}

function subjectName(commonName: string, organizations: readonly string[] = []): X509.Name {
  checkNameValue('commonName', commonName);
  for (const o of organizations) checkNameValue('organization', o);
  const json: X509.JsonName = organizations.map((o) => ({ O: [o] }));
  json.push({ CN: [commonName] });
  return new x509.Name(json);
}

function randomSerial(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  // Positive, and no leading zero byte that DER would strip.
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return Buffer.from(bytes).toString('hex');
}

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

async function generateKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return globalThis.crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
}

async function exportPrivateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  return toPem(await globalThis.crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

function parseNodeCertificate(pem: string, what: string): NodeX509Certificate {
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw pkiError(`The ${what} is not a PEM certificate`, { what });
  }
  try {
    return new NodeX509Certificate(pem);
  } catch (err) {
    throw pkiError(`The ${what} cannot be parsed: ${causeText(err)}`, { what }, err);
  }
}

function parseCertificate(pem: string, what: string): { node: NodeX509Certificate; x: X509.X509Certificate } {
  const node = parseNodeCertificate(pem, what);
  try {
    return { node, x: new x509.X509Certificate(node.raw) };
  } catch (err) {
    throw pkiError(`The ${what} cannot be parsed: ${causeText(err)}`, { what }, err);
  }
}

function parsePrivateKey(pem: string, what: string): KeyObject {
  if (typeof pem !== 'string' || !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw pkiError(`The ${what} is not a PEM private key`, { what });
  }
  try {
    return createPrivateKey(pem);
  } catch (err) {
    // The cause text never contains key material, only what OpenSSL disliked.
    throw pkiError(`The ${what} cannot be parsed: ${causeText(err)}`, { what }, err);
  }
}

const CURVES: Readonly<Record<string, { curve: string; hash: string }>> = {
  prime256v1: { curve: 'P-256', hash: 'SHA-256' },
  secp384r1: { curve: 'P-384', hash: 'SHA-384' },
};

/** WebCrypto import and signing parameters for a key, or a KEDGE_PKI_INVALID for kinds kedge does not use. */
function keyAlgorithm(
  key: KeyObject,
  what: string,
): {
  importAlg: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
  signAlg: webcrypto.EcdsaParams | webcrypto.Algorithm;
} {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const named = CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
    if (named !== undefined) {
      return {
        importAlg: { name: 'ECDSA', namedCurve: named.curve },
        signAlg: { name: 'ECDSA', hash: named.hash },
      };
    }
  } else if (type === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) {
    return {
      importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      signAlg: { name: 'RSASSA-PKCS1-v1_5' },
    };
  }
  const detail = key.asymmetricKeyDetails?.namedCurve ?? key.asymmetricKeyDetails?.modulusLength ?? '';
  throw pkiError(
    `The ${what} is a ${type ?? 'unknown'} ${detail} key; use ECDSA P-256/P-384 or RSA >= 2048`,
    {
      what,
      keyType: type,
    },
  );
}

async function importSigningKey(
  keyPem: string,
  what: string,
): Promise<{ key: webcrypto.CryptoKey; alg: webcrypto.Algorithm }> {
  const keyObject = parsePrivateKey(keyPem, what);
  const { importAlg, signAlg } = keyAlgorithm(keyObject, what);
  return { key: await keyObject.toCryptoKey(importAlg, false, ['sign']), alg: signAlg };
}

async function importPublicKey(keyObject: KeyObject, what: string): Promise<webcrypto.CryptoKey> {
  const { importAlg } = keyAlgorithm(keyObject, what);
  return keyObject.toCryptoKey(importAlg, true, ['verify']);
}

/** Creates a self-signed CA (CA:true, keyCertSign and cRLSign) with a new P-256 key. */
export async function createCA(options: CreateCAOptions): Promise<CertKeyPair> {
  const days = checkValidityDays(options.validityDays, 3650);
  const name = subjectName(options.commonName);
  const keys = await generateKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name,
    keys,
    signingAlgorithm: ECDSA_SHA256,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + days * DAY_MS),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

function extendedUsages(usage: CertUsage): string[] {
  switch (usage) {
    case 'server':
      return [x509.ExtendedKeyUsage.serverAuth];
    case 'client':
      return [x509.ExtendedKeyUsage.clientAuth];
    case 'both':
      return [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
    default:
      throw pkiError(`Certificate usage must be server, client or both, got ${JSON.stringify(usage)}`, {
        usage,
      });
  }
}

async function signCertificate(
  ca: CertKeyPair,
  subject: X509.Name,
  publicKey: webcrypto.CryptoKey,
  options: {
    usage: CertUsage;
    dnsNames: readonly string[];
    ipAddresses: readonly string[];
    validityDays: number;
  },
): Promise<string> {
  const caCert = parseCertificate(ca.certPem, 'CA certificate');
  if (!caCert.node.ca) throw pkiError('The CA certificate is not a CA (basicConstraints CA:false)');
  const signing = await importSigningKey(ca.keyPem, 'CA key');
  if (!caCert.node.checkPrivateKey(parsePrivateKey(ca.keyPem, 'CA key'))) {
    throw pkiError('The CA key does not belong to the CA certificate');
  }
  const ekus = extendedUsages(options.usage);
  const dnsNames = options.dnsNames.map(checkDnsName);
  const ipAddresses = options.ipAddresses.map(checkIpAddress);
  const now = Date.now();
  const notAfter = Math.min(now + options.validityDays * DAY_MS, caCert.node.validToDate.getTime());
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    // keyEncipherment only matters for RSA key exchange; ECDSA keys only sign.
    new x509.KeyUsagesExtension(
      publicKey.algorithm.name === 'ECDSA'
        ? x509.KeyUsageFlags.digitalSignature
        : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
      true,
    ),
    new x509.ExtendedKeyUsageExtension(ekus, false),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert.x.publicKey),
  ];
  if (dnsNames.length > 0 || ipAddresses.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
      ]),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject,
    issuer: caCert.x.subjectName,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(notAfter),
    publicKey,
    signingKey: signing.key,
    signingAlgorithm: signing.alg,
    extensions,
  });
  return cert.toString('pem') + '\n';
}

/**
 * Issues a certificate signed by `ca`. Generates a P-256 key pair and returns its key, unless
 * `publicKeyPem` is given (then only the certificate is returned).
 */
export async function issueCertificate(
  ca: CertKeyPair,
  options: IssueCertificateOptions,
): Promise<{ certPem: string; keyPem?: string }> {
  const validityDays = checkValidityDays(options.validityDays, 365);
  const subject = subjectName(options.commonName, options.organizations);
  const signOptions = {
    usage: options.usage,
    dnsNames: options.dnsNames ?? [],
    ipAddresses: options.ipAddresses ?? [],
    validityDays,
  };
  if (options.publicKeyPem !== undefined) {
    // createPublicKey would quietly derive the public half of a private key; refuse to accept one here.
    if (/PRIVATE KEY-----/.test(options.publicKeyPem)) {
      throw pkiError('The public key PEM holds a private key; pass the public key');
    }
    let keyObject: KeyObject;
    try {
      keyObject = createPublicKey(options.publicKeyPem);
    } catch (err) {
      throw pkiError(`The public key cannot be parsed: ${causeText(err)}`, {}, err);
    }
    if (keyObject.type !== 'public')
      throw pkiError('The public key PEM holds a private key; pass the public key');
    const publicKey = await importPublicKey(keyObject, 'public key');
    return { certPem: await signCertificate(ca, subject, publicKey, signOptions) };
  }
  const keys = await generateKeyPair();
  const certPem = await signCertificate(ca, subject, keys.publicKey, signOptions);
  return { certPem, keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/** Creates a PKCS#10 certificate request and its new P-256 key (what an agent sends to join). */
export async function createCsr(options: {
  commonName: string;
  organizations?: readonly string[];
}): Promise<{ csrPem: string; keyPem: string }> {
  const name = subjectName(options.commonName, options.organizations);
  const keys = await generateKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name,
    keys,
    signingAlgorithm: ECDSA_SHA256,
  });
  return { csrPem: csr.toString('pem') + '\n', keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const sa = [...a].sort();
  const sb = [...b].sort();
  return sa.length === sb.length && sa.every((v, i) => v === sb[i]);
}

/**
 * Signs a CSR after checking its self-signature and that its subject is exactly what the caller
 * requires. Extensions the CSR asks for are ignored: the caller decides usage and names.
 */
export async function signCsr(ca: CertKeyPair, csrPem: string, options: SignCsrOptions): Promise<string> {
  const validityDays = checkValidityDays(options.validityDays, 365);
  if (typeof csrPem !== 'string' || !csrPem.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
    throw pkiError('The CSR is not a PEM certificate request');
  }
  let csr: X509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw pkiError(`The CSR cannot be parsed: ${causeText(err)}`, {}, err);
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch (err) {
    throw pkiError(`The CSR signature cannot be checked: ${causeText(err)}`, {}, err);
  }
  if (!valid) throw pkiError('The CSR signature does not match its public key');

  const cns = csr.subjectName.getField('CN');
  const orgs = csr.subjectName.getField('O');
  const wantOrgs = options.organizations ?? [];
  if (cns.length !== 1 || cns[0] !== options.commonName) {
    throw pkiError(
      `The CSR common name ${JSON.stringify(cns.join(','))} does not match the required ${JSON.stringify(options.commonName)}`,
      { commonName: cns, required: options.commonName },
    );
  }
  if (!sameSet(orgs, wantOrgs)) {
    throw pkiError(
      `The CSR organizations ${JSON.stringify(orgs)} do not match the required ${JSON.stringify(wantOrgs)}`,
      { organizations: orgs, required: wantOrgs },
    );
  }
  let keyObject: KeyObject;
  try {
    keyObject = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (err) {
    throw pkiError(`The CSR public key cannot be read: ${causeText(err)}`, {}, err);
  }
  const publicKey = await importPublicKey(keyObject, 'CSR public key');
  return signCertificate(ca, subjectName(options.commonName, wantOrgs), publicKey, {
    usage: options.usage ?? 'client',
    dnsNames: options.dnsNames ?? [],
    ipAddresses: options.ipAddresses ?? [],
    validityDays,
  });
}

/** sha256 of the CA certificate's DER, lowercase hex: what a join token pins. */
export function caHash(caCertPem: string): string {
  const cert = parseNodeCertificate(caCertPem, 'CA certificate');
  return createHash('sha256').update(cert.raw).digest('hex');
}

/** The values of one attribute in a distinguished name as node:crypto prints it ("CN=a\nO=b\nO=c"). */
function dnField(dn: string, key: string): string[] {
  return dn
    .split('\n')
    .filter((line) => line.startsWith(`${key}=`))
    .map((line) => line.slice(key.length + 1));
}

/** Reads the facts kedge needs from a PEM certificate (node:crypto only: no ASN.1 library is loaded). */
export function certInfo(certPem: string): CertInfo {
  const node = parseNodeCertificate(certPem, 'certificate');
  const names = (node.subjectAltName ?? '').split(', ').filter((n) => n !== '');
  const sans = (prefix: string): string[] =>
    names.filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
  return {
    commonName: dnField(node.subject, 'CN')[0] ?? '',
    organizations: dnField(node.subject, 'O'),
    issuerCommonName: dnField(node.issuer, 'CN')[0] ?? '',
    dnsNames: sans('DNS:'),
    // node:crypto prints IPv6 addresses uncompressed and upper case; compress them as everyone else does.
    ipAddresses: sans('IP Address:').map((ip) =>
      ip.includes(':') ? new URL(`http://[${ip}]`).hostname.slice(1, -1) : ip,
    ),
    serialNumber: node.serialNumber.toLowerCase(),
    notBefore: node.validFromDate,
    notAfter: node.validToDate,
    fingerprint: createHash('sha256').update(node.raw).digest('hex'),
    isCA: node.ca,
  };
}

/** True when `certPem` carries a valid signature by `caCertPem`'s key and names it as issuer. */
export function isIssuedBy(certPem: string, caCertPem: string): boolean {
  const cert = parseNodeCertificate(certPem, 'certificate');
  const ca = parseNodeCertificate(caCertPem, 'CA certificate');
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

/** True when the private key belongs to the certificate. */
export function keyMatchesCertificate(certPem: string, keyPem: string): boolean {
  return parseNodeCertificate(certPem, 'certificate').checkPrivateKey(parsePrivateKey(keyPem, 'private key'));
}

/** The server's credentials in its data dir. */
export interface ServerPki {
  dir: string;
  ca: CertKeyPair;
  /** Serving certificate for the API port; SANs cover `hosts`. */
  server: CertKeyPair;
  /** Client certificate CN=kedge-admin, O=system:masters. */
  admin: CertKeyPair;
  caHash: string;
  /** Every host name and IP the server certificate must cover. */
  hosts: string[];
  /** What this call created or re-issued (empty when everything was reused). */
  issued: Array<'ca' | 'server' | 'admin'>;
}

export const PKI_FILES = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  serverCert: 'server.crt',
  serverKey: 'server.key',
  adminCert: 'admin.crt',
  adminKey: 'admin.key',
} as const;

/** Renew a leaf certificate when it has less than this left. */
export const RENEW_BEFORE_DAYS = 30;

/** The hosts a server certificate always covers, plus `extra`, deduplicated. */
export function serverHosts(extra: readonly string[] = []): string[] {
  const out = ['localhost', '127.0.0.1', '::1'];
  const machine = hostname().toLowerCase();
  if (machine !== '' && DNS_NAME.test(machine)) out.push(machine);
  for (const host of extra) {
    const h = isIP(host) === 0 ? host.toLowerCase() : host;
    if (!out.includes(h)) out.push(h);
  }
  return out;
}

function needsRenewal(
  pair: { certPem: string | undefined; keyPem: string | undefined },
  caCertPem: string,
  check: (cert: NodeX509Certificate) => boolean,
): boolean {
  if (pair.certPem === undefined || pair.keyPem === undefined) return true;
  try {
    const cert = new NodeX509Certificate(pair.certPem);
    if (cert.validToDate.getTime() - Date.now() < RENEW_BEFORE_DAYS * DAY_MS) return true;
    if (!isIssuedBy(pair.certPem, caCertPem)) return true;
    if (!cert.checkPrivateKey(createPrivateKey(pair.keyPem))) return true;
    return !check(cert);
  } catch {
    // An unreadable leaf is replaced; only the CA is precious.
    return true;
  }
}

async function tightenKeyMode(path: string): Promise<void> {
  const info = await stat(path);
  if ((info.mode & 0o077) !== 0) await chmod(path, 0o600);
}

/**
 * Loads the server PKI from `dir`, creating what is missing. The CA is created once and never
 * regenerated while ca.crt or ca.key exists (joined nodes pin it). Server and admin certificates are
 * re-issued when missing, unreadable, expiring within 30 days, not issued by the CA, or (server) not
 * covering every requested host.
 */
export async function loadOrCreateServerPki(
  dir: string,
  options: { hosts?: readonly string[] } = {},
): Promise<ServerPki> {
  const hosts = serverHosts(options.hosts ?? []);
  for (const host of hosts) if (isIP(host) === 0) checkDnsName(host);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = (name: string): string => join(dir, name);
  const issued: ServerPki['issued'] = [];

  let caCertPem = await readIfExists(path(PKI_FILES.caCert));
  let caKeyPem = await readIfExists(path(PKI_FILES.caKey));
  if (caCertPem === undefined && caKeyPem === undefined) {
    const ca = await createCA({ commonName: `kedge-ca@${Math.floor(Date.now() / 1000)}` });
    await writeFileAtomic(path(PKI_FILES.caKey), ca.keyPem, 0o600);
    await writeFileAtomic(path(PKI_FILES.caCert), ca.certPem, 0o644);
    caCertPem = ca.certPem;
    caKeyPem = ca.keyPem;
    issued.push('ca');
  } else if (caCertPem === undefined || caKeyPem === undefined) {
    const missing = caCertPem === undefined ? PKI_FILES.caCert : PKI_FILES.caKey;
    throw pkiError(
      `The CA in ${dir} is incomplete: ${missing} is missing; restore it (refusing to create a new CA)`,
      {
        dir,
        missing,
      },
    );
  } else {
    await tightenKeyMode(path(PKI_FILES.caKey));
    const caCert = parseNodeCertificate(caCertPem, `CA certificate ${path(PKI_FILES.caCert)}`);
    if (!caCert.ca) throw pkiError(`The certificate ${path(PKI_FILES.caCert)} is not a CA`);
    if (!caCert.checkPrivateKey(parsePrivateKey(caKeyPem, `CA key ${path(PKI_FILES.caKey)}`))) {
      throw pkiError(`The CA key ${path(PKI_FILES.caKey)} does not belong to ${path(PKI_FILES.caCert)}`, {
        dir,
      });
    }
  }
  const ca: CertKeyPair = { certPem: caCertPem, keyPem: caKeyPem };

  const loadLeaf = async (
    certFile: string,
    keyFile: string,
    kind: 'server' | 'admin',
    check: (cert: NodeX509Certificate) => boolean,
    issue: () => Promise<{ certPem: string; keyPem?: string }>,
  ): Promise<CertKeyPair> => {
    const certPem = await readIfExists(path(certFile));
    const keyPem = await readIfExists(path(keyFile));
    if (
      certPem !== undefined &&
      keyPem !== undefined &&
      !needsRenewal({ certPem, keyPem }, ca.certPem, check)
    ) {
      await tightenKeyMode(path(keyFile));
      return { certPem, keyPem };
    }
    const fresh = await issue();
    const freshKey = fresh.keyPem ?? '';
    await writeFileAtomic(path(keyFile), freshKey, 0o600);
    await writeFileAtomic(path(certFile), fresh.certPem, 0o644);
    issued.push(kind);
    return { certPem: fresh.certPem, keyPem: freshKey };
  };

  const server = await loadLeaf(
    PKI_FILES.serverCert,
    PKI_FILES.serverKey,
    'server',
    (cert) =>
      hosts.every((h) =>
        isIP(h) === 0 ? cert.checkHost(h, { subject: 'never' }) !== undefined : cert.checkIP(h) !== undefined,
      ),
    () =>
      issueCertificate(ca, {
        commonName: 'kedge-server',
        usage: 'server',
        dnsNames: hosts.filter((h) => isIP(h) === 0),
        ipAddresses: hosts.filter((h) => isIP(h) !== 0),
      }),
  );
  const admin = await loadLeaf(
    PKI_FILES.adminCert,
    PKI_FILES.adminKey,
    'admin',
    () => true,
    () =>
      issueCertificate(ca, { commonName: 'kedge-admin', organizations: ['system:masters'], usage: 'client' }),
  );
  return { dir, ca, server, admin, caHash: caHash(ca.certPem), hosts, issued };
}
