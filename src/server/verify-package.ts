import type { Readable } from 'node:stream';
import { expansionBound, isArchiveError, LAYER_LIMIT_DEFAULTS, normalisePrefix, readLayer, type PackageClaim } from '../archive/index.js';
import { HostpullError } from '../errors.js';
import { layerCompression, type Digest, type LayerCompression } from '../oci/index.js';
import type { CatalogEntry } from './catalog-entry.js';
import { readUpstreamImage } from './upstream-image.js';
import type { Upstream } from './upstream.js';

export interface VerifyPackageOptions {
  /** Expansion bound of the layer, as on the nodes. Default 100. */
  maxExpansionRatio?: number;
  signal?: AbortSignal;
}

/** The claim a catalog entry gives its package layer; the same one the node enforces. */
function packageClaim(code: string, entry: CatalogEntry): PackageClaim {
  return { code, prefix: normalisePrefix(entry.prefix), allowSetuid: entry.allowSetuid === true };
}

/**
 * Checks a package image before it enters the catalog: exactly one layer, held to the claim its
 * entry gives it by the same tar reader and entry rules the nodes unpack with (archive/), and the
 * layer's uncompressed digest equal to the config's diff_id. The layer is streamed and never
 * extracted. Returns the package's manifest digest, which the catalog pins. Throws
 * PACKAGE_REFUSED saying why; when the archive is at fault, `details` carry the archive error's
 * code and rule (the ones a node reports for the same layer).
 */
export async function verifyPackage(upstream: Upstream, code: string, entry: CatalogEntry, options: VerifyPackageOptions = {}): Promise<Digest> {
  const refuse = (why: string, details?: Record<string, unknown>, cause?: unknown) =>
    new HostpullError('PACKAGE_REFUSED', `${code} (${entry.image}): ${why}`, { details: { codeName: code, ...details }, ...(cause ? { cause } : {}) });
  const image = await readUpstreamImage(upstream, entry.image, undefined, options.signal);
  if (!image) throw refuse(`image not found in ${upstream.location}`);
  if (image.manifest.layers.length !== 1) throw refuse(`has ${image.manifest.layers.length} layers; a package image has exactly one`);
  const layer = image.manifest.layers[0]!;
  let compression: LayerCompression;
  try {
    compression = layerCompression(layer.mediaType);
  } catch (err) {
    throw refuse((err as Error).message);
  }
  const blob = await upstream.getBlob(image.repo, layer.digest, undefined, options.signal);
  if (!blob) throw refuse(`layer ${layer.digest} is missing`);

  let diffId: Digest;
  try {
    ({ diffId } = await readLayer(blob.stream as Readable, {
      compression,
      where: layer.digest,
      claim: packageClaim(code, entry),
      maxEntries: LAYER_LIMIT_DEFAULTS.maxEntries,
      maxDepth: LAYER_LIMIT_DEFAULTS.maxDepth,
      maxBytes: LAYER_LIMIT_DEFAULTS.maxBytes,
      tarBounds: [expansionBound(layer.size, options.maxExpansionRatio ?? LAYER_LIMIT_DEFAULTS.maxExpansionRatio)],
      signal: options.signal,
    }));
  } catch (err) {
    if (isArchiveError(err)) {
      throw refuse(err.message, { archiveCode: err.code, rule: err.details?.rule, entry: err.details?.entry }, err);
    }
    throw err;
  }
  if (diffId !== image.config.rootfs.diff_ids[0]) {
    throw refuse(`uncompressed layer digest ${diffId} differs from the config's diff_id ${image.config.rootfs.diff_ids[0]}`);
  }
  return image.manifestDigest;
}
