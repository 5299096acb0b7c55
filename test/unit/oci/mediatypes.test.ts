import { describe, expect, it } from 'vitest';
import { HostpullError } from '../../../src/errors.js';
import { isConfigType, isImageManifestType, isIndexType, layerCompression, MANIFEST_ACCEPT, MediaType } from '../../../src/oci/mediatypes.js';

function layerError(mediaType: string): HostpullError {
  try {
    layerCompression(mediaType);
  } catch (err) {
    expect(err).toBeInstanceOf(HostpullError);
    return err as HostpullError;
  }
  throw new Error(`layerCompression(${mediaType}) did not throw`);
}

describe('layerCompression', () => {
  it.each([
    [MediaType.OciLayerGzip, 'gzip'],
    [MediaType.DockerLayerGzip, 'gzip'],
    [MediaType.OciLayerZstd, 'zstd'],
    [MediaType.OciLayer, 'none'],
  ])('%s → %s', (mediaType, compression) => {
    expect(layerCompression(mediaType)).toBe(compression);
  });

  it.each([
    MediaType.OciLayerNondistributable,
    MediaType.OciLayerNondistributableGzip,
    MediaType.OciLayerNondistributableZstd,
    MediaType.DockerLayerForeignGzip,
  ])('refuses foreign/non-distributable %s with LAYER_UNSUPPORTED', (mediaType) => {
    const err = layerError(mediaType);
    expect(err.code).toBe('LAYER_UNSUPPORTED');
    expect(err.message).toContain(mediaType);
    expect(err.message).toContain('foreign/non-distributable');
    expect(err.hint).toContain('distributable');
  });

  it('refuses an unknown type, quoting it and listing what is supported', () => {
    const err = layerError('application/vnd.example.layer+lz4');
    expect(err.code).toBe('LAYER_UNSUPPORTED');
    expect(err.message).toBe('unknown layer media type "application/vnd.example.layer+lz4"');
    expect(err.hint).toMatch(/tar\+gzip/);
  });

  it('does not accept a config or manifest type as a layer', () => {
    expect(layerError(MediaType.OciConfig).code).toBe('LAYER_UNSUPPORTED');
    expect(layerError(MediaType.OciManifest).code).toBe('LAYER_UNSUPPORTED');
  });
});

describe('media type classes', () => {
  it('tells manifests, indexes and configs apart', () => {
    expect(isImageManifestType(MediaType.OciManifest) && isImageManifestType(MediaType.DockerManifest)).toBe(true);
    expect(isImageManifestType(MediaType.OciIndex)).toBe(false);
    expect(isIndexType(MediaType.OciIndex) && isIndexType(MediaType.DockerManifestList)).toBe(true);
    expect(isIndexType(MediaType.DockerManifest)).toBe(false);
    expect(isConfigType(MediaType.OciConfig) && isConfigType(MediaType.DockerConfig)).toBe(true);
    expect(isConfigType(MediaType.OciEmptyJson)).toBe(false);
  });

  it('asks registries for every manifest and index type it can read', () => {
    const accepted = MANIFEST_ACCEPT.split(', ');
    expect(accepted.sort()).toEqual([MediaType.DockerManifest, MediaType.DockerManifestList, MediaType.OciIndex, MediaType.OciManifest].sort());
  });
});
