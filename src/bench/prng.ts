/**
 * Seeded pseudo-random numbers for the benchmark. Math.random cannot be seeded, and a benchmark
 * that cannot be replayed cannot be compared between two builds, so every draw goes through here.
 */

/** A uniform source in [0, 1). */
export type Random = () => number;

/**
 * mulberry32: a 32-bit state, one multiply-xorshift round per draw. Period 2^32, which is far
 * beyond the few million draws of a bench run, and it passes the statistical checks that matter
 * here (uniformity, no short cycles); it is not for cryptography.
 */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of a string, to derive independent sub-seeds ("sizes", "JDK11.0") from one seed. */
export function hashSeed(seed: number, label: string): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Integer in [0, n). */
export function randomInt(rnd: Random, n: number): number {
  return Math.min(n - 1, Math.floor(rnd() * n));
}

/** Standard normal draw (Box–Muller; the second value is dropped to keep the stream simple). */
export function randomNormal(rnd: Random): number {
  const u = 1 - rnd(); // (0, 1]: log(0) would be -Infinity
  const v = rnd();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Index drawn with probability proportional to `weights[i]` (all ≥ 0, sum > 0). */
export function weightedIndex(rnd: Random, weights: readonly number[]): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let x = rnd() * total;
  for (let i = 0; i < weights.length; i++) {
    x -= weights[i]!;
    if (x < 0) return i;
  }
  return weights.length - 1;
}
