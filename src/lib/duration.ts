import { KedgeError } from './errors.ts';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parse a Go-style duration (`90s`, `30m`, `1h30m`, `7d`) into milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null = re.exec(text);
  while (m !== null) {
    total += Number(m[1]) * (UNITS[m[2] ?? ''] ?? 0);
    matched = re.lastIndex;
    m = re.exec(text);
  }
  if (text === '' || matched !== text.length) {
    throw new KedgeError(
      'KEDGE_CONFIG_INVALID',
      `${what} ${JSON.stringify(text)} is not a duration like 90s, 30m, 1h30m or 7d`,
    );
  }
  return total;
}
