import { HostpullError } from '../errors.js';
import type { Random } from './prng.js';

/**
 * Zipf distribution over ranks 0…n-1: P(rank k) ∝ 1 / (k+1)^s. Package popularity in real
 * registries is heavy-tailed this way (a few runtimes in most images, a long tail of tools);
 * s = 1 is the classic value.
 */
export class ZipfSampler {
  readonly n: number;
  readonly exponent: number;
  /** Cumulative probabilities, last = 1. */
  readonly #cdf: Float64Array;

  constructor(n: number, exponent = 1) {
    if (!Number.isInteger(n) || n < 1) throw new HostpullError('USAGE', `Zipf needs at least one rank, got ${n}`);
    if (!(exponent >= 0)) throw new HostpullError('USAGE', `Zipf exponent must be ≥ 0, got ${exponent}`);
    this.n = n;
    this.exponent = exponent;
    this.#cdf = new Float64Array(n);
    let sum = 0;
    for (let k = 0; k < n; k++) sum += 1 / (k + 1) ** exponent;
    let acc = 0;
    for (let k = 0; k < n; k++) {
      acc += 1 / (k + 1) ** exponent / sum;
      this.#cdf[k] = acc;
    }
    this.#cdf[n - 1] = 1;
  }

  probability(rank: number): number {
    return rank === 0 ? this.#cdf[0]! : this.#cdf[rank]! - this.#cdf[rank - 1]!;
  }

  /** One rank; binary search over the CDF. */
  sample(rnd: Random): number {
    const x = rnd();
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#cdf[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** `k` distinct ranks (rejection of repeats; k ≤ n), in draw order. */
  sampleDistinct(rnd: Random, k: number): number[] {
    if (k > this.n) throw new HostpullError('USAGE', `cannot draw ${k} distinct ranks out of ${this.n}`);
    const out: number[] = [];
    const seen = new Set<number>();
    // Rejection is cheap while k is small against n; past a few hundred tries fall back to the
    // most popular ranks not drawn yet, so the loop always ends.
    for (let tries = 0; out.length < k && tries < 1000; tries++) {
      const r = this.sample(rnd);
      if (!seen.has(r)) {
        seen.add(r);
        out.push(r);
      }
    }
    for (let r = 0; out.length < k; r++) if (!seen.has(r)) out.push(r);
    return out;
  }
}
