import type { Logger } from '../log.js';
import { parseManifest, type Descriptor, type Digest } from '../oci/index.js';
import { TOC_ARTIFACT_TYPE, TOC_LAYER_ANNOTATION, TOC_MEDIA_TYPE } from '../oci/index.js';
import { listReferrers } from './referrers.js';
import type { Upstream } from './upstream.js';

/**
 * The TOC blob of a package layer, found among the package manifest's referrers (artifactType
 * {@link TOC_ARTIFACT_TYPE}, annotated with the layer it describes). Undefined for a package
 * published without one, and when the lookup fails: a TOC only enables lazy pulling, so its
 * absence must never stop a composite from being served (the layer is then pulled whole).
 */
export async function findLayerToc(upstream: Upstream, repo: string, manifestDigest: Digest, layerDigest: Digest, logger: Logger, signal?: AbortSignal): Promise<Descriptor | undefined> {
  try {
    const referrers = await listReferrers(upstream, repo, manifestDigest, TOC_ARTIFACT_TYPE, signal);
    for (const r of referrers) {
      if (r.annotations?.[TOC_LAYER_ANNOTATION] !== undefined && r.annotations[TOC_LAYER_ANNOTATION] !== layerDigest) continue;
      const stored = await upstream.getManifest(repo, r.digest, signal);
      if (!stored) continue;
      const parsed = parseManifest(stored.bytes, stored.mediaType, `TOC referrer ${r.digest} of ${repo}`);
      if (parsed.kind !== 'manifest' || parsed.manifest.subject?.digest !== manifestDigest) continue;
      if (parsed.manifest.annotations?.[TOC_LAYER_ANNOTATION] !== layerDigest) continue;
      const blob = parsed.manifest.layers.find((l) => l.mediaType === TOC_MEDIA_TYPE);
      if (blob) return { mediaType: blob.mediaType, digest: blob.digest, size: blob.size };
    }
  } catch (err) {
    logger.warn({ err, repo, manifestDigest }, 'could not look up the table of contents of a package; its layer will be pulled whole');
  }
  return undefined;
}
