import { describe, expect, it } from 'vitest';
import { syntheticCatalog, MAX_PACKAGE_BYTES, MIN_PACKAGE_BYTES, packageSize } from '../../../src/bench/catalog.js';
import { hashSeed, mulberry32 } from '../../../src/bench/prng.js';
import { catalogFromTrace, parseTrace } from '../../../src/bench/trace.js';
import { generateWorkload } from '../../../src/bench/workload.js';
import { canonicalTag } from '../../../src/server/composite-tag.js';
import { ZipfSampler } from '../../../src/bench/zipf.js';

describe('mulberry32', () => {
  it('gives the same sequence for the same seed and another for another seed', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const sa = Array.from({ length: 100 }, () => a());
    const sb = Array.from({ length: 100 }, () => b());
    const sc = Array.from({ length: 100 }, () => c());
    expect(sa).toEqual(sb);
    expect(sa).not.toEqual(sc);
    expect(sa.every((x) => x >= 0 && x < 1)).toBe(true);
  });

  it('is roughly uniform (each tenth of [0,1) gets 7-13 % of 10k draws)', () => {
    const r = mulberry32(7);
    const bins = new Array(10).fill(0);
    for (let i = 0; i < 10_000; i++) bins[Math.floor(r() * 10)]++;
    for (const n of bins) {
      expect(n).toBeGreaterThan(700);
      expect(n).toBeLessThan(1300);
    }
  });

  it('derives distinct sub-seeds from labels', () => {
    expect(hashSeed(1, 'a')).not.toBe(hashSeed(1, 'b'));
    expect(hashSeed(1, 'a')).not.toBe(hashSeed(2, 'a'));
    expect(hashSeed(1, 'a')).toBe(hashSeed(1, 'a'));
  });
});

describe('ZipfSampler', () => {
  it('has probabilities summing to 1 and decreasing with rank', () => {
    const z = new ZipfSampler(8, 1);
    let sum = 0;
    for (let k = 0; k < 8; k++) sum += z.probability(k);
    expect(sum).toBeCloseTo(1, 12);
    expect(z.probability(0)).toBeGreaterThan(z.probability(7));
    expect(z.probability(0) / z.probability(1)).toBeCloseTo(2, 10);
  });

  it('requests the most popular package more often than the least over 10k draws', () => {
    const z = new ZipfSampler(10, 1);
    const rnd = mulberry32(1);
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 10_000; i++) counts[z.sample(rnd)]++;
    expect(counts[0]).toBeGreaterThan(counts[9] * 3);
    // rank 0 expects 10000/H(10) ≈ 3414 draws
    expect(counts[0]).toBeGreaterThan(3000);
    expect(counts[0]).toBeLessThan(3800);
  });

  it('draws distinct ranks, even all of them', () => {
    const z = new ZipfSampler(5, 2);
    const rnd = mulberry32(3);
    for (let i = 0; i < 200; i++) {
      const r = z.sampleDistinct(rnd, 5);
      expect(new Set(r).size).toBe(5);
    }
    expect(() => z.sampleDistinct(rnd, 6)).toThrow(/distinct/);
  });
});

describe('syntheticCatalog', () => {
  it('is reproducible by seed and sizes packages within the 1-200 MB spread', () => {
    const a = syntheticCatalog({ packages: 12, versions: 3, seed: 5, scale: 1 });
    expect(syntheticCatalog({ packages: 12, versions: 3, seed: 5, scale: 1 })).toEqual(a);
    expect(syntheticCatalog({ packages: 12, versions: 3, seed: 6, scale: 1 })).not.toEqual(a);
    for (let i = 0; i < 200; i++) {
      const s = packageSize(i, 'JDK');
      expect(s).toBeGreaterThanOrEqual(MIN_PACKAGE_BYTES);
      expect(s).toBeLessThanOrEqual(MAX_PACKAGE_BYTES);
    }
    expect(a.packages.map((p) => p.name).slice(0, 3)).toEqual(['JDK', 'MVN', 'GRD']);
    expect(a.packages[0]!.versions.map((v) => v.code)).toEqual(['JDK1.0', 'JDK2.0', 'JDK3.0']);
  });

  it('scales sizes down, never below the minimum', () => {
    const small = syntheticCatalog({ packages: 6, seed: 1, scale: 0.001, minBytes: 8192 });
    const big = syntheticCatalog({ packages: 6, seed: 1, scale: 1 });
    for (const [i, p] of small.packages.entries()) {
      for (const [j, v] of p.versions.entries()) {
        expect(v.bytes).toBe(Math.max(8192, Math.round(big.packages[i]!.versions[j]!.bytes * 0.001)));
      }
    }
  });
});

describe('generateWorkload', () => {
  const catalog = syntheticCatalog({ packages: 8, versions: 4, seed: 9 });

  it('gives the same sequence for the same seed, another for another', () => {
    const a = generateWorkload(catalog, { requests: 300, seed: 9 });
    expect(generateWorkload(catalog, { requests: 300, seed: 9 })).toEqual(a);
    expect(generateWorkload(catalog, { requests: 300, seed: 10 })).not.toEqual(a);
  });

  it('puts 1-5 code names in a tag, never two versions of one package', () => {
    const w = generateWorkload(catalog, { requests: 2000, seed: 1 });
    const sizes = new Set<number>();
    for (const r of w) {
      sizes.add(r.codes.length);
      const pkgs = r.codes.map((c) => c.replace(/[0-9].*$/, ''));
      expect(new Set(pkgs).size).toBe(pkgs.length);
    }
    expect([...sizes].sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it('follows Zipf over packages: the most popular appears more than the least', () => {
    const w = generateWorkload(catalog, { requests: 10_000, seed: 2, minCodes: 1, maxCodes: 1 });
    const count = (name: string) => w.filter((r) => r.codes[0]!.startsWith(name)).length;
    expect(count(catalog.packages[0]!.name)).toBeGreaterThan(count(catalog.packages[7]!.name) * 3);
  });

  it('churns versions: only the first version at the start, newer ones dominate at the end', () => {
    const w = generateWorkload(catalog, { requests: 4000, seed: 3 });
    const versionOf = (code: string) => Number(code.replace(/^[A-Z]+/, '').split('.')[0]);
    const firstTenth = w.slice(0, 400).flatMap((r) => r.codes.map(versionOf));
    const lastTenth = w.slice(-400).flatMap((r) => r.codes.map(versionOf));
    expect(w[0]!.codes.every((c) => versionOf(c) === 1)).toBe(true);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(lastTenth)).toBeGreaterThan(mean(firstTenth) + 1.5);
    expect(lastTenth.filter((v) => v === 4).length).toBeGreaterThan(lastTenth.length / 2);
  });

  it('canonicalises a tag by sorting its code names', () => {
    expect(canonicalTag(['MVN3.8', 'GRD7.0', 'JDK11.0'])).toBe('GRD7.0-JDK11.0-MVN3.8');
  });
});

describe('parseTrace', () => {
  it('reads tags with and without timestamps, skipping comments and blanks', () => {
    const reqs = parseTrace('# a trace\n\n1700000000 JDK11.0-MVN3.8\n1700000002.5 GRD7.0\nPY3.11\n');
    expect(reqs).toEqual([{ at: 0, codes: ['JDK11.0', 'MVN3.8'] }, { at: 2500, codes: ['GRD7.0'] }, { codes: ['PY3.11'] }]);
  });

  it('accepts ISO timestamps', () => {
    const reqs = parseTrace('2026-01-01T00:00:00Z JDK11.0\n2026-01-01T00:00:01Z JDK17.0\n');
    expect(reqs.map((r) => r.at)).toEqual([0, 1000]);
  });

  it('names the line of a bad entry', () => {
    expect(() => parseTrace('JDK11.0\nJDK11.0-JDK17.0\n', 't.txt')).toThrow(/t\.txt:2: .*two versions/);
    expect(() => parseTrace('JDK11.0\nfoo bar baz\n', 't.txt')).toThrow(/t\.txt:2/);
    expect(() => parseTrace('yesterday JDK11.0\n')).toThrow(/timestamp/);
    expect(() => parseTrace('# nothing\n')).toThrow(/no tags/);
  });

  it('builds a catalog of exactly the code names a trace uses', () => {
    const c = catalogFromTrace(parseTrace('JDK11.0-MVN3.8\nJDK17.0\nMVN3.8\n'), { seed: 1 });
    expect(c.packages.map((p) => [p.name, p.versions.map((v) => v.code)])).toEqual([
      ['JDK', ['JDK11.0', 'JDK17.0']],
      ['MVN', ['MVN3.8']],
    ]);
    expect(catalogFromTrace(parseTrace('JDK11.0\n'), { seed: 1 }).packages[0]!.versions[0]!.bytes).toBe(c.packages[0]!.versions[0]!.bytes);
  });
});

describe('nodeAssignment', () => {
  it('spreads requests round-robin, or by seeded draws', async () => {
    const { nodeAssignment } = await import('../../../src/bench/run.js');
    expect(nodeAssignment(7, 3, 'round-robin', 1)).toEqual([0, 1, 2, 0, 1, 2, 0]);
    const a = nodeAssignment(200, 4, 'random', 5);
    expect(nodeAssignment(200, 4, 'random', 5)).toEqual(a);
    expect(new Set(a)).toEqual(new Set([0, 1, 2, 3]));
  });
});
