import { HostpullError } from '../errors.js';
import { packageSize, type BenchCatalog, type BenchPackage } from './catalog.js';
import { hashSeed } from './prng.js';
import type { BenchRequest } from './workload.js';

const CODE_RE = /^([A-Za-z_]+)([0-9][A-Za-z0-9._]*)?$/;

/**
 * A trace: one composite tag per line, optionally preceded by a timestamp (Unix seconds, with or
 * without a fraction; an integer of more than 10 digits is taken as milliseconds; or an ISO date)
 * and whitespace. Blank lines and `#` comments are skipped. Timestamps are kept for the report;
 * the replay itself runs back to back.
 */
export function parseTrace(text: string, what = 'trace'): BenchRequest[] {
  const out: BenchRequest[] = [];
  let origin: number | undefined;
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const parts = line.split(/\s+/);
    if (parts.length > 2) throw new HostpullError('TRACE_INVALID', `${what}:${i + 1}: expected "[TIMESTAMP] TAG", got ${JSON.stringify(line.slice(0, 200))}`);
    const tag = parts[parts.length - 1]!;
    let at: number | undefined;
    if (parts.length === 2) {
      const ts = parts[0]!;
      const t = /^\d+(\.\d+)?$/.test(ts) ? Number(ts) * (ts.includes('.') || ts.length <= 10 ? 1000 : 1) : Date.parse(ts);
      if (!Number.isFinite(t)) throw new HostpullError('TRACE_INVALID', `${what}:${i + 1}: timestamp ${JSON.stringify(ts)} is neither a number nor a date`);
      origin ??= t;
      at = t - origin;
    }
    const codes = tag.split('-');
    for (const c of codes) {
      if (!CODE_RE.test(c)) throw new HostpullError('TRACE_INVALID', `${what}:${i + 1}: code name ${JSON.stringify(c)} is not NAME<version> (letters, then a digit)`);
    }
    const names = codes.map((c) => CODE_RE.exec(c)![1]!);
    if (new Set(names).size !== names.length) throw new HostpullError('TRACE_INVALID', `${what}:${i + 1}: tag ${tag} has two versions of one package`);
    out.push(at === undefined ? { codes } : { at, codes });
  }
  if (out.length === 0) throw new HostpullError('TRACE_INVALID', `${what} holds no tags`);
  return out;
}

/** The catalog a trace needs: every code name it mentions, grouped by package name, sized by seed. */
export function catalogFromTrace(requests: readonly BenchRequest[], options: { seed?: number; scale?: number; minBytes?: number } = {}): BenchCatalog {
  const seed = options.seed ?? 1;
  const scale = options.scale ?? 0.005;
  const minBytes = options.minBytes ?? 4096;
  const byName = new Map<string, Set<string>>();
  for (const r of requests) {
    for (const code of r.codes) {
      const m = CODE_RE.exec(code)!;
      const name = m[1]!;
      if (!byName.has(name)) byName.set(name, new Set());
      byName.get(name)!.add(m[2] ?? '');
    }
  }
  const packages: BenchPackage[] = [...byName.keys()].sort().map((name) => {
    const versions = [...byName.get(name)!].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    const size = packageSize(seed, name);
    return {
      name,
      versions: versions.map((version, index) => ({
        code: `${name}${version}`,
        package: name,
        version,
        index,
        // ±10 % per version, derived from the code name so adding a line never resizes the others.
        bytes: Math.max(minBytes, Math.round(size * scale * (0.9 + 0.2 * (hashSeed(seed, `${name}${version}`) / 2 ** 32)))),
      })),
    };
  });
  return { seed, packages, baseBytes: Math.max(minBytes, Math.round(30_000_000 * scale)) };
}
