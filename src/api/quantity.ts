/**
 * Kubernetes resource quantities (`resource.Quantity`): `100m`, `1.5Gi`, `2e3`, `128974848`. Values are
 * held exactly as a count of nano-units (a bigint), rounded up like Kubernetes when finer than 1n.
 */
import { KedgeError } from '../lib/errors.ts';

export type QuantityFormat = 'DecimalSI' | 'BinarySI' | 'DecimalExponent';

export interface Quantity {
  /** The value in units of 10^-9 (so `1` is 1,000,000,000n and `100m` is 100,000,000n). */
  readonly nano: bigint;
  /** How the quantity was written; formatting keeps it. */
  readonly format: QuantityFormat;
}

const BINARY: Readonly<Record<string, number>> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL: Readonly<Record<string, number>> = {
  n: -9,
  u: -6,
  m: -3,
  '': 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};
const DECIMAL_SUFFIX_BY_EXP = new Map(Object.entries(DECIMAL).map(([s, e]) => [e, s]));
const QUANTITY_RE = /^([+-]?)(\d*)(?:\.(\d*))?(.*)$/;
const EXPONENT_RE = /^[eE]([+-]?\d+)$/;
const NANO = 1_000_000_000n;

function invalid(text: string, why: string): KedgeError {
  return new KedgeError('KEDGE_QUANTITY_INVALID', `Quantity ${JSON.stringify(text)} is invalid: ${why}`, {
    context: { quantity: text },
  });
}

/** ceil(a / b) for b > 0. */
function ceilDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a > 0n ? q + 1n : q;
}

/** Parse a quantity as Kubernetes accepts it; throws KEDGE_QUANTITY_INVALID naming the text. */
export function parseQuantity(text: string): Quantity {
  const m = QUANTITY_RE.exec(text);
  if (m === null || text.length === 0) throw invalid(text, 'it is empty');
  const sign = m[1] ?? '';
  const whole = m[2] ?? '';
  const frac = m[3] ?? '';
  const suffix = m[4] ?? '';
  if (whole.length === 0 && frac.length === 0) throw invalid(text, 'it has no digits');
  let format: QuantityFormat;
  let exp10 = 0;
  let exp2 = 0;
  const binary = BINARY[suffix];
  const decimal = DECIMAL[suffix];
  if (binary !== undefined) {
    format = 'BinarySI';
    exp2 = binary;
  } else if (decimal !== undefined) {
    format = 'DecimalSI';
    exp10 = decimal;
  } else {
    const e = EXPONENT_RE.exec(suffix);
    if (e === null) throw invalid(text, `unknown suffix ${JSON.stringify(suffix)}`);
    format = 'DecimalExponent';
    exp10 = Number(e[1]);
    if (!Number.isSafeInteger(exp10) || Math.abs(exp10) > 1000)
      throw invalid(text, 'the exponent is out of range');
  }
  // value = digits × 10^(exp10 - frac.length) × 2^exp2; in nano-units multiply by 10^9.
  let n = BigInt(whole + frac || '0') * 2n ** BigInt(exp2);
  const scale = exp10 - frac.length + 9;
  n = scale >= 0 ? n * 10n ** BigInt(scale) : ceilDiv(n, 10n ** BigInt(-scale));
  if (sign === '-') n = -n;
  return { nano: n, format };
}

/** A quantity from a plain number of units, e.g. `quantityOf(2)` for 2 cpus or 1024 bytes. */
export function quantityOf(units: number, format: QuantityFormat = 'DecimalSI'): Quantity {
  if (!Number.isFinite(units)) throw invalid(String(units), 'it is not a finite number');
  const [whole = '0', frac = ''] = Math.abs(units).toFixed(9).split('.');
  const nano = BigInt(whole) * NANO + BigInt(frac.padEnd(9, '0'));
  return { nano: units < 0 ? -nano : nano, format };
}

/** Largest power-of-ten exponent (a multiple of 3, at most 18) that divides the nano value, minus 9. */
function decimalParts(nano: bigint): { mantissa: bigint; exp: number } {
  if (nano === 0n) return { mantissa: 0n, exp: 0 };
  let mantissa = nano;
  let exp = -9;
  while (exp < 18 && mantissa % 1000n === 0n) {
    mantissa /= 1000n;
    exp += 3;
  }
  return { mantissa, exp };
}

/** The canonical text Kubernetes prints for a quantity: `1536Mi` for `1.5Gi`, `100m` for `0.1`, `1k` for `1000`. */
export function formatQuantity(q: Quantity): string {
  if (q.nano === 0n) return '0';
  const negative = q.nano < 0n;
  const abs = negative ? -q.nano : q.nano;
  const sign = negative ? '-' : '';
  // Binary suffixes only for whole numbers of bytes of at least 1024 (as Kubernetes does).
  if (q.format === 'BinarySI' && abs % NANO === 0n && abs >= 1024n * NANO) {
    let units = abs / NANO;
    let i = 0;
    const suffixes = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];
    while (i < suffixes.length - 1 && units % 1024n === 0n) {
      units /= 1024n;
      i++;
    }
    return `${sign}${units}${suffixes[i]}`;
  }
  const { mantissa, exp } = decimalParts(abs);
  if (q.format === 'DecimalExponent') return exp === 0 ? `${sign}${mantissa}` : `${sign}${mantissa}e${exp}`;
  return `${sign}${mantissa}${DECIMAL_SUFFIX_BY_EXP.get(exp) ?? ''}`;
}

/** The value in whole units, rounded up (Kubernetes' `Value()`): bytes, pods, devices. */
export function quantityValue(q: Quantity): number {
  return Number(q.nano >= 0n ? ceilDiv(q.nano, NANO) : -(-q.nano / NANO));
}

/** The value in thousandths, rounded up (Kubernetes' `MilliValue()`): millicpu. */
export function quantityMilliValue(q: Quantity): number {
  return Number(q.nano >= 0n ? ceilDiv(q.nano, 1_000_000n) : -(-q.nano / 1_000_000n));
}

/** -1, 0 or 1 as a is less than, equal to or greater than b. */
export function compareQuantities(a: Quantity, b: Quantity): -1 | 0 | 1 {
  return a.nano < b.nano ? -1 : a.nano > b.nano ? 1 : 0;
}
