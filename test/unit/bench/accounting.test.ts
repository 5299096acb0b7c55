import { describe, expect, it } from 'vitest';
import { HitRateAccount, type PullSample } from '../../../src/bench/accounting.js';

function pull(layers: Array<[number, boolean]>, extra: Partial<PullSample> = {}): PullSample {
  return {
    tag: 'T',
    node: 0,
    layers: layers.map(([size, hit]) => ({ size, hit })),
    bytesFetched: layers.filter(([, hit]) => !hit).reduce((n, [s]) => n + s, 0) + 100,
    registryBytes: 0,
    ms: 10,
    storeBytes: 0,
    ...extra,
  };
}

describe('HitRateAccount', () => {
  it('computes exact layer and byte hit rates for a hand-made sequence', () => {
    const a = new HitRateAccount();
    // base(1000) + A(4000): both new
    a.record(pull([[1000, false], [4000, false]], { ms: 50, storeBytes: 5000 }));
    // base + A again: all hits
    a.record(pull([[1000, true], [4000, true]], { ms: 5, storeBytes: 5000 }));
    // base + A + B(5000): B new
    a.record(pull([[1000, true], [4000, true], [5000, false]], { ms: 30, storeBytes: 10000 }));
    const s = a.summary();
    expect(s.requests).toBe(3);
    expect(s.layerHits).toBe(4);
    expect(s.layerMisses).toBe(3);
    expect(s.layerHitRate).toBe(4 / 7);
    expect(s.bytesReused).toBe(10000);
    expect(s.bytesMissed).toBe(10000);
    expect(s.byteHitRate).toBe(0.5);
    expect(s.bytesFetched).toBe(5000 + 100 + 100 + 5000 + 100);
    expect(s.cold).toEqual({ pulls: 2, medianMs: 40, meanMs: 40 });
    expect(s.warm).toEqual({ pulls: 1, medianMs: 5, meanMs: 5 });
    expect(s.storeBytes).toBe(10000);
    expect(a.series.map((p) => p.layerHitRate)).toEqual([0, 2 / 4, 4 / 7]);
    expect(a.series.map((p) => p.byteHitRate)).toEqual([0, 0.5, 0.5]);
    expect(a.series.map((p) => p.bytesFetched)).toEqual([5100, 5200, 10300]);
  });

  it('sums the last store size of each node for the fleet', () => {
    const a = new HitRateAccount();
    a.record(pull([[10, false]], { node: 0, storeBytes: 100 }));
    a.record(pull([[10, false]], { node: 1, storeBytes: 200 }));
    a.record(pull([[20, false]], { node: 0, storeBytes: 300 }));
    a.record(pull([[10, true]], { node: 1, storeBytes: 200, registryBytes: 7 }));
    const s = a.summary();
    expect(s.storeBytes).toBe(500);
    expect(s.registryBytes).toBe(7);
    expect(s.layerHitRate).toBe(0.25);
    expect(s.byteHitRate).toBe(10 / 50);
  });

  it('reports 0, not NaN, before any layer was asked for', () => {
    const s = new HitRateAccount().summary();
    expect(s.layerHitRate).toBe(0);
    expect(s.byteHitRate).toBe(0);
    expect(s.cold.medianMs).toBe(0);
  });
});
