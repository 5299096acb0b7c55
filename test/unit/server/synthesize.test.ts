import { describe, expect, it } from 'vitest';
import { digestOf, MediaType, type Digest, type ImageConfig } from '../../../src/oci/index.js';
import { parseManifest } from '../../../src/oci/manifest.js';
import { layerClaims } from '../../../src/pull/layer-claims.js';
import { synthesizeComposite, type ResolvedPackage } from '../../../src/server/synthesize.js';

function pkg(code: string, created = '2021-01-01T00:00:00Z'): ResolvedPackage {
  const layerDigest = digestOf(`layer ${code}`);
  const diffId = digestOf(`tar ${code}`);
  const config: ImageConfig = { created, architecture: 'amd64', os: 'linux', config: { Env: [`PATH=/ignored`, `${code.replace(/\W/g, '_')}_HOME=/opt/${code}`] }, rootfs: { type: 'layers', diff_ids: [diffId] } };
  return {
    code,
    entry: { image: `pkg/${code.toLowerCase()}:1`, prefix: `/opt/${code}`, env: {}, pathAdd: [`/opt/${code}/bin`] },
    manifestDigest: digestOf(`manifest ${code}`),
    layer: { mediaType: MediaType.DockerLayerGzip, digest: layerDigest, size: 100 },
    diffId,
    config,
  };
}

describe('synthesizeComposite', () => {
  it('is byte-identical for the same packages', () => {
    const a = synthesizeComposite([pkg('A1'), pkg('B2')]);
    const b = synthesizeComposite([pkg('A1'), pkg('B2')]);
    expect(a.manifest.equals(b.manifest)).toBe(true);
    expect(a.manifestDigest).toBe(b.manifestDigest);
    expect(a.manifestDigest).toBe(digestOf(a.manifest));
    expect(a.configDigest).toBe(digestOf(a.config));
    expect(a.manifestDigest).not.toBe(synthesizeComposite([pkg('A1'), pkg('C3')]).manifestDigest);
  });

  it('reuses the package layer digests and lists diff_ids in layer order', () => {
    const base = { name: 'pkg/base:latest', manifestDigest: digestOf('base') as Digest, layers: [{ mediaType: MediaType.OciLayerGzip, digest: digestOf('base layer'), size: 5 }], config: { created: '2019-01-01T00:00:00Z', architecture: 'arm64', os: 'linux', config: { Env: ['PATH=/bin', 'LANG=C'], Cmd: ['/bin/sh'] }, rootfs: { type: 'layers' as const, diff_ids: [digestOf('base tar')] } } };
    const s = synthesizeComposite([pkg('A1'), pkg('B2', '2022-06-01T00:00:00Z')], base);
    const manifest = JSON.parse(s.manifest.toString()) as { layers: Array<{ digest: string; mediaType: string }>; annotations: Record<string, string> };
    const config = JSON.parse(s.config.toString()) as { created: string; architecture: string; config: { Env: string[]; Cmd: string[] }; rootfs: { diff_ids: string[] }; history: unknown[] };
    expect(manifest.layers.map((l) => l.digest)).toEqual([digestOf('base layer'), digestOf('layer A1'), digestOf('layer B2')]);
    expect(manifest.layers[1]!.mediaType).toBe(MediaType.OciLayerGzip);
    expect(config.rootfs.diff_ids).toEqual([digestOf('base tar'), digestOf('tar A1'), digestOf('tar B2')]);
    expect(config.history).toHaveLength(3);
    expect(config.created).toBe('2022-06-01T00:00:00Z');
    expect(config.architecture).toBe('arm64');
    expect(config.config.Cmd).toEqual(['/bin/sh']);
    expect(config.config.Env).toEqual(['PATH=/opt/A1/bin:/opt/B2/bin:/bin', 'A1_HOME=/opt/A1', 'B2_HOME=/opt/B2', 'LANG=C']);
    expect(manifest.annotations['dev.hostpull.codenames']).toBe('A1-B2');
    expect(JSON.parse(manifest.annotations['dev.hostpull.packages']!)).toEqual({ A1: digestOf('manifest A1'), B2: digestOf('manifest B2') });
    expect(manifest.annotations['org.opencontainers.image.base.digest']).toBe(digestOf('base'));
  });

  it('names each layer\'s diff_id in a containerd.io/snapshot/ annotation, which containerd passes to snapshotters', () => {
    const base = { name: 'pkg/base:latest', manifestDigest: digestOf('base') as Digest, layers: [{ mediaType: MediaType.OciLayerGzip, digest: digestOf('base layer'), size: 5 }], config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' as const, diff_ids: [digestOf('base tar')] } } };
    const s = synthesizeComposite([pkg('A1'), pkg('B2')], base);
    const manifest = JSON.parse(s.manifest.toString()) as { layers: Array<{ annotations: Record<string, string> }> };
    const config = JSON.parse(s.config.toString()) as { rootfs: { diff_ids: string[] } };
    expect(manifest.layers.map((l) => l.annotations['containerd.io/snapshot/hostpull.diff-id'])).toEqual(config.rootfs.diff_ids);
    expect(manifest.layers.map((l) => l.annotations['org.opencontainers.image.title'])).toEqual([undefined, 'A1', 'B2']);
  });

  it('annotates each layer with the claim the nodes hold it to, and the node reads them back', () => {
    const base = { name: 'pkg/base:latest', manifestDigest: digestOf('base') as Digest, layers: [{ mediaType: MediaType.OciLayerGzip, digest: digestOf('base layer'), size: 5 }], config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' as const, diff_ids: [digestOf('base tar')] } } };
    const suid = pkg('B2');
    suid.entry = { ...suid.entry, allowSetuid: true };
    const s = synthesizeComposite([pkg('A1'), suid], base);
    const parsed = parseManifest(s.manifest);
    if (parsed.kind !== 'manifest') throw new Error('not a manifest');
    const isolation = (a: Record<string, string> | undefined) => Object.fromEntries(Object.entries(a ?? {}).filter(([k]) => k.startsWith('containerd.io/snapshot/hostpull.') && !k.endsWith('diff-id')));
    expect(parsed.manifest.layers.map((l) => isolation(l.annotations))).toEqual([
      { 'containerd.io/snapshot/hostpull.role': 'base' },
      { 'containerd.io/snapshot/hostpull.codename': 'A1', 'containerd.io/snapshot/hostpull.prefix': '/opt/A1', 'containerd.io/snapshot/hostpull.role': 'package' },
      { 'containerd.io/snapshot/hostpull.allow-setuid': 'true', 'containerd.io/snapshot/hostpull.codename': 'B2', 'containerd.io/snapshot/hostpull.prefix': '/opt/B2', 'containerd.io/snapshot/hostpull.role': 'package' },
    ]);
    expect(layerClaims(parsed.manifest, 'test')).toEqual([undefined, { code: 'A1', prefix: 'opt/A1', allowSetuid: false }, { code: 'B2', prefix: 'opt/B2', allowSetuid: true }]);
  });

  it('uses the epoch when no creation time is known', () => {
    const p = pkg('A1');
    delete p.config.created;
    const config = JSON.parse(synthesizeComposite([p]).config.toString()) as { created: string };
    expect(config.created).toBe('1970-01-01T00:00:00Z');
  });
});
