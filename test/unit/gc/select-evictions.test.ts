import { describe, expect, it } from 'vitest';
import type { Digest } from '../../../src/oci/digest.js';
import { parseSize } from '../../../src/util/units.js';
import { selectEvictions, type GcSnapshot } from '../../../src/gc/select-evictions.js';

const d = (name: string) => `sha256:${name.padEnd(64, '0')}` as Digest;
const NOW = 1_000_000_000;

/**
 * Store: base (b), jdk (j), mvn (m), grd (g) layers; images A = b+j+m, B = b+j+g.
 * Each layer: blob 100 bytes, unpacked 1000. Manifests/configs 10 bytes each.
 */
function snapshot(overrides: Partial<GcSnapshot> = {}, lastUsed: Record<string, number> = {}): GcSnapshot {
  const names = ['b', 'j', 'm', 'g'];
  const layers = names.map((n, i) => ({ id: i + 1, diffId: d(`d${n}`), blobDigest: d(`c${n}`), unpackedSize: 1000, lastUsed: lastUsed[n] ?? NOW - 3_600_000 + i }));
  const blobs = [
    ...names.map((n) => ({ digest: d(`c${n}`), size: 100, lastUsed: lastUsed[n] ?? NOW - 3_600_000 })),
    ...['ma', 'ca', 'mb', 'cb'].map((n) => ({ digest: d(n), size: 10, lastUsed: NOW - 3_600_000 })),
  ];
  const layer = (n: string) => ({ blobDigest: d(`c${n}`), diffId: d(`d${n}`) });
  const images = [
    { reference: 'r/hostpull:A', manifestDigest: d('ma'), indexDigest: null, configDigest: d('ca'), layers: ['b', 'j', 'm'].map(layer) },
    { reference: 'r/hostpull:B', manifestDigest: d('mb'), indexDigest: null, configDigest: d('cb'), layers: ['b', 'j', 'g'].map(layer) },
  ];
  return { blobs, layers, images, mounted: new Set(), leased: new Set(), now: NOW, ...overrides };
}

describe('selectEvictions', () => {
  it('without a budget removes nothing that an image references', () => {
    const plan = selectEvictions(snapshot(), { graceMs: 0 });
    expect(plan.layers).toEqual([]);
    expect(plan.blobs).toEqual([]);
    expect(plan.images).toEqual([]);
    expect(plan.bytesAfter).toBe(plan.bytesBefore);
    expect(plan.bytesBefore).toBe(4 * 1100 + 40);
  });

  it('sweeps layers and blobs no image references, unless mounted, leased or fresh', () => {
    const s = snapshot();
    const orphanLayers = [
      { id: 10, diffId: d('dx'), blobDigest: d('cx'), unpackedSize: 500, lastUsed: NOW - 3_600_000 },
      { id: 11, diffId: d('dy'), blobDigest: d('cy'), unpackedSize: 500, lastUsed: NOW - 3_600_000 },
      { id: 12, diffId: d('dz'), blobDigest: d('cz'), unpackedSize: 500, lastUsed: NOW - 1000 },
      { id: 13, diffId: d('dw'), blobDigest: d('cw'), unpackedSize: 500, lastUsed: NOW - 3_600_000 },
    ];
    const orphanBlobs = ['cx', 'cy', 'cz', 'cw', 'stray'].map((n) => ({ digest: d(n), size: 50, lastUsed: NOW - 3_600_000 }));
    const plan = selectEvictions(
      { ...s, layers: [...s.layers, ...orphanLayers], blobs: [...s.blobs, ...orphanBlobs], mounted: new Set([d('dy')]), leased: new Set([d('cw')]) },
      { graceMs: 60_000 },
    );
    // x: unreferenced and old → layer and blob go. y: mounted. z: fresh. w: its blob is being pulled.
    expect(plan.layers.map((l) => l.id)).toEqual([10]);
    expect(plan.blobs).toEqual([d('cx'), d('stray')].sort());
    expect(plan.images).toEqual([]);
  });

  it('under a budget evicts least recently used layers (with their blobs) until it fits, and the images that lost one', () => {
    // m is the oldest, then g; budget leaves room for all but one layer unit.
    const plan = selectEvictions(snapshot({}, { m: NOW - 7_200_000, g: NOW - 5_000_000, b: NOW - 100_000, j: NOW - 100_000 }), {
      maxStoreSize: 4 * 1100 + 40 - 1000,
      graceMs: 0,
    });
    expect(plan.layers.map((l) => l.diffId)).toEqual([d('dm')]);
    // A lost m: A's manifest and config go with it; B keeps everything.
    expect(plan.images).toEqual(['r/hostpull:A']);
    expect(plan.blobs).toEqual([d('cm'), d('ma'), d('ca')].sort());
    expect(plan.bytesAfter).toBe(3 * 1100 + 20);
    expect(plan.overBudget).toBe(false);
  });

  it('never evicts a mounted layer, so an image whose layers are all mounted survives; reports overBudget when nothing else can go', () => {
    const mounted = new Set([d('db'), d('dj'), d('dm')]); // image A is a mounted rootfs
    const plan = selectEvictions(snapshot({ mounted }), { maxStoreSize: 0, graceMs: 0 });
    expect(plan.layers.map((l) => l.diffId)).toEqual([d('dg')]);
    expect(plan.images).toEqual(['r/hostpull:B']);
    expect(plan.blobs).toContain(d('cg'));
    expect(plan.blobs).not.toContain(d('ma'));
    expect(plan.blobs).toEqual([d('cb'), d('cg'), d('mb')].sort()); // B's manifest and config go with it
    expect(plan.overBudget).toBe(true);
  });

  it('keeps leased and fresh layers under a budget', () => {
    const plan = selectEvictions(snapshot({ leased: new Set([d('cm')]) }, { g: NOW - 10 }), { maxStoreSize: 0, graceMs: 60_000 });
    expect(plan.layers.map((l) => l.diffId).sort()).toEqual([d('db'), d('dj')].sort());
    expect(plan.overBudget).toBe(true);
  });

  it('keeps a layer a pull in flight holds by its diffID under a budget', () => {
    // The pull found the layer present, maybe unpacked from another blob: it holds the diffID.
    const plan = selectEvictions(snapshot({ leased: new Set([d('dm')]) }, { g: NOW - 10 }), { maxStoreSize: 0, graceMs: 60_000 });
    expect(plan.layers.map((l) => l.diffId).sort()).toEqual([d('db'), d('dj')].sort());
  });

  it('evicts never-unpacked layer blobs (pull --no-unpack) as units too', () => {
    const s = snapshot({}, { g: NOW - 7_200_000 });
    const plan = selectEvictions({ ...s, layers: s.layers.filter((l) => l.diffId !== d('dg')) }, { maxStoreSize: 3 * 1000 + 4 * 100 + 40 - 1, graceMs: 0 });
    // g was never unpacked and its blob is the oldest unit: it alone goes, and B with it.
    expect(plan.layers).toEqual([]);
    expect(plan.blobs).toEqual([d('cb'), d('cg'), d('mb')].sort());
    expect(plan.images).toEqual(['r/hostpull:B']);
  });
});

describe('parseSize', () => {
  it('reads bytes and binary units', () => {
    expect(parseSize('1234')).toBe(1234);
    expect(parseSize('500M')).toBe(500 * 1024 * 1024);
    expect(parseSize('10G')).toBe(10 * 1024 ** 3);
    expect(parseSize('1.5k')).toBe(1536);
    expect(parseSize('2GiB')).toBe(2 * 1024 ** 3);
    expect(() => parseSize('ten')).toThrow(/invalid size/);
    expect(() => parseSize('-1G')).toThrow(/invalid size/);
  });
});
