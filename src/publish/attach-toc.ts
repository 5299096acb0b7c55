import type { Descriptor } from '../oci/index.js';
import { TOC_ARTIFACT_TYPE, TOC_LAYER_ANNOTATION, TOC_MEDIA_TYPE } from '../oci/index.js';
import { artifactManifest, attachReferrer } from '../server/index.js';
import type { Upstream } from '../server/index.js';
import type { SeekableLayer } from './seekable-layer.js';

/**
 * Pushes a seekable layer's TOC blob and attaches it to the image manifest `subject` as an OCI
 * referrer (artifactType {@link TOC_ARTIFACT_TYPE}, annotated with the layer it describes); the
 * server finds it there and names it on that layer in every composite it synthesises. Package
 * images (`hostpull publish`) and base images (the demo's) alike.
 */
export async function attachToc(upstream: Upstream, repository: string, layer: SeekableLayer, subject: Descriptor, created: string, signal?: AbortSignal): Promise<void> {
  await upstream.putBlob(repository, layer.tocDigest, layer.tocBlob.length, layer.tocBlob, signal ? { signal } : {});
  const annotations = { [TOC_LAYER_ANNOTATION]: layer.digest, 'org.opencontainers.image.created': created };
  const artifact = artifactManifest(TOC_ARTIFACT_TYPE, [{ mediaType: TOC_MEDIA_TYPE, digest: layer.tocDigest, size: layer.tocBlob.length }], subject, annotations);
  await attachReferrer(upstream, repository, artifact, subject.digest, signal);
}
