import { describe, expect, it } from 'vitest';
import { HostpullError } from '../../../src/errors.js';
import { digestOf } from '../../../src/oci/digest.js';
import {
  checkManifestAgainstConfig,
  MAX_MANIFEST_BYTES,
  parseImageConfig,
  parseManifest,
  type ImageConfig,
  type ImageManifest,
} from '../../../src/oci/manifest.js';
import { MediaType } from '../../../src/oci/mediatypes.js';

const configDigest = digestOf('config');
const layerDigest = digestOf('layer');
const diffId = digestOf('diff');

function bytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function ociManifest(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: configDigest, size: 123 },
    layers: [{ mediaType: MediaType.OciLayerGzip, digest: layerDigest, size: 456 }],
    ...extra,
  };
}

function failure(fn: () => unknown): HostpullError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HostpullError);
    return err as HostpullError;
  }
  throw new Error('expected an error');
}

describe('parseManifest', () => {
  it('reads a valid OCI image manifest', () => {
    const parsed = parseManifest(bytes(ociManifest({ annotations: { 'dev.hostpull.codenames': 'JDK11.0' } })), MediaType.OciManifest);
    expect(parsed.kind).toBe('manifest');
    if (parsed.kind !== 'manifest') return;
    expect(parsed.mediaType).toBe(MediaType.OciManifest);
    expect(parsed.manifest.config.digest).toBe(configDigest);
    expect(parsed.manifest.layers).toEqual([{ mediaType: MediaType.OciLayerGzip, digest: layerDigest, size: 456 }]);
    expect(parsed.manifest.annotations).toEqual({ 'dev.hostpull.codenames': 'JDK11.0' });
  });

  it('reads a Docker v2 manifest', () => {
    const docker = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, digest: configDigest, size: 1 },
      layers: [{ mediaType: MediaType.DockerLayerGzip, digest: layerDigest, size: 2 }],
    };
    const parsed = parseManifest(bytes(docker), `${MediaType.DockerManifest}; charset=utf-8`);
    expect(parsed).toMatchObject({ kind: 'manifest', mediaType: MediaType.DockerManifest });
  });

  it('reads an OCI index and a Docker manifest list', () => {
    const entry = { mediaType: MediaType.OciManifest, digest: layerDigest, size: 10, platform: { os: 'linux', architecture: 'amd64' } };
    const oci = parseManifest(bytes({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [entry] }));
    expect(oci.kind).toBe('index');
    if (oci.kind === 'index') expect(oci.index.manifests[0]!.platform).toEqual({ os: 'linux', architecture: 'amd64' });
    const list = parseManifest(bytes({ schemaVersion: 2, mediaType: MediaType.DockerManifestList, manifests: [{ ...entry, mediaType: MediaType.DockerManifest }] }));
    expect(list).toMatchObject({ kind: 'index', mediaType: MediaType.DockerManifestList });
  });

  it('tells manifest from index by Content-Type or shape when the body has no mediaType', () => {
    const { mediaType: _m, ...bare } = ociManifest();
    expect(parseManifest(bytes(bare))).toMatchObject({ kind: 'manifest', mediaType: MediaType.OciManifest });
    expect(parseManifest(bytes(bare), MediaType.DockerManifest)).toMatchObject({ kind: 'manifest', mediaType: MediaType.DockerManifest });
    expect(parseManifest(bytes({ schemaVersion: 2, manifests: [] }))).toMatchObject({ kind: 'index', mediaType: MediaType.OciIndex });
  });

  it('refuses malformed JSON with MANIFEST_INVALID naming the source', () => {
    const err = failure(() => parseManifest(Buffer.from('{"schemaVersion": 2,'), undefined, 'localhost:5000/x:1'));
    expect(err.code).toBe('MANIFEST_INVALID');
    expect(err.message).toMatch(/^localhost:5000\/x:1: not valid JSON/);
  });

  it.each([['[]'], ['null'], ['"manifest"'], ['42']])('refuses a non-object root %s', (text) => {
    const err = failure(() => parseManifest(Buffer.from(text)));
    expect(err.code).toBe('MANIFEST_INVALID');
    expect(err.message).toContain('not a JSON object');
  });

  it('refuses a manifest without config or layers, naming the field', () => {
    const { config: _c, ...noConfig } = ociManifest();
    expect(failure(() => parseManifest(bytes(noConfig))).message).toContain('config:');
    const { layers: _l, ...noLayers } = ociManifest();
    const err = failure(() => parseManifest(bytes(noLayers)));
    expect(err.code).toBe('MANIFEST_INVALID');
    expect(err.message).toContain('layers:');
  });

  it('refuses a descriptor with a bad digest, naming its path', () => {
    const bad = ociManifest({ layers: [{ mediaType: MediaType.OciLayerGzip, digest: `sha256:${'A'.repeat(64)}`, size: 1 }] });
    const err = failure(() => parseManifest(bytes(bad)));
    expect(err.code).toBe('MANIFEST_INVALID');
    expect(err.message).toContain('layers.0.digest: not a valid sha256/sha512 digest');
  });

  it('refuses a negative or fractional size', () => {
    const negative = ociManifest({ config: { mediaType: MediaType.OciConfig, digest: configDigest, size: -1 } });
    expect(failure(() => parseManifest(bytes(negative))).message).toContain('config.size');
    const fractional = ociManifest({ config: { mediaType: MediaType.OciConfig, digest: configDigest, size: 1.5 } });
    expect(failure(() => parseManifest(bytes(fractional))).code).toBe('MANIFEST_INVALID');
  });

  it('refuses Docker schema 1 with MANIFEST_UNSUPPORTED', () => {
    const schema1 = { schemaVersion: 1, name: 'x', tag: 'latest', fsLayers: [], history: [] };
    const err = failure(() => parseManifest(bytes(schema1), MediaType.DockerSchema1Signed));
    expect(err.code).toBe('MANIFEST_UNSUPPORTED');
    expect(err.message).toContain('schema 1');
    expect(err.hint).toBeTruthy();
  });

  it('refuses a body mediaType that contradicts the Content-Type', () => {
    const err = failure(() => parseManifest(bytes(ociManifest()), MediaType.OciIndex));
    expect(err.code).toBe('MANIFEST_INVALID');
    expect(err.message).toContain(`body says mediaType ${MediaType.OciManifest} but the registry sent Content-Type ${MediaType.OciIndex}`);
  });

  it('ignores a generic Content-Type such as application/json', () => {
    expect(parseManifest(bytes(ociManifest()), 'application/json').kind).toBe('manifest');
  });

  it(`refuses more than ${MAX_MANIFEST_BYTES} bytes before parsing`, () => {
    const base = bytes(ociManifest());
    const padded = Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20);
    base.copy(padded);
    const err = failure(() => parseManifest(padded));
    expect(err.code).toBe('MANIFEST_INVALID');
    expect(err.message).toContain(`${MAX_MANIFEST_BYTES + 1} bytes exceeds the ${MAX_MANIFEST_BYTES}-byte limit`);
    // Exactly at the limit is still read (trailing JSON whitespace is allowed).
    expect(parseManifest(padded.subarray(0, MAX_MANIFEST_BYTES)).kind).toBe('manifest');
  });

  it('refuses an unknown media type with MANIFEST_UNSUPPORTED', () => {
    const err = failure(() => parseManifest(bytes(ociManifest({ mediaType: 'application/vnd.example.thing+json' }))));
    expect(err.code).toBe('MANIFEST_UNSUPPORTED');
    expect(err.message).toContain('application/vnd.example.thing+json');
  });

  it('keeps only the fields the spec names: what else a registry sends is not passed on', () => {
    const m = ociManifest({ extra: 'x' });
    const layer = (m.layers as Array<Record<string, unknown>>)[0]!;
    layer.surprise = { deep: true };
    const p = parseManifest(bytes(m));
    if (p.kind !== 'manifest') throw new Error('fixture');
    expect(p.manifest).not.toHaveProperty('extra');
    expect(p.manifest.layers[0]).not.toHaveProperty('surprise');
    expect(Object.keys(p.manifest.layers[0]!)).toEqual(['mediaType', 'digest', 'size']);
  });

  it('refuses null where the spec allows none, naming the field', () => {
    expect(failure(() => parseManifest(bytes(ociManifest({ annotations: null })))).message).toContain('annotations: not an object');
    const nullSize = ociManifest({ config: { mediaType: MediaType.OciConfig, digest: configDigest, size: null } });
    expect(failure(() => parseManifest(bytes(nullSize))).message).toContain('config.size: not a whole number');
  });

  it('refuses schemaVersion other than 2', () => {
    expect(failure(() => parseManifest(bytes(ociManifest({ schemaVersion: 3 })))).code).toBe('MANIFEST_INVALID');
  });
});

function config(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/bin'], Cmd: ['sh'], Entrypoint: null, Labels: null },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    ...extra,
  };
}

describe('parseImageConfig', () => {
  it('reads a valid config, accepting the null fields Docker writes', () => {
    const c = parseImageConfig(bytes(config()));
    expect(c.rootfs.diff_ids).toEqual([diffId]);
    expect(c.config?.Env).toEqual(['PATH=/usr/bin']);
    expect(c.config?.Entrypoint).toBeNull();
  });

  it('refuses configs with CONFIG_INVALID', () => {
    const cases: Buffer[] = [
      bytes(config({ rootfs: { type: 'layers', diff_ids: ['sha256:nope'] } })),
      bytes(config({ rootfs: { type: 'tarballs', diff_ids: [] } })),
      bytes(config({ os: undefined })),
      bytes(config({ os: '' })),
      bytes(config({ created: null })),
      bytes(config({ config: { Env: ['A=1', 2] } })),
      bytes(config({ config: { Labels: { a: 1 } } })),
      bytes([]),
    ];
    for (const c of cases) expect(failure(() => parseImageConfig(c)).code).toBe('CONFIG_INVALID');
    expect(failure(() => parseImageConfig(Buffer.from('{'))).code).toBe('MANIFEST_INVALID');
  });
});

describe('checkManifestAgainstConfig', () => {
  const manifest = (() => {
    const p = parseManifest(bytes(ociManifest()));
    if (p.kind !== 'manifest') throw new Error('fixture');
    return p.manifest;
  })();
  const imageConfig = parseImageConfig(bytes(config()));

  it('accepts a manifest with one diff_id per layer', () => {
    expect(() => checkManifestAgainstConfig(manifest, imageConfig)).not.toThrow();
  });

  it('refuses a diff_ids count that differs from the layer count', () => {
    const two: ImageConfig = { ...imageConfig, rootfs: { type: 'layers', diff_ids: [diffId, diffId] } };
    const err = failure(() => checkManifestAgainstConfig(manifest, two, 'r/x:1'));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toBe('r/x:1: manifest has 1 layers but config lists 2 diff_ids');
  });

  it('refuses a config descriptor that is not an image config (an artifact)', () => {
    const artifact: ImageManifest = { ...manifest, config: { ...manifest.config, mediaType: MediaType.OciEmptyJson } };
    const err = failure(() => checkManifestAgainstConfig(artifact, imageConfig));
    expect(err.code).toBe('MANIFEST_UNSUPPORTED');
    expect(err.message).toContain(MediaType.OciEmptyJson);
  });
});
