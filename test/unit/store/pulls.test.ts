import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ContentStore } from '../../../src/store/content-store.js';
import { PullLog, type PullRecord } from '../../../src/store/pulls.js';
import { useTempDir } from '../../helpers/tmp.js';

function record(overrides: Partial<PullRecord>): PullRecord {
  return {
    reference: 'r.example/x:1',
    manifestDigest: null,
    startedAt: 1000,
    finishedAt: 2000,
    ok: true,
    upToDate: false,
    bytesFetched: 0,
    bytesReused: 0,
    layerHits: 0,
    layerMisses: 0,
    phases: { resolve: 1, layers: 2, total: 3 },
    ...overrides,
  };
}

describe('PullLog', () => {
  const tmp = useTempDir('store-pulls');
  let store: ContentStore;
  beforeEach(async () => {
    store = await ContentStore.open(await tmp());
  });
  afterEach(() => store.close());

  it('reports zeros, not NaN, when nothing was pulled', () => {
    expect(store.pulls.stats()).toEqual({
      pulls: 0,
      failedPulls: 0,
      upToDatePulls: 0,
      bytesFetched: 0,
      bytesReused: 0,
      layerHits: 0,
      layerMisses: 0,
      layerHitRate: 0,
      byteHitRate: 0,
    });
  });

  it('sums pulls and computes hit rates', () => {
    store.pulls.record(record({ bytesFetched: 300, bytesReused: 100, layerHits: 1, layerMisses: 3 }));
    store.pulls.record(record({ upToDate: true, bytesFetched: 0, bytesReused: 600, layerHits: 4 }));
    store.pulls.record(record({ ok: false, error: 'MANIFEST_UNKNOWN: gone' }));
    expect(store.pulls.stats()).toEqual({
      pulls: 3,
      failedPulls: 1,
      upToDatePulls: 1,
      bytesFetched: 300,
      bytesReused: 700,
      layerHits: 5,
      layerMisses: 3,
      layerHitRate: 5 / 8,
      byteHitRate: 0.7,
    });
  });

  it("counts what lazy runs fetched of the layers they deferred as fetched, in the byte hit rate too", () => {
    const layer = (n: number) => `sha256:${String(n).repeat(64)}` as const;
    // A lazy run's pull fetched the manifest, config and one whole layer, and deferred two.
    store.pulls.record(record({ bytesFetched: 1000, bytesReused: 500, layerHits: 1, layerMisses: 3 }));
    store.lazyLayers.recordArrival({ blobDigest: layer(1), diffId: layer(2), mode: 'lazy-completed', bytesLazy: 7000 });
    store.lazyLayers.recordArrival({ blobDigest: layer(3), diffId: layer(4), mode: 'lazy', reason: 'not completed: registry down', bytesLazy: 1500 });
    // A later update of a layer that says less keeps the larger count.
    store.lazyLayers.recordArrival({ blobDigest: layer(3), diffId: layer(4), mode: 'lazy' });
    expect(store.pulls.stats()).toMatchObject({ bytesFetched: 1000 });
    expect(store.pullStats()).toMatchObject({ bytesFetched: 9500, bytesFetchedLazily: 8500, bytesReused: 500, byteHitRate: 500 / 10_000, layerHits: 1, layerMisses: 3 });
  });

  it('gives a rate of 0 when only failed pulls with no bytes were recorded', () => {
    store.pulls.record(record({ ok: false }));
    expect(store.pulls.stats()).toMatchObject({ pulls: 1, failedPulls: 1, layerHitRate: 0, byteHitRate: 0 });
  });

  it('keeps a bounded history; the totals still count every pull ever recorded', () => {
    const log = new PullLog(store.db, { keep: 50 });
    for (let i = 0; i < 1234; i++) {
      log.record(record({ ok: i % 10 !== 0, upToDate: i % 3 === 0, bytesFetched: i, bytesReused: 2 * i, layerHits: 1, layerMisses: i % 2 }));
    }
    // Pruned every 100 records down to the last 50: never more than 50 + 99 rows.
    expect(log.size()).toBeLessThan(150);
    expect(log.size()).toBeGreaterThanOrEqual(50);
    const sum = (f: (i: number) => number) => Array.from({ length: 1234 }, (_, i) => f(i)).reduce((a, b) => a + b, 0);
    expect(log.stats()).toMatchObject({
      pulls: 1234,
      failedPulls: sum((i) => (i % 10 === 0 ? 1 : 0)),
      upToDatePulls: sum((i) => (i % 3 === 0 ? 1 : 0)),
      bytesFetched: sum((i) => i),
      bytesReused: sum((i) => 2 * i),
      layerHits: 1234,
      layerMisses: sum((i) => i % 2),
    });
    // The rows kept are the newest ones.
    const oldest = store.db.prepare('SELECT MIN(bytes_fetched) AS b FROM pulls').get() as { b: number };
    expect(oldest.b).toBeGreaterThan(1234 - 150);
  });
});
