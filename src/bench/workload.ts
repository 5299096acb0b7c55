import { HostpullError } from '../errors.js';
import type { BenchCatalog, BenchPackageVersion } from './catalog.js';
import { hashSeed, mulberry32, randomInt, weightedIndex, type Random } from './prng.js';
import { ZipfSampler } from './zipf.js';

/** One pull of a composite: its code names in the order the requester wrote them. */
export interface BenchRequest {
  /** Milliseconds from the start of the trace, when known (trace files); informative only. */
  at?: number;
  codes: string[];
}

export interface WorkloadOptions {
  requests: number;
  seed?: number;
  /** Zipf exponent of package popularity. Default 1. */
  zipfExponent?: number;
  /** Fewest and most code names per tag. Default 1 and 5 (capped at the package count). */
  minCodes?: number;
  maxCodes?: number;
  /**
   * How fast an older version loses favour once a newer one is out: weight of a version that is
   * k releases behind the newest released one is decay^k. Default 0.35.
   */
  versionDecay?: number;
}

/**
 * Version churn: version j (0-based, of V) is released at fraction j/V of the run, so the run
 * starts with only the oldest versions and ends with all; among released versions the newest is
 * the most popular and each older one is `decay` times less so.
 */
function pickVersion(rnd: Random, versions: readonly BenchPackageVersion[], progress: number, decay: number): BenchPackageVersion {
  const released = Math.min(versions.length, Math.floor(progress * versions.length) + 1);
  const weights: number[] = [];
  for (let j = 0; j < released; j++) weights.push(decay ** (released - 1 - j));
  return versions[weightedIndex(rnd, weights)]!;
}

/**
 * The synthetic workload: for each request, a tag size k uniform in [minCodes, maxCodes], k
 * distinct packages by Zipf popularity (so no two versions of one package share a tag), and a
 * version for each by the churn model. Same catalog + options → same sequence.
 */
export function generateWorkload(catalog: BenchCatalog, options: WorkloadOptions): BenchRequest[] {
  const n = catalog.packages.length;
  const requests = options.requests;
  if (!Number.isInteger(requests) || requests < 1) throw new HostpullError('USAGE', `--requests must be a positive integer, got ${requests}`);
  const minCodes = Math.min(n, options.minCodes ?? 1);
  const maxCodes = Math.min(n, options.maxCodes ?? 5);
  if (minCodes < 1 || maxCodes < minCodes) throw new HostpullError('USAGE', `code names per tag must satisfy 1 ≤ min ≤ max, got ${minCodes}…${maxCodes}`);
  const decay = options.versionDecay ?? 0.35;
  const zipf = new ZipfSampler(n, options.zipfExponent ?? 1);
  const rnd = mulberry32(hashSeed(options.seed ?? catalog.seed, 'workload'));
  const out: BenchRequest[] = [];
  for (let i = 0; i < requests; i++) {
    const progress = requests === 1 ? 0 : i / (requests - 1);
    const k = minCodes + randomInt(rnd, maxCodes - minCodes + 1);
    const ranks = zipf.sampleDistinct(rnd, k);
    out.push({ codes: ranks.map((r) => pickVersion(rnd, catalog.packages[r]!.versions, progress, decay).code) });
  }
  return out;
}
