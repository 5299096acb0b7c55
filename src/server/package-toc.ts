import { isHostpullError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { parseManifest, type Descriptor, type Digest } from '../oci/index.js';
import { TOC_ARTIFACT_TYPE, TOC_LAYER_ANNOTATION, TOC_MEDIA_TYPE } from '../oci/index.js';
import { listReferrers } from './referrers.js';
import type { Upstream } from './upstream.js';

/**
 * What the upstream holds is unreadable as a referrer (a malformed referrers index or artifact
 * manifest): the same answer every time, so it counts as "no TOC" and the composite's digest
 * stays the same from one resolution to the next.
 */
const INVALID_CONTENT: ReadonlySet<ErrorCode> = new Set(['MANIFEST_INVALID', 'MANIFEST_UNSUPPORTED', 'MANIFEST_TOO_LARGE']);

/**
 * The TOC blob of a package layer, found among the package manifest's referrers (artifactType
 * {@link TOC_ARTIFACT_TYPE}, annotated with the layer it describes). Undefined for a package
 * published without one, or whose referrers are unreadable (logged): a TOC only enables lazy
 * pulling, the layer is then pulled whole. Throws when the lookup itself fails (the upstream
 * cannot be reached, answers an error): the caller must not take that for "no TOC", since a
 * composite built without it has another digest than the same composite built with it.
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
    if (!(isHostpullError(err) && INVALID_CONTENT.has(err.code))) throw err;
    logger.warn({ err, repo, manifestDigest }, 'the table of contents of a package is unreadable; its layer will be pulled whole');
  }
  return undefined;
}
