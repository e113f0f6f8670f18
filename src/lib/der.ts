/**
 * A small, strict DER (ASN.1 Distinguished Encoding Rules) encoder and decoder: exactly the types kedge's
 * certificates and certificate requests use. Decoding refuses anything that is not canonical DER
 * (indefinite or non-minimal lengths, high tag numbers, non-minimal integers, trailing bytes) with a
 * KEDGE_PKI_INVALID error saying what and where.
 */
import { KedgeError } from './errors.ts';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Nesting deeper than this is refused (kedge's structures need 8). */
const MAX_DEPTH = 32;

export function derError(message: string, context: Record<string, unknown> = {}): KedgeError {
  return new KedgeError('KEDGE_PKI_INVALID', message, { context });
}

// ---------------------------------------------------------------------------------------------------------
// Encoding

function lengthBytes(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let l = length; l > 0; l = Math.floor(l / 256)) bytes.unshift(l & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV: a single-byte tag (class, constructed bit and number < 31) and its content. */
export function tlv(tag: number, content: Uint8Array): Buffer {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xff || (tag & 0x1f) === 0x1f) {
    throw derError(`DER tag ${tag} cannot be encoded in one byte`, { tag });
  }
  return Buffer.concat([Buffer.from([tag]), lengthBytes(content.length), content]);
}

export const sequence = (...items: Uint8Array[]): Buffer => tlv(TAG.SEQUENCE, Buffer.concat(items));

/** A SET OF: DER sorts the encoded elements. */
export const setOf = (...items: Uint8Array[]): Buffer =>
  tlv(TAG.SET, Buffer.concat([...items].sort((a, b) => Buffer.compare(a, b))));

export const boolean = (value: boolean): Buffer => tlv(TAG.BOOLEAN, Buffer.from([value ? 0xff : 0x00]));

export const nullValue = (): Buffer => tlv(TAG.NULL, Buffer.alloc(0));

/** An INTEGER from a non-negative bigint or an unsigned big-endian magnitude. */
export function integer(value: bigint | number | Uint8Array): Buffer {
  let bytes: Buffer;
  if (typeof value === 'number' || typeof value === 'bigint') {
    let v = BigInt(value);
    if (v < 0n) throw derError(`Negative INTEGER ${v} is not supported`);
    const out: number[] = [];
    do {
      out.unshift(Number(v & 0xffn));
      v >>= 8n;
    } while (v > 0n);
    bytes = Buffer.from(out);
  } else {
    let start = 0;
    while (start < value.length - 1 && value[start] === 0) start++;
    bytes = Buffer.from(value.length === 0 ? [0] : value.subarray(start));
  }
  // A set top bit would read as negative: prefix a zero byte.
  if (((bytes[0] ?? 0) & 0x80) !== 0) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(TAG.INTEGER, bytes);
}

// kedge encodes the same few OIDs for every certificate; remember their encodings.
const oidCache = new Map<string, Buffer>();

export function oid(dotted: string): Buffer {
  const cached = oidCache.get(dotted);
  if (cached !== undefined) return Buffer.from(cached);
  const encoded = encodeOid(dotted);
  if (oidCache.size < 64) oidCache.set(dotted, Buffer.from(encoded));
  return encoded;
}

function encodeOid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => {
    if (!/^(0|[1-9][0-9]*)$/.test(a)) throw derError(`OID ${JSON.stringify(dotted)} is malformed`);
    return BigInt(a);
  });
  const [first, second, ...rest] = arcs;
  if (first === undefined || second === undefined || first > 2n || (first < 2n && second > 39n)) {
    throw derError(`OID ${JSON.stringify(dotted)} is malformed`);
  }
  const out: number[] = [];
  for (const arc of [first * 40n + second, ...rest]) {
    const group: number[] = [];
    let v = arc;
    do {
      group.unshift(Number(v & 0x7fn) | (group.length === 0 ? 0 : 0x80));
      v >>= 7n;
    } while (v > 0n);
    out.push(...group);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

export const octetString = (bytes: Uint8Array): Buffer => tlv(TAG.OCTET_STRING, bytes);

/** A BIT STRING of whole bytes (keys, signatures). */
export const bitString = (bytes: Uint8Array): Buffer =>
  tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), bytes]));

/**
 * A named-bit BIT STRING (keyUsage): bit 0 is the most significant bit of the first byte. DER drops
 * trailing zero bits.
 */
export function namedBits(bits: readonly number[]): Buffer {
  const highest = Math.max(-1, ...bits);
  const bytes = Buffer.alloc(Math.ceil((highest + 1) / 8));
  for (const bit of bits) bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) | (0x80 >> (bit & 7));
  const unused = highest < 0 ? 0 : 7 - (highest & 7);
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([unused]), bytes]));
}

export const utf8String = (value: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(value, 'utf8'));

export function ia5String(value: string): Buffer {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: IA5 is 7-bit ASCII, control characters included
  if (!/^[\u0000-\u007f]*$/.test(value)) throw derError(`${JSON.stringify(value)} is not an IA5String`);
  return tlv(TAG.IA5_STRING, Buffer.from(value, 'latin1'));
}

/** Certificate validity time: UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5). */
export function time(date: Date): Buffer {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw derError('Invalid date');
  const iso = new Date(Math.floor(ms / 1000) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw derError(`Year ${year} cannot be encoded`);
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  if (year >= 1950 && year < 2050) return tlv(TAG.UTC_TIME, Buffer.from(`${digits.slice(2)}Z`, 'latin1'));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(`${digits}Z`, 'latin1'));
}

/** [n] EXPLICIT: a constructed context-specific wrapper around one encoded value. */
export const explicit = (n: number, inner: Uint8Array): Buffer => tlv(0xa0 | n, inner);

/** [n] IMPLICIT of a primitive type: the content bytes under a context-specific tag. */
export const implicitPrimitive = (n: number, content: Uint8Array): Buffer => tlv(0x80 | n, content);

// ---------------------------------------------------------------------------------------------------------
// Decoding

export interface DerNode {
  /** The identifier byte (class, constructed bit, number). */
  tag: number;
  /** The whole TLV (a view into the input). */
  raw: Buffer;
  /** The content bytes (a view into the input). */
  content: Buffer;
  /** Offset of the TLV in the outermost input, for error messages. */
  offset: number;
  /** The decoded children, for constructed tags. */
  children: DerNode[];
}

function tagName(tag: number): string {
  const names: Record<number, string> = {
    [TAG.BOOLEAN]: 'BOOLEAN',
    [TAG.INTEGER]: 'INTEGER',
    [TAG.BIT_STRING]: 'BIT STRING',
    [TAG.OCTET_STRING]: 'OCTET STRING',
    [TAG.NULL]: 'NULL',
    [TAG.OID]: 'OBJECT IDENTIFIER',
    [TAG.UTF8_STRING]: 'UTF8String',
    [TAG.PRINTABLE_STRING]: 'PrintableString',
    [TAG.IA5_STRING]: 'IA5String',
    [TAG.UTC_TIME]: 'UTCTime',
    [TAG.GENERALIZED_TIME]: 'GeneralizedTime',
    [TAG.SEQUENCE]: 'SEQUENCE',
    [TAG.SET]: 'SET',
  };
  const name = names[tag];
  if (name !== undefined) return name;
  if ((tag & 0xc0) === 0x80) return `[${tag & 0x1f}]${(tag & 0x20) !== 0 ? ' constructed' : ''}`;
  return `tag 0x${tag.toString(16).padStart(2, '0')}`;
}

function readNode(buf: Buffer, offset: number, end: number, base: number, depth: number): DerNode {
  if (depth > MAX_DEPTH)
    throw derError(`DER nested deeper than ${MAX_DEPTH} levels at byte ${base + offset}`);
  const at = base + offset;
  if (offset >= end) throw derError(`DER truncated: expected a tag at byte ${at}`, { offset: at });
  const tag = buf[offset] ?? 0;
  if ((tag & 0x1f) === 0x1f)
    throw derError(`DER high tag number at byte ${at} is not supported`, { offset: at });
  if (offset + 1 >= end) throw derError(`DER truncated: expected a length at byte ${at + 1}`, { offset: at });
  const first = buf[offset + 1] ?? 0;
  let length: number;
  let header: number;
  if (first < 0x80) {
    length = first;
    header = 2;
  } else if (first === 0x80) {
    throw derError(`DER indefinite length at byte ${at + 1} is not allowed`, { offset: at });
  } else {
    const count = first & 0x7f;
    if (count > 4)
      throw derError(`DER length of ${count} bytes at byte ${at + 1} is too large`, { offset: at });
    if (offset + 2 + count > end) {
      throw derError(`DER truncated: length bytes at byte ${at + 1} run past the end`, { offset: at });
    }
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (buf[offset + 2 + i] ?? 0);
    if ((buf[offset + 2] ?? 0) === 0 || length < 0x80) {
      throw derError(`DER length at byte ${at + 1} is not minimally encoded`, { offset: at });
    }
    header = 2 + count;
  }
  const contentStart = offset + header;
  if (contentStart + length > end) {
    throw derError(
      `DER truncated: ${tagName(tag)} at byte ${at} needs ${length} content bytes, ${end - contentStart} remain`,
      { offset: at },
    );
  }
  const node: DerNode = {
    tag,
    raw: buf.subarray(offset, contentStart + length),
    content: buf.subarray(contentStart, contentStart + length),
    offset: at,
    children: [],
  };
  if ((tag & 0x20) !== 0) {
    let pos = contentStart;
    while (pos < contentStart + length) {
      const child = readNode(buf, pos, contentStart + length, base, depth + 1);
      node.children.push(child);
      pos += child.raw.length;
    }
  }
  return node;
}

/** Decodes exactly one DER value filling all of `input`; constructed values are decoded recursively. */
export function decode(input: Uint8Array): DerNode {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const node = readNode(buf, 0, buf.length, 0, 0);
  if (node.raw.length !== buf.length) {
    throw derError(`DER has ${buf.length - node.raw.length} trailing bytes after byte ${node.raw.length}`, {
      trailing: buf.length - node.raw.length,
    });
  }
  return node;
}

/** Checks a node's tag; `what` names the field in the error. */
export function expect(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (node === undefined) throw derError(`${what} is missing (expected ${tagName(tag)})`);
  if (node.tag !== tag) {
    throw derError(`${what} at byte ${node.offset} is a ${tagName(node.tag)}, expected ${tagName(tag)}`, {
      offset: node.offset,
    });
  }
  return node;
}

/** A SEQUENCE (or other constructed node) with exactly `min`..`max` children. */
export function expectChildren(node: DerNode, min: number, max: number, what: string): DerNode[] {
  const n = node.children.length;
  if (n < min || n > max) {
    const want = min === max ? `${min}` : `${min} to ${max}`;
    throw derError(`${what} at byte ${node.offset} has ${n} elements, expected ${want}`, {
      offset: node.offset,
    });
  }
  return node.children;
}

export function readBoolean(node: DerNode | undefined, what: string): boolean {
  const n = expect(node, TAG.BOOLEAN, what);
  if (n.content.length !== 1 || (n.content[0] !== 0 && n.content[0] !== 0xff)) {
    throw derError(`${what} at byte ${n.offset} is not a DER BOOLEAN (one byte, 00 or ff)`, {
      offset: n.offset,
    });
  }
  return n.content[0] === 0xff;
}

/** A non-negative INTEGER as a bigint (negative integers are refused: kedge never uses them). */
export function readInteger(node: DerNode | undefined, what: string): bigint {
  const n = expect(node, TAG.INTEGER, what);
  const c = n.content;
  if (c.length === 0) throw derError(`${what} at byte ${n.offset} is an empty INTEGER`, { offset: n.offset });
  if (
    c.length > 1 &&
    ((c[0] === 0 && ((c[1] ?? 0) & 0x80) === 0) || (c[0] === 0xff && ((c[1] ?? 0) & 0x80) !== 0))
  ) {
    throw derError(`${what} at byte ${n.offset} is not a minimally encoded INTEGER`, { offset: n.offset });
  }
  if (((c[0] ?? 0) & 0x80) !== 0)
    throw derError(`${what} at byte ${n.offset} is negative`, { offset: n.offset });
  return c.length === 0 ? 0n : BigInt(`0x${c.toString('hex')}`);
}

export function readNull(node: DerNode | undefined, what: string): void {
  const n = expect(node, TAG.NULL, what);
  if (n.content.length !== 0)
    throw derError(`${what} at byte ${n.offset} is a NULL with content`, { offset: n.offset });
}

export function readOid(node: DerNode | undefined, what: string): string {
  const n = expect(node, TAG.OID, what);
  const c = n.content;
  if (c.length === 0)
    throw derError(`${what} at byte ${n.offset} is an empty OBJECT IDENTIFIER`, { offset: n.offset });
  const arcs: bigint[] = [];
  let value = 0n;
  let fresh = true;
  for (let i = 0; i < c.length; i++) {
    const byte = c[i] ?? 0;
    if (fresh && byte === 0x80) {
      throw derError(`${what} at byte ${n.offset} has a non-minimal OBJECT IDENTIFIER arc`, {
        offset: n.offset,
      });
    }
    value = (value << 7n) | BigInt(byte & 0x7f);
    fresh = (byte & 0x80) === 0;
    if (fresh) {
      arcs.push(value);
      value = 0n;
    }
  }
  if (!fresh)
    throw derError(`${what} at byte ${n.offset} has a truncated OBJECT IDENTIFIER`, { offset: n.offset });
  const head = arcs[0] ?? 0n;
  const [a, b] = head < 40n ? [0n, head] : head < 80n ? [1n, head - 40n] : [2n, head - 80n];
  return [a, b, ...arcs.slice(1)].join('.');
}

export function readOctetString(node: DerNode | undefined, what: string): Buffer {
  return expect(node, TAG.OCTET_STRING, what).content;
}

/** A BIT STRING of whole bytes (no unused bits), as its bytes. */
export function readBitStringBytes(node: DerNode | undefined, what: string): Buffer {
  const n = expect(node, TAG.BIT_STRING, what);
  if (n.content.length === 0)
    throw derError(`${what} at byte ${n.offset} is an empty BIT STRING`, { offset: n.offset });
  if (n.content[0] !== 0) {
    throw derError(`${what} at byte ${n.offset} has ${n.content[0]} unused bits, expected whole bytes`, {
      offset: n.offset,
    });
  }
  return n.content.subarray(1);
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** A directory string (UTF8String, PrintableString, IA5String or BMPString) as a JS string. */
export function readString(node: DerNode | undefined, what: string): string {
  if (node === undefined) throw derError(`${what} is missing (expected a string)`);
  const c = node.content;
  switch (node.tag) {
    case TAG.UTF8_STRING: {
      const text = c.toString('utf8');
      if (!Buffer.from(text, 'utf8').equals(c)) {
        throw derError(`${what} at byte ${node.offset} is not valid UTF-8`, { offset: node.offset });
      }
      return text;
    }
    case TAG.PRINTABLE_STRING: {
      const text = c.toString('latin1');
      if (!PRINTABLE.test(text)) {
        throw derError(`${what} at byte ${node.offset} holds characters a PrintableString may not`, {
          offset: node.offset,
        });
      }
      return text;
    }
    case TAG.IA5_STRING: {
      if (c.some((b) => b > 0x7f)) {
        throw derError(`${what} at byte ${node.offset} is not 7-bit ASCII (IA5String)`, {
          offset: node.offset,
        });
      }
      return c.toString('latin1');
    }
    case TAG.BMP_STRING: {
      if (c.length % 2 !== 0) throw derError(`${what} at byte ${node.offset} is an odd-length BMPString`);
      const swapped = Buffer.from(c);
      swapped.swap16();
      return swapped.toString('utf16le');
    }
    default:
      throw derError(`${what} at byte ${node.offset} is a ${tagName(node.tag)}, expected a string`, {
        offset: node.offset,
      });
  }
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), the DER forms RFC 5280 allows. */
export function readTime(node: DerNode | undefined, what: string): Date {
  if (node === undefined) throw derError(`${what} is missing (expected a time)`);
  const text = node.content.toString('latin1');
  let year: number;
  let rest: string;
  if (node.tag === TAG.UTC_TIME && /^\d{12}Z$/.test(text)) {
    const yy = Number(text.slice(0, 2));
    year = yy < 50 ? 2000 + yy : 1900 + yy;
    rest = text.slice(2);
  } else if (node.tag === TAG.GENERALIZED_TIME && /^\d{14}Z$/.test(text)) {
    year = Number(text.slice(0, 4));
    rest = text.slice(4);
  } else {
    throw derError(`${what} at byte ${node.offset} is not a DER UTCTime or GeneralizedTime`, {
      offset: node.offset,
    });
  }
  const [mo, d, h, mi, s] = [0, 2, 4, 6, 8].map((i) => Number(rest.slice(i, i + 2))) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const date = new Date(Date.UTC(year, mo - 1, d, h, mi, s));
  if (
    date.getUTCFullYear() !== year ||
    date.getUTCMonth() !== mo - 1 ||
    date.getUTCDate() !== d ||
    date.getUTCHours() !== h ||
    date.getUTCMinutes() !== mi ||
    date.getUTCSeconds() !== s
  ) {
    throw derError(`${what} at byte ${node.offset} is not a real date: ${text}`, { offset: node.offset });
  }
  return date;
}
