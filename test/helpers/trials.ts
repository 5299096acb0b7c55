/**
 * Fault and kill trials report what they measured (bytes fetched twice, whether the store
 * recovered…) as JSON lines in $HOSTPULL_TRIAL_LOG when it is set, so a run can be summed up
 * afterwards (bench/summarize-trials.mjs); without it nothing is written.
 */
import { appendFileSync } from 'node:fs';

export function recordTrial(kind: string, facts: Record<string, unknown>): void {
  const path = process.env.HOSTPULL_TRIAL_LOG;
  if (path) appendFileSync(path, `${JSON.stringify({ kind, at: new Date().toISOString(), ...facts })}\n`);
}

/**
 * A seeded PRNG (mulberry32) for randomised timings: the seed is printed with each failure, and
 * HOSTPULL_TRIAL_SEED replays a run.
 */
export function trialRandom(label: string): { seed: number; next: () => number } {
  const seed = Number(process.env.HOSTPULL_TRIAL_SEED ?? Math.floor(Math.random() * 2 ** 31));
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  process.stderr.write(`${label}: HOSTPULL_TRIAL_SEED=${seed}\n`);
  return { seed, next };
}
