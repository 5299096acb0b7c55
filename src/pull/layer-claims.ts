import { existsSync } from 'node:fs';
import { footprintViolation, normalisePrefix, type PackageClaim } from '../archive/index.js';
import { HostpullError, isHostpullError } from '../errors.js';
import { LAYER_ALLOW_SETUID_ANNOTATION, LAYER_CODENAME_ANNOTATION, LAYER_PREFIX_ANNOTATION, LAYER_ROLE_ANNOTATION, type Digest, type ImageManifest } from '../oci/index.js';
import type { ContentStore } from '../store/index.js';

/**
 * The claim each layer of an image is held to, aligned with its layers: a package layer of a
 * composite gets the prefix (and setuid allowance) its layer annotations state
 * (server/synthesize.ts writes them); a base layer, or any layer of an ordinary image, none.
 * Throws MANIFEST_INVALID for annotations that do not make a claim.
 */
export function layerClaims(manifest: ImageManifest, where: string): Array<PackageClaim | undefined> {
  return manifest.layers.map((layer, i) => layerClaim(layer.annotations, `${where}: layer ${i} (${layer.digest})`));
}

/**
 * The claim in one layer's annotations (a descriptor's, or the labels containerd passes to the
 * snapshotter): undefined for a base layer. `where` names the layer in errors.
 */
export function layerClaim(annotations: Readonly<Record<string, string>> | undefined, where: string): PackageClaim | undefined {
  const a = annotations ?? {};
  const role = a[LAYER_ROLE_ANNOTATION];
  if (role === undefined || role === 'base') return undefined;
  const code = a[LAYER_CODENAME_ANNOTATION];
  const prefix = a[LAYER_PREFIX_ANNOTATION];
  if (role !== 'package' || !code || !prefix) {
    throw new HostpullError('MANIFEST_INVALID', `${where} has role ${JSON.stringify(role)} without a code name and prefix`, { details: { where } });
  }
  try {
    return { code, prefix: normalisePrefix(prefix), allowSetuid: a[LAYER_ALLOW_SETUID_ANNOTATION] === 'true' };
  } catch (err) {
    if (!isHostpullError(err)) throw err;
    throw new HostpullError('MANIFEST_INVALID', `${where} of ${code}: ${err.message}`, { cause: err, details: { where } });
  }
}

export interface StoredLayerCheck {
  diffId: Digest;
  claim: PackageClaim | undefined;
}

/**
 * Holds layers already unpacked in the store to this image's claims, from what the store recorded
 * when they were unpacked (their footprint), without reading them again. A layer unpacked under
 * another image as a base layer, or under another package's claim, may break this one's: that is
 * refused with LAYER_UNSAFE. Returns the layers that cannot be judged from the record (missing
 * directory, or unpacked before footprints were recorded): the caller quarantines those so they
 * are unpacked again under the claim.
 */
export function checkStoredLayers(store: ContentStore, layers: readonly StoredLayerCheck[], where: string): Digest[] {
  const redo: Digest[] = [];
  for (const { diffId, claim } of layers) {
    const row = store.layers.get(diffId);
    if (!row) continue;
    if (!existsSync(store.layers.dir(row))) {
      redo.push(diffId);
      continue;
    }
    if (!claim) continue;
    const footprint = store.layers.footprint(diffId);
    if (!footprint) {
      redo.push(diffId);
      continue;
    }
    const violation = footprintViolation(footprint, claim);
    if (violation) {
      throw new HostpullError('LAYER_UNSAFE', `${where}: package layer ${diffId} of ${claim.code} (unpacked earlier under another image) ${violation.reason}`, {
        details: { rule: violation.rule, diffId, codeName: claim.code, prefix: `/${claim.prefix}` },
      });
    }
  }
  return redo;
}

/** Quarantines the stored layers `checkStoredLayers` could not judge; true when it moved any. */
export function quarantineUnjudged(store: ContentStore, diffIds: readonly Digest[]): boolean {
  let moved = false;
  for (const diffId of diffIds) {
    const row = store.layers.get(diffId);
    if (!row) continue;
    store.logger.warn({ diffId, id: row.id }, 'stored layer has no usable record for this check; quarantined, unpacking it again');
    store.layers.quarantine(row);
    moved = true;
  }
  return moved;
}
