import { steppedInflater, type SteppedInflater } from '../../src/lazy/span-inflater.js';

/**
 * The addon's stepped inflater with some steps held back until the test calls `release`:
 * `holds(until, n)` says whether step number `n` (from 1), asked to stop at `until`, waits.
 * `stops` lists where every step was asked to stop, in order.
 */
export function heldSteps(holds: (until: number, n: number) => boolean): { inflater: SteppedInflater; stops: number[]; release: () => void } {
  const stops: number[] = [];
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const inflater: SteppedInflater = (deflate, out) => {
    const step = steppedInflater()(deflate, out);
    return async (until) => {
      stops.push(until);
      if (holds(until, stops.length)) await held;
      return step(until);
    };
  };
  return { inflater, stops, release };
}
