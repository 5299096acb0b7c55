import { HostpullError } from '../errors.js';

const MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `500ms`, `30s`, `10m`, `1h`, or bare milliseconds → milliseconds. */
export function parseDuration(input: string): number {
  const m = /^\s*(\d+)\s*(ms|s|m|h)?\s*$/.exec(input);
  if (!m) throw new HostpullError('USAGE', `invalid duration ${JSON.stringify(input)}`, { hint: 'e.g. 500ms, 30s, 10m, 1h' });
  return Number(m[1]) * MS[m[2] ?? 'ms']!;
}
