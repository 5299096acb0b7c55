import { HostpullError } from '../errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses `500ms`, `30s`, `2m`, `1h`; a bare number is seconds. */
export function parseDuration(value: string, what = 'duration'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new HostpullError('USAGE', `${what} ${JSON.stringify(value)} is not a duration like 500ms, 30s, 2m`);
  return Math.round(Number(m[1]) * UNITS[m[2] ?? 's']!);
}
