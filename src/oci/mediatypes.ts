import { HostpullError } from '../errors.js';

/** Media types of the OCI image-spec (media-types.md) and of Docker image manifest v2 schema 2. */
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciLayerNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  OciEmptyJson: 'application/vnd.oci.empty.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayerForeignGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export type LayerCompression = 'gzip' | 'zstd' | 'none';

/** The Accept header for manifest requests: every manifest and index type we can read. */
export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
].join(', ');

export function isImageManifestType(mt: string): boolean {
  return mt === MediaType.OciManifest || mt === MediaType.DockerManifest;
}

export function isIndexType(mt: string): boolean {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}

export function isConfigType(mt: string): boolean {
  return mt === MediaType.OciConfig || mt === MediaType.DockerConfig;
}

/**
 * How a layer blob is compressed. Foreign and non-distributable layers are refused: their bytes
 * are not in the registry (they point at URLs outside it), so a host cannot fetch them from the
 * registry it was given, and pulling only some layers of an image would give a broken rootfs.
 */
export function layerCompression(mediaType: string): LayerCompression {
  switch (mediaType) {
    case MediaType.OciLayerGzip:
    case MediaType.DockerLayerGzip:
      return 'gzip';
    case MediaType.OciLayerZstd:
      return 'zstd';
    case MediaType.OciLayer:
      return 'none';
    case MediaType.OciLayerNondistributable:
    case MediaType.OciLayerNondistributableGzip:
    case MediaType.OciLayerNondistributableZstd:
    case MediaType.DockerLayerForeignGzip:
      throw new HostpullError('LAYER_UNSUPPORTED', `layer media type ${mediaType} is foreign/non-distributable`, {
        hint: 'only layers whose bytes are stored in the registry can be pulled; rebuild the image with distributable layers',
      });
    default:
      throw new HostpullError('LAYER_UNSUPPORTED', `unknown layer media type ${JSON.stringify(mediaType)}`, {
        hint: 'supported: OCI tar, tar+gzip, tar+zstd and Docker rootfs.diff.tar.gzip layers',
      });
  }
}
