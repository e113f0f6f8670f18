import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isKedgeError } from '../lib/errors.ts';
import {
  compareQuantities,
  formatQuantity,
  parseQuantity,
  quantityMilliValue,
  quantityOf,
  quantityValue,
} from './quantity.ts';

describe('parseQuantity', () => {
  const cases: [string, number, number][] = [
    // text, Value() (rounded up), MilliValue()
    ['0', 0, 0],
    ['1', 1, 1000],
    ['100m', 1, 100],
    ['0.1', 1, 100],
    ['1.5', 2, 1500],
    ['250m', 1, 250],
    ['1k', 1000, 1_000_000],
    ['1Ki', 1024, 1_024_000],
    ['1.5Gi', 1_610_612_736, 1_610_612_736_000],
    ['128Mi', 134_217_728, 134_217_728_000],
    ['1e3', 1000, 1_000_000],
    ['1E3', 1000, 1_000_000],
    ['5e-3', 1, 5],
    ['1M', 1_000_000, 1_000_000_000],
    ['2G', 2_000_000_000, 2_000_000_000_000],
    ['1u', 1, 1],
    ['1n', 1, 1],
    ['+3', 3, 3000],
    ['-2', -2, -2000],
    ['.5', 1, 500],
    ['5.', 5, 5000],
    ['129e6', 129_000_000, 129_000_000_000],
  ];
  for (const [text, value, milli] of cases) {
    it(`reads ${text}`, () => {
      const q = parseQuantity(text);
      assert.equal(quantityValue(q), value);
      assert.equal(quantityMilliValue(q), milli);
    });
  }

  it('keeps the format the text was written in', () => {
    assert.equal(parseQuantity('1Gi').format, 'BinarySI');
    assert.equal(parseQuantity('1G').format, 'DecimalSI');
    assert.equal(parseQuantity('1').format, 'DecimalSI');
    assert.equal(parseQuantity('1e9').format, 'DecimalExponent');
  });

  it('rounds values finer than a nano-unit up', () => {
    assert.equal(parseQuantity('0.1n').nano, 1n);
    assert.equal(parseQuantity('1.0000000001').nano, 1_000_000_001n);
  });

  for (const bad of ['', '-', '.', 'abc', '1.5.5', '1Kb', '1 Gi', 'Gi', '1ki', '1e', '1e3Ki', '1iB', '--1']) {
    it(`rejects ${JSON.stringify(bad)} with KEDGE_QUANTITY_INVALID naming the text`, () => {
      assert.throws(
        () => parseQuantity(bad),
        (err: unknown) =>
          isKedgeError(err, 'KEDGE_QUANTITY_INVALID') && err.message.includes(JSON.stringify(bad)),
      );
    });
  }
});

describe('formatQuantity', () => {
  const cases: [string, string][] = [
    ['0', '0'],
    ['0Gi', '0'],
    ['1', '1'],
    ['1000', '1k'],
    ['1500', '1500'],
    ['0.1', '100m'],
    ['1000m', '1'],
    ['1.5', '1500m'],
    ['1.5Gi', '1536Mi'],
    ['1024Mi', '1Gi'],
    ['1024Ki', '1Mi'],
    ['0.5Ki', '512'],
    ['1.5M', '1500k'],
    ['1e3', '1e3'],
    ['1.5e6', '1500e3'],
    ['100e-3', '100e-3'],
    ['-1Ki', '-1Ki'],
    ['-100m', '-100m'],
    ['1n', '1n'],
    ['1000n', '1u'],
    ['12E', '12E'],
    ['13000E', '13000E'],
  ];
  for (const [text, canonical] of cases) {
    it(`prints ${text} as ${canonical}`, () => {
      assert.equal(formatQuantity(parseQuantity(text)), canonical);
    });
  }

  it('quantityOf builds quantities from numbers', () => {
    assert.equal(formatQuantity(quantityOf(0.25)), '250m');
    assert.equal(formatQuantity(quantityOf(2048, 'BinarySI')), '2Ki');
    assert.equal(formatQuantity(quantityOf(-3)), '-3');
  });

  it('canonical text parses back to the same value and prints the same (property)', () => {
    const suffix = fc.constantFrom(
      '',
      'n',
      'u',
      'm',
      'k',
      'M',
      'G',
      'T',
      'Ki',
      'Mi',
      'Gi',
      'Ti',
      'e3',
      'e-3',
      'E6',
    );
    const text = fc
      .tuple(
        fc.constantFrom('', '-'),
        fc.nat({ max: 999_999 }),
        fc.option(fc.nat({ max: 9999 }), { nil: undefined }),
        suffix,
      )
      .map(([s, w, f, x]) => `${s}${w}${f === undefined ? '' : `.${f}`}${x}`);
    fc.assert(
      fc.property(text, (t) => {
        const q = parseQuantity(t);
        const printed = formatQuantity(q);
        const again = parseQuantity(printed);
        assert.equal(again.nano, q.nano, `${t} -> ${printed}`);
        assert.equal(formatQuantity(again), printed);
      }),
    );
  });

  it('compares by value, not by text', () => {
    assert.equal(compareQuantities(parseQuantity('1Gi'), parseQuantity('1024Mi')), 0);
    assert.equal(compareQuantities(parseQuantity('1G'), parseQuantity('1Gi')), -1);
    assert.equal(compareQuantities(parseQuantity('2'), parseQuantity('1999m')), 1);
  });
});
