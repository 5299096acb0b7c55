import { HostpullError } from '../errors.js';

const UNITS: Record<string, number> = { '': 1, B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * Parses a size budget: a byte count, or a number with a binary unit (`500M`, `10G`, `1.5T`,
 * also `10GiB`/`10GB`, read as binary like systemd's and docker's size options).
 */
export function parseSize(input: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$/i.exec(input);
  const unit = m ? UNITS[m[2]!.toUpperCase()] : undefined;
  if (!m || unit === undefined) {
    throw new HostpullError('USAGE', `invalid size ${JSON.stringify(input)}`, { hint: 'write bytes, or a number with K, M, G or T (e.g. 500M, 10G)' });
  }
  return Math.floor(Number(m[1]) * unit);
}
