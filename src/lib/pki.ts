/**
 * PKI for the server and agents: a cluster CA, server and client certificates, CSR signing. ECDSA P-256, PEM.
 * node:crypto does all the cryptography (keys, signing, verifying); the certificate and request structures
 * are built and read with the small DER codec in der.ts, so no ASN.1 library is loaded, on the join path or
 * anywhere else.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  X509Certificate as NodeX509Certificate,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as der from './der.ts';
import { KedgeError } from './errors.ts';
import { readIfExists, writeFileAtomic } from './files.ts';

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

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  ecPublicKey: '1.2.840.10045.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  ecdsaSha512: '1.2.840.10045.4.3.4',
  rsaSha256: '1.2.840.113549.1.1.11',
  rsaSha384: '1.2.840.113549.1.1.12',
  rsaSha512: '1.2.840.113549.1.1.13',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** Signature algorithms a CSR may be signed with: the key type they need and the hash. */
const SIGNATURE_ALGORITHMS: Readonly<Record<string, { keyType: 'ec' | 'rsa'; hash: string }>> = {
  [OID.ecdsaSha256]: { keyType: 'ec', hash: 'sha256' },
  [OID.ecdsaSha384]: { keyType: 'ec', hash: 'sha384' },
  [OID.ecdsaSha512]: { keyType: 'ec', hash: 'sha512' },
  [OID.rsaSha256]: { keyType: 'rsa', hash: 'sha256' },
  [OID.rsaSha384]: { keyType: 'rsa', hash: 'sha384' },
  [OID.rsaSha512]: { keyType: 'rsa', hash: 'sha512' },
};

// keyUsage bit numbers (RFC 5280 4.2.1.3).
const KU = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

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
  if (isIP(ip) === 0 || ip.includes('%')) {
    throw pkiError(`IP address ${JSON.stringify(ip)} is not valid`, { ipAddress: ip });
  }
  return ip;
}

/** The 4 or 16 bytes of an address checkIpAddress accepted (an iPAddress GeneralName). */
function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  let text = ip;
  const tail: number[] = [];
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (v4 !== null) {
    text = `${v4[1]}0:0`;
    tail.push(...(v4[2] ?? '').split('.').map(Number));
  }
  const [head = '', rest] = text.split('::');
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const fill = rest === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  const all = [...left, ...fill, ...right];
  const out = Buffer.alloc(16);
  for (const [i, g] of all.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  if (tail.length === 4) out.set(tail, 12);
  return out;
}

/** A distinguished name: one RDN per organization, then CN (the order kedge always used). */
function encodeName(commonName: string, organizations: readonly string[] = []): Buffer {
  checkNameValue('commonName', commonName);
  for (const o of organizations) checkNameValue('organization', o);
  const rdn = (type: string, value: string): Buffer =>
    der.setOf(der.sequence(der.oid(type), der.utf8String(value)));
  return der.sequence(...organizations.map((o) => rdn(OID.organization, o)), rdn(OID.commonName, commonName));
}

/** The CN and O values of a DER Name (every RDN, multi-valued ones included). */
function readName(node: der.DerNode | undefined, what: string): { cn: string[]; o: string[] } {
  const name = der.expect(node, der.TAG.SEQUENCE, what);
  const out = { cn: [] as string[], o: [] as string[] };
  for (const rdn of name.children) {
    der.expect(rdn, der.TAG.SET, `${what} RDN`);
    for (const atv of rdn.children) {
      const [type, value] = der.expectChildren(
        der.expect(atv, der.TAG.SEQUENCE, `${what} attribute`),
        2,
        2,
        `${what} attribute`,
      );
      const oid = der.readOid(type, `${what} attribute type`);
      if (oid === OID.commonName) out.cn.push(der.readString(value, `${what} CN`));
      else if (oid === OID.organization) out.o.push(der.readString(value, `${what} O`));
    }
  }
  return out;
}

function randomSerial(): Buffer {
  const bytes = randomBytes(16);
  // Positive, and no leading zero byte that DER would strip.
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes;
}

function toPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** The DER inside the first PEM block with this label; strict base64. */
function fromPem(pem: string, label: string, what: string): Buffer {
  const match = new RegExp(`-----BEGIN ${label}-----([^-]*)-----END ${label}-----`).exec(pem);
  const body = match?.[1]?.replace(/\s+/g, '') ?? '';
  if (match === null || !/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0 || body.length === 0) {
    throw pkiError(`The ${what} is not valid PEM (${label})`);
  }
  return Buffer.from(body, 'base64');
}

function newKeyPair(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

function privateKeyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
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

const CURVE_HASH: Readonly<Record<string, { hash: string; oid: string }>> = {
  prime256v1: { hash: 'sha256', oid: OID.ecdsaSha256 },
  secp384r1: { hash: 'sha384', oid: OID.ecdsaSha384 },
};

interface SigningAlgorithm {
  /** node:crypto digest name. */
  hash: string;
  /** The DER AlgorithmIdentifier of the signature. */
  algorithmId: Buffer;
  keyType: 'ec' | 'rsa';
}

/** How a key signs (or a public key is checked), or a KEDGE_PKI_INVALID for kinds kedge does not use. */
function keyAlgorithm(key: KeyObject, what: string): SigningAlgorithm {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const named = CURVE_HASH[key.asymmetricKeyDetails?.namedCurve ?? ''];
    if (named !== undefined) {
      return { hash: named.hash, algorithmId: der.sequence(der.oid(named.oid)), keyType: 'ec' };
    }
  } else if (type === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) {
    return {
      hash: 'sha256',
      algorithmId: der.sequence(der.oid(OID.rsaSha256), der.nullValue()),
      keyType: 'rsa',
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

/** SubjectPublicKeyInfo DER and its key identifier (SHA-1 of the subjectPublicKey bits, RFC 5280 method 1). */
function publicKeyInfo(
  key: KeyObject,
  spki: Buffer = key.export({ type: 'spki', format: 'der' }),
): { spki: Buffer; keyId: Buffer } {
  const [, bits] = der.decode(spki).children;
  const keyId = createHash('sha1').update(der.readBitStringBytes(bits, 'subjectPublicKey')).digest();
  return { spki, keyId };
}

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  return der.sequence(der.oid(oid), ...(critical ? [der.boolean(true)] : []), der.octetString(value));
}

/** Builds the TBSCertificate, signs it with node:crypto and returns the certificate PEM. */
function buildCertificate(options: {
  issuer: Buffer;
  subject: Buffer;
  spki: Buffer;
  notBefore: Date;
  notAfter: Date;
  extensions: Buffer[];
  signingKey: KeyObject;
  algorithm: SigningAlgorithm;
}): string {
  const tbs = der.sequence(
    der.explicit(0, der.integer(2)), // v3
    der.integer(randomSerial()),
    options.algorithm.algorithmId,
    options.issuer,
    der.sequence(der.time(options.notBefore), der.time(options.notAfter)),
    options.subject,
    options.spki,
    der.explicit(3, der.sequence(...options.extensions)),
  );
  const signature = sign(options.algorithm.hash, tbs, options.signingKey);
  return toPem(der.sequence(tbs, options.algorithm.algorithmId, der.bitString(signature)), 'CERTIFICATE');
}

/** Creates a self-signed CA (CA:true, keyCertSign and cRLSign) with a new P-256 key. */
export async function createCA(options: CreateCAOptions): Promise<CertKeyPair> {
  const days = checkValidityDays(options.validityDays, 3650);
  const name = encodeName(options.commonName);
  const keys = newKeyPair();
  const { spki, keyId } = publicKeyInfo(keys.publicKey);
  const now = Date.now();
  const certPem = buildCertificate({
    issuer: name,
    subject: name,
    spki,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + days * DAY_MS),
    extensions: [
      extension(OID.basicConstraints, true, der.sequence(der.boolean(true))),
      extension(OID.keyUsage, true, der.namedBits([KU.digitalSignature, KU.keyCertSign, KU.cRLSign])),
      extension(OID.subjectKeyIdentifier, false, der.octetString(keyId)),
    ],
    signingKey: keys.privateKey,
    algorithm: keyAlgorithm(keys.privateKey, 'CA key'),
  });
  return { certPem, keyPem: privateKeyPem(keys.privateKey) };
}

function extendedUsages(usage: CertUsage): string[] {
  switch (usage) {
    case 'server':
      return [OID.serverAuth];
    case 'client':
      return [OID.clientAuth];
    case 'both':
      return [OID.serverAuth, OID.clientAuth];
    default:
      throw pkiError(`Certificate usage must be server, client or both, got ${JSON.stringify(usage)}`, {
        usage,
      });
  }
}

/** What signing needs from a CA, read once per CA (a server signs every join with the same one). */
interface CaContext {
  key: KeyObject;
  algorithm: SigningAlgorithm;
  /** The CA certificate's subject Name, byte for byte: the issuer of what it signs. */
  subject: Buffer;
  /** The CA's subjectKeyIdentifier (or one computed from its key): the authorityKeyIdentifier of leaves. */
  keyId: Buffer;
  notAfter: number;
}

const caCache = new Map<string, CaContext>();
const CA_CACHE_SIZE = 4;

function caContext(ca: CertKeyPair): CaContext {
  const cacheKey = `${ca.certPem}\u0000${ca.keyPem}`;
  const cached = caCache.get(cacheKey);
  if (cached !== undefined) return cached;
  const cert = parseNodeCertificate(ca.certPem, 'CA certificate');
  if (!cert.ca) throw pkiError('The CA certificate is not a CA (basicConstraints CA:false)');
  const key = parsePrivateKey(ca.keyPem, 'CA key');
  const algorithm = keyAlgorithm(key, 'CA key');
  if (!cert.checkPrivateKey(key)) throw pkiError('The CA key does not belong to the CA certificate');
  let subject: Buffer;
  let keyId: Buffer | undefined;
  try {
    const [tbs] = der.decode(cert.raw).children;
    const fields = der.expect(tbs, der.TAG.SEQUENCE, 'CA tbsCertificate').children;
    const base = fields[0]?.tag === 0xa0 ? 1 : 0;
    subject = Buffer.from(der.expect(fields[base + 4], der.TAG.SEQUENCE, 'CA subject').raw);
    const extensions = fields.find((f) => f.tag === 0xa3)?.children[0]?.children ?? [];
    for (const ext of extensions) {
      if (der.readOid(ext.children[0], 'CA extension id') !== OID.subjectKeyIdentifier) continue;
      const value = der.readOctetString(ext.children[ext.children.length - 1], 'CA subjectKeyIdentifier');
      keyId = Buffer.from(der.readOctetString(der.decode(value), 'CA subjectKeyIdentifier'));
    }
  } catch (err) {
    throw pkiError(`The CA certificate cannot be read: ${causeText(err)}`, {}, err);
  }
  keyId ??= publicKeyInfo(cert.publicKey).keyId;
  const context: CaContext = { key, algorithm, subject, keyId, notAfter: cert.validToDate.getTime() };
  if (caCache.size >= CA_CACHE_SIZE) caCache.delete(caCache.keys().next().value ?? '');
  caCache.set(cacheKey, context);
  return context;
}

function signCertificate(
  ca: CertKeyPair,
  subject: Buffer,
  publicKey: KeyObject,
  /** The key's SubjectPublicKeyInfo DER when the caller has it already (a CSR carries it). */
  spkiDer: Buffer | undefined,
  options: {
    usage: CertUsage;
    dnsNames: readonly string[];
    ipAddresses: readonly string[];
    validityDays: number;
  },
): string {
  const issuer = caContext(ca);
  const ekus = extendedUsages(options.usage);
  const dnsNames = options.dnsNames.map(checkDnsName);
  const ipAddresses = options.ipAddresses.map(checkIpAddress);
  const subjectKey = keyAlgorithm(publicKey, 'public key');
  const { spki, keyId } = publicKeyInfo(publicKey, spkiDer);
  const now = Date.now();
  const notAfter = Math.min(now + options.validityDays * DAY_MS, issuer.notAfter);
  const extensions = [
    extension(OID.basicConstraints, true, der.sequence()),
    // keyEncipherment only matters for RSA key exchange; ECDSA keys only sign.
    extension(
      OID.keyUsage,
      true,
      der.namedBits(
        subjectKey.keyType === 'ec' ? [KU.digitalSignature] : [KU.digitalSignature, KU.keyEncipherment],
      ),
    ),
    extension(OID.extKeyUsage, false, der.sequence(...ekus.map((o) => der.oid(o)))),
    extension(OID.subjectKeyIdentifier, false, der.octetString(keyId)),
    extension(OID.authorityKeyIdentifier, false, der.sequence(der.implicitPrimitive(0, issuer.keyId))),
  ];
  if (dnsNames.length > 0 || ipAddresses.length > 0) {
    extensions.push(
      extension(
        OID.subjectAltName,
        false,
        der.sequence(
          ...dnsNames.map((n) => der.implicitPrimitive(2, Buffer.from(n, 'latin1'))),
          ...ipAddresses.map((ip) => der.implicitPrimitive(7, ipBytes(ip))),
        ),
      ),
    );
  }
  return buildCertificate({
    issuer: issuer.subject,
    subject,
    spki,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(notAfter),
    extensions,
    signingKey: issuer.key,
    algorithm: issuer.algorithm,
  });
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
  const subject = encodeName(options.commonName, options.organizations);
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
    return { certPem: signCertificate(ca, subject, keyObject, undefined, signOptions) };
  }
  const keys = newKeyPair();
  const certPem = signCertificate(ca, subject, keys.publicKey, undefined, signOptions);
  return { certPem, keyPem: privateKeyPem(keys.privateKey) };
}

/** Creates a PKCS#10 certificate request and its new P-256 key (what an agent sends to join). */
export async function createCsr(options: {
  commonName: string;
  organizations?: readonly string[];
}): Promise<{ csrPem: string; keyPem: string }> {
  const name = encodeName(options.commonName, options.organizations);
  const keys = newKeyPair();
  const info = der.sequence(
    der.integer(0),
    name,
    keys.publicKey.export({ type: 'spki', format: 'der' }),
    der.explicit(0, Buffer.alloc(0)), // attributes: none
  );
  const signature = sign('sha256', info, keys.privateKey);
  const csr = der.sequence(info, der.sequence(der.oid(OID.ecdsaSha256)), der.bitString(signature));
  return { csrPem: toPem(csr, 'CERTIFICATE REQUEST'), keyPem: privateKeyPem(keys.privateKey) };
}

/** A PKCS#10 request read and its self-signature checked; the subject's CN and O values. */
function readCsr(csrDer: Buffer): { cn: string[]; o: string[]; publicKey: KeyObject; spki: Buffer } {
  let info: der.DerNode;
  let signatureAlgorithm: string;
  let signature: Buffer;
  let name: { cn: string[]; o: string[] };
  let spki: der.DerNode;
  try {
    const root = der.expect(der.decode(csrDer), der.TAG.SEQUENCE, 'CertificationRequest');
    const [infoNode, algNode, sigNode] = der.expectChildren(root, 3, 3, 'CertificationRequest');
    info = der.expect(infoNode, der.TAG.SEQUENCE, 'certificationRequestInfo');
    const fields = der.expectChildren(info, 3, 4, 'certificationRequestInfo');
    const version = der.readInteger(fields[0], 'CSR version');
    if (version !== 0n) throw der.derError(`CSR version is ${version}, expected 0 (v1)`);
    name = readName(fields[1], 'CSR subject');
    spki = der.expect(fields[2], der.TAG.SEQUENCE, 'CSR subjectPublicKeyInfo');
    if (fields[3] !== undefined) der.expect(fields[3], 0xa0, 'CSR attributes');
    const alg = der.expectChildren(
      der.expect(algNode, der.TAG.SEQUENCE, 'CSR signatureAlgorithm'),
      1,
      2,
      'CSR signatureAlgorithm',
    );
    signatureAlgorithm = der.readOid(alg[0], 'CSR signature algorithm');
    if (alg[1] !== undefined) der.readNull(alg[1], 'CSR signature algorithm parameters');
    signature = der.readBitStringBytes(sigNode, 'CSR signature');
  } catch (err) {
    throw pkiError(`The CSR cannot be parsed: ${causeText(err)}`, {}, err);
  }
  const algorithm = SIGNATURE_ALGORITHMS[signatureAlgorithm];
  if (algorithm === undefined) {
    throw pkiError(`The CSR signature algorithm ${signatureAlgorithm} is not supported`, {
      signatureAlgorithm,
    });
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spki.raw, format: 'der', type: 'spki' });
  } catch (err) {
    throw pkiError(`The CSR public key cannot be read: ${causeText(err)}`, {}, err);
  }
  if (publicKey.asymmetricKeyType !== algorithm.keyType) {
    throw pkiError(
      `The CSR is signed with ${signatureAlgorithm} but its key is ${publicKey.asymmetricKeyType ?? 'unknown'}`,
    );
  }
  let valid = false;
  try {
    valid = verify(algorithm.hash, info.raw, publicKey, signature);
  } catch (err) {
    throw pkiError(`The CSR signature cannot be checked: ${causeText(err)}`, {}, err);
  }
  if (!valid) throw pkiError('The CSR signature does not match its public key');
  return { ...name, publicKey, spki: Buffer.from(spki.raw) };
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
  const csr = readCsr(fromPem(csrPem, 'CERTIFICATE REQUEST', 'CSR'));
  const cns = csr.cn;
  const orgs = csr.o;
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
  keyAlgorithm(csr.publicKey, 'CSR public key');
  return signCertificate(ca, encodeName(options.commonName, wantOrgs), csr.publicKey, csr.spki, {
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
