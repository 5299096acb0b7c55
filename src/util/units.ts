import { HostpullError } from '../errors.js';

/**
 * The one reading of durations and sizes, for every flag, environment variable and config value.
 *
 * Durations need a unit: `500ms`, `30s`, `10m`, `1h` (a decimal such as `1.5s` too). A bare
 * number is refused, whatever the flag: two parsers once read `30` as 30 ms for `gc --min-age` and
 * as 30 s for `serve --cache-ttl`, and no default unit is obvious enough to be guessed. Only `0`
 * stands alone (zero is zero in every unit).
 *
 * Sizes default to bytes: `1234` is 1234 bytes; `K`, `M`, `G`, `T` are binary (1024-based) and
 * may be followed by `B` or `iB` (`10G`, `10GB`, `10GiB` are all 10 × 1024³), as systemd's and
 * docker's size options read them.
 */

/** What a duration looks like, for help texts and error messages. */
export const DURATION_FORMAT = 'a number with a unit: 500ms, 30s, 10m, 1h (0 alone for none)';
/** What a size looks like, for help texts and error messages. */
export const SIZE_FORMAT = 'bytes, or a number with K, M, G or T (1024-based): 512M, 10G';

const MS_PER: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const BYTES_PER: Readonly<Record<string, number>> = { '': 1, B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** `500ms`, `30s`, `10m`, `1h`, `1.5s` or `0` → milliseconds. `what` names the flag or setting in the error. */
export function parseDuration(text: string, what = 'duration'): number {
  const t = text.trim();
  if (t === '0') return 0;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(t);
  if (!m) {
    const why = /^\d+(?:\.\d+)?$/.test(t) ? 'has no unit' : 'is not a duration';
    throw new HostpullError('USAGE', `${what} ${JSON.stringify(text)} ${why}; a duration is ${DURATION_FORMAT}`);
  }
  return Math.round(Number(m[1]) * MS_PER[m[2]!]!);
}

/** `1234`, `500M`, `10G`, `1.5T`, `2GiB` → bytes (rounded down). `what` names the flag or setting in the error. */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$/i.exec(text);
  if (!m) throw new HostpullError('USAGE', `${what}: invalid size ${JSON.stringify(text)}; a size is ${SIZE_FORMAT}`);
  return Math.floor(Number(m[1]) * BYTES_PER[m[2]!.toUpperCase()]!);
}
