import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { catalogIndex, syntheticCatalog } from '../../../src/bench/catalog.js';
import { chainId, fileBytes } from '../../../src/bench/content.js';
import { BenchImageBuilder } from '../../../src/bench/images.js';
import { lineChartSvg, renderHtmlReport } from '../../../src/bench/report-html.js';
import type { BenchResult } from '../../../src/bench/run.js';
import { digestOf } from '../../../src/oci/index.js';

function builder(seed = 1): BenchImageBuilder {
  const c = syntheticCatalog({ packages: 3, versions: 2, seed, scale: 0.002 });
  return new BenchImageBuilder(c, catalogIndex(c));
}

function tarNames(tar: Buffer): string[] {
  const names: string[] = [];
  for (let off = 0; off + 512 <= tar.length; ) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    names.push(h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, ''));
    const size = parseInt(h.subarray(124, 136).toString('ascii').replace(/\0.*$/s, ''), 8);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

describe('bench layers', () => {
  it('are byte-identical for the same seed and differ for another', () => {
    expect(builder(1).packageLayer('JDK1.0').digest).toBe(builder(1).packageLayer('JDK1.0').digest);
    expect(builder(1).packageLayer('JDK1.0').digest).not.toBe(builder(2).packageLayer('JDK1.0').digest);
    expect(builder(1).packageLayer('JDK1.0').digest).not.toBe(builder(1).packageLayer('JDK2.0').digest);
  });

  it('keep each package inside /opt/<code>/ and compress about 2x', () => {
    const l = builder().packageLayer('MVN2.0');
    const tar = gunzipSync(l.blob);
    expect(digestOf(tar)).toBe(l.diffId);
    expect(tarNames(tar).every((n) => n === 'opt/' || n.startsWith('opt/mvn2.0/'))).toBe(true);
    const data = fileBytes('x', 64 * 1024);
    expect(data.equals(fileBytes('x', 64 * 1024))).toBe(true);
    expect(l.size).toBeLessThan(tar.length * 0.8);
  });

  it('flattened: one layer with base and every package', () => {
    const [flat, ...rest] = builder().flattenedLayers(['GRD1.0', 'JDK1.0']);
    expect(rest).toEqual([]);
    const names = tarNames(gunzipSync(flat!.blob));
    expect(names).toContain('etc/os-release');
    expect(names.some((n) => n.startsWith('opt/jdk1.0/'))).toBe(true);
    expect(names.some((n) => n.startsWith('opt/grd1.0/'))).toBe(true);
    expect(names.filter((n) => n === 'opt/')).toHaveLength(1);
  });

  it('stacked: a layer digest changes whenever anything below it differs', () => {
    const b = builder();
    const x = b.stackedLayers(['GRD1.0', 'JDK1.0', 'MVN1.0']);
    const y = b.stackedLayers(['GRD1.0', 'JDK2.0', 'MVN1.0']);
    const z = b.stackedLayers(['GRD1.0', 'JDK1.0']);
    expect(x[0]!.digest).toBe(b.base.digest);
    expect(y[1]!.digest).toBe(x[1]!.digest); // same GRD1.0 on the same base
    expect(y[3]!.digest).not.toBe(x[3]!.digest); // MVN1.0 over another JDK
    expect(z[2]!.digest).toBe(x[2]!.digest); // same prefix, same layers
    expect(gunzipSync(x[3]!.blob).includes(Buffer.from(chainId(chainId(chainId(undefined, x[0]!.diffId), x[1]!.diffId), x[2]!.diffId)))).toBe(true);
  });
});

describe('HTML report', () => {
  it('is self-contained: inline SVG charts, no external assets', () => {
    const series = [
      { layerHitRate: 0, byteHitRate: 0, bytesFetched: 100, registryBytes: 100 },
      { layerHitRate: 0.5, byteHitRate: 0.4, bytesFetched: 150, registryBytes: 150 },
    ];
    const approach = (name: 'hostpull' | 'flattened') => ({
      name,
      requests: 2,
      layerHits: 1,
      layerMisses: 1,
      bytesReused: 1,
      bytesMissed: 1,
      layerHitRate: 0.5,
      byteHitRate: 0.4,
      bytesFetched: 150,
      registryBytes: 150,
      storeBytes: 1000,
      cold: { pulls: 1, medianMs: 10, meanMs: 10 },
      warm: { pulls: 1, medianMs: 1, meanMs: 1 },
      images: 1,
      distinctLayers: 1,
      distinctLayerBytes: 1,
      byteMismatches: 0,
      blobBytesFetched: 1,
      registryBlobBytes: 1,
      series,
      requestsDetail: [],
    });
    const r: BenchResult = {
      seed: 1,
      source: 'synthetic',
      nodes: 1,
      unpack: true,
      catalog: { packages: 1, versions: 1, packageBytes: 1, baseBytes: 1 },
      workload: { requests: 2, distinctTags: 1, tags: ['A1.0', 'A1.0'] },
      byteHitRate: 0.4,
      layerHitRate: 0.5,
      bytesFetched: 150,
      registryBytes: 150,
      serverPrimeBytes: 0,
      approaches: { hostpull: approach('hostpull'), flattened: approach('flattened') },
      durationMs: 1,
      phasesMs: {},
    };
    const html = renderHtmlReport(r);
    expect(html.match(/<svg /g)).toHaveLength(2);
    expect(html).toContain('<polyline');
    expect(html).not.toMatch(/<(script|link|img)\b/);
    expect(html.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, '')).not.toMatch(/https?:\/\//);
    expect(lineChartSvg('<t>', [{ label: 'a&b', color: '#000', values: [1] }], 1, String)).toContain('a&#38;b');
  });
});
