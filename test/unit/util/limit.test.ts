import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { mapLimit } from '../../../src/util/limit.js';

describe('mapLimit', () => {
  it('never runs more than `concurrency` tasks at once, and uses that many', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const items = Array.from({ length: 12 }, (_, i) => i);
    await mapLimit(items, 3, async (i) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      for (let k = 0; k < (i % 4) + 1; k++) await tick();
      inFlight--;
      return i;
    });
    expect(maxInFlight).toBe(3);
  });

  it('returns results in input order whatever order tasks finish in', async () => {
    const items = [5, 1, 4, 2, 3];
    const out = await mapLimit(items, 5, async (n, index) => {
      for (let k = 0; k < n; k++) await tick();
      return `${index}:${n}`;
    });
    expect(out).toEqual(['0:5', '1:1', '2:4', '3:2', '4:3']);
  });

  it('handles an empty list and a concurrency above the item count', async () => {
    expect(await mapLimit([], 4, async () => 1)).toEqual([]);
    expect(await mapLimit([1, 2], 10, async (n) => n * 2)).toEqual([2, 4]);
    expect(await mapLimit([1, 2], 0, async (n) => n * 2)).toEqual([2, 4]);
  });

  it('rejects with the first error, aborts the running tasks and starts no more', async () => {
    const boom = new Error('layer 1 failed');
    const abortedSeen: number[] = [];
    const started: number[] = [];
    const items = [0, 1, 2, 3, 4, 5];
    const err = await mapLimit(items, 3, async (i, _index, signal) => {
      started.push(i);
      if (i === 1) {
        await tick();
        throw boom;
      }
      // The others wait until they are told to stop.
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      abortedSeen.push(i);
      throw new Error(`task ${i} stopped after the abort`);
    }).catch((e: unknown) => e);
    expect(err).toBe(boom);
    expect(abortedSeen.sort()).toEqual([0, 2]);
    expect(started.sort()).toEqual([0, 1, 2]);
  });

  it('stops when the parent signal aborts', async () => {
    const parent = new AbortController();
    const reason = new Error('pull cancelled');
    const started: number[] = [];
    const running = mapLimit(
      [0, 1, 2, 3],
      2,
      async (i, _index, signal) => {
        started.push(i);
        if (i === 0) parent.abort(reason);
        if (!signal.aborted) await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
        throw signal.reason;
      },
      parent.signal,
    );
    await expect(running).rejects.toBe(reason);
    expect(started).toEqual([0]);
  });

  it('starts nothing when the parent signal was aborted before the call', async () => {
    const parent = new AbortController();
    const reason = new Error('daemon stopping');
    parent.abort(reason);
    const started: number[] = [];
    await expect(mapLimit([0, 1], 2, async (i) => started.push(i), parent.signal)).rejects.toBe(reason);
    expect(started).toEqual([]);
  });
});
