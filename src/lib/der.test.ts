import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import * as der from './der.ts';
import { isKedgeError } from './errors.ts';

const refused =
  (pattern: RegExp) =>
  (err: unknown): boolean =>
    isKedgeError(err, 'KEDGE_PKI_INVALID') && pattern.test((err as Error).message);

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ''), 'hex');

describe('DER encoding (known bytes)', () => {
  test('primitive types', () => {
    assert.deepEqual(der.integer(0), hex('020100'));
    assert.deepEqual(der.integer(127), hex('02017f'));
    assert.deepEqual(der.integer(128), hex('02020080'));
    assert.deepEqual(der.integer(hex('0000ff')), hex('020200ff'));
    assert.deepEqual(der.boolean(true), hex('0101ff'));
    assert.deepEqual(der.nullValue(), hex('0500'));
    // ecdsa-with-SHA256, prime256v1
    assert.deepEqual(der.oid('1.2.840.10045.4.3.2'), hex('06082a8648ce3d040302'));
    assert.deepEqual(der.oid('2.5.29.19'), hex('0603551d13'));
    assert.deepEqual(der.utf8String('é'), hex('0c02c3a9'));
    assert.deepEqual(der.bitString(hex('abcd')), hex('030300abcd'));
  });

  test('keyUsage named bits drop trailing zero bits', () => {
    assert.deepEqual(der.namedBits([0]), hex('03020780')); // digitalSignature
    assert.deepEqual(der.namedBits([0, 2]), hex('030205a0')); // + keyEncipherment
    assert.deepEqual(der.namedBits([0, 5, 6]), hex('03020186')); // + keyCertSign, cRLSign
    assert.deepEqual(der.namedBits([8]), hex('0303070080'));
  });

  test('long-form lengths', () => {
    assert.deepEqual(der.octetString(Buffer.alloc(127)).subarray(0, 2), hex('047f'));
    assert.deepEqual(der.octetString(Buffer.alloc(128)).subarray(0, 3), hex('048180'));
    assert.deepEqual(der.octetString(Buffer.alloc(256)).subarray(0, 4), hex('04820100'));
  });

  test('SET OF sorts its elements', () => {
    assert.deepEqual(der.setOf(der.integer(2), der.integer(1)), hex('3106 020101 020102'));
  });

  test('times: UTCTime until 2049, GeneralizedTime from 2050', () => {
    assert.equal(der.time(new Date('2026-11-23T14:05:09.750Z')).toString('latin1', 2), '261123140509Z');
    assert.equal(der.time(new Date('2050-01-01T00:00:00Z'))[0], der.TAG.GENERALIZED_TIME);
    assert.equal(der.time(new Date('2050-01-01T00:00:00Z')).toString('latin1', 2), '20500101000000Z');
  });
});

describe('DER round trips (property)', () => {
  test('INTEGER', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 300n) - 1n }), (v) => {
        assert.equal(der.readInteger(der.decode(der.integer(v)), 'n'), v);
      }),
    );
  });

  test('OBJECT IDENTIFIER', () => {
    const arc = fc.bigInt({ min: 0n, max: (1n << 70n) - 1n });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: 0, max: 39 }),
        fc.array(arc, { maxLength: 8 }),
        (a, b, rest) => {
          const dotted = [a, b, ...rest].join('.');
          assert.equal(der.readOid(der.decode(der.oid(dotted)), 'oid'), dotted);
        },
      ),
    );
  });

  test('strings, octets, booleans and times', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), (s) => {
        assert.equal(der.readString(der.decode(der.utf8String(s)), 's'), s);
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70000 }), (bytes) => {
        assert.deepEqual(der.readOctetString(der.decode(der.octetString(bytes)), 'o'), Buffer.from(bytes));
        assert.deepEqual(der.readBitStringBytes(der.decode(der.bitString(bytes)), 'b'), Buffer.from(bytes));
      }),
      { numRuns: 30 },
    );
    for (const v of [true, false]) assert.equal(der.readBoolean(der.decode(der.boolean(v)), 'b'), v);
    fc.assert(
      fc.property(
        fc.date({ min: new Date('1950-01-01Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }),
        (d) => {
          const whole = new Date(Math.floor(d.getTime() / 1000) * 1000);
          assert.equal(der.readTime(der.decode(der.time(d)), 't').getTime(), whole.getTime());
        },
      ),
    );
  });

  test('nested SEQUENCEs keep their children and raw bytes', () => {
    const leaf = fc.oneof(
      fc.bigInt({ min: 0n, max: 1n << 64n }).map((v) => der.integer(v)),
      fc.uint8Array({ maxLength: 200 }).map((b) => der.octetString(b)),
    );
    const tree = fc.letrec<{ node: Buffer }>((tie) => ({
      node: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        leaf,
        fc.array(tie('node'), { maxLength: 5 }).map((items) => der.sequence(...items)),
      ),
    })).node;
    fc.assert(
      fc.property(tree, (encoded) => {
        const node = der.decode(encoded);
        assert.deepEqual(node.raw, encoded);
        const rebuild = (n: der.DerNode): Buffer =>
          n.tag === der.TAG.SEQUENCE ? der.sequence(...n.children.map(rebuild)) : Buffer.from(n.raw);
        assert.deepEqual(rebuild(node), encoded);
      }),
    );
  });
});

describe('malformed DER is refused with a clear error', () => {
  test('truncated input, at every cut', () => {
    const value = der.sequence(
      der.integer(1n << 100n),
      der.octetString(Buffer.alloc(300, 7)),
      der.oid('1.2.3'),
    );
    for (let cut = 0; cut < value.length; cut++) {
      assert.throws(() => der.decode(value.subarray(0, cut)), refused(/truncated/), `cut at ${cut}`);
    }
  });

  test('trailing bytes', () => {
    assert.throws(() => der.decode(hex('020101 00')), refused(/1 trailing bytes/));
  });

  test('non-minimal, indefinite and oversized lengths', () => {
    assert.throws(() => der.decode(hex('04810100')), refused(/not minimally encoded/));
    assert.throws(() => der.decode(hex('0482000100')), refused(/not minimally encoded/));
    assert.throws(() => der.decode(hex('30800000')), refused(/indefinite length/));
    assert.throws(() => der.decode(hex('0485ffffffffff')), refused(/too large/));
  });

  test('high tag numbers and excessive nesting', () => {
    assert.throws(() => der.decode(hex('1f2200')), refused(/high tag number/));
    let deep = der.nullValue();
    for (let i = 0; i < 40; i++) deep = der.sequence(deep);
    assert.throws(() => der.decode(deep), refused(/nested deeper/));
  });

  test('wrong tags name the field and what was expected', () => {
    assert.throws(
      () => der.readInteger(der.decode(der.octetString(hex('01'))), 'serial'),
      refused(/serial at byte 0 is a OCTET STRING, expected INTEGER/),
    );
    assert.throws(() => der.readOid(undefined, 'algorithm'), refused(/algorithm is missing/));
    assert.throws(
      () => der.expectChildren(der.decode(der.sequence(der.integer(1))), 2, 2, 'pair'),
      refused(/pair at byte 0 has 1 elements, expected 2/),
    );
  });

  test('non-canonical values', () => {
    assert.throws(
      () => der.readInteger(der.decode(hex('02020001')), 'n'),
      refused(/minimally encoded INTEGER/),
    );
    assert.throws(() => der.readInteger(der.decode(hex('0200')), 'n'), refused(/empty INTEGER/));
    assert.throws(() => der.readInteger(der.decode(hex('020180')), 'n'), refused(/negative/));
    assert.throws(() => der.readBoolean(der.decode(hex('010101')), 'b'), refused(/not a DER BOOLEAN/));
    assert.throws(
      () => der.readOid(der.decode(hex('06022a81')), 'o'),
      refused(/truncated OBJECT IDENTIFIER/),
    );
    assert.throws(() => der.readOid(der.decode(hex('0603 2a 80 01')), 'o'), refused(/non-minimal/));
    assert.throws(() => der.readBitStringBytes(der.decode(hex('030203ff')), 'k'), refused(/3 unused bits/));
    assert.throws(() => der.readString(der.decode(hex('0c02c328')), 's'), refused(/not valid UTF-8/));
    assert.throws(() => der.readString(der.decode(hex('130140')), 's'), refused(/PrintableString/));
    assert.throws(
      () => der.readTime(der.decode(hex('170d 3236313332333030303030305a')), 't'),
      refused(/not a real date/),
    );
    assert.throws(
      () => der.readTime(der.decode(hex('170b 323631313233303030305a')), 't'),
      refused(/not a DER UTCTime/),
    );
  });

  test('random bytes never crash with anything but a KEDGE_PKI_INVALID', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          der.decode(bytes);
        } catch (err) {
          assert.ok(isKedgeError(err, 'KEDGE_PKI_INVALID'), String(err));
        }
      }),
      { numRuns: 2000 },
    );
  });
});
