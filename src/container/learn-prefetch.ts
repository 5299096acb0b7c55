import type { LazyLayers, LazyMount } from '../lazy/index.js';
import type { Digest, ImageReference } from '../oci/index.js';
import type { HostDeps } from './prepare-container.js';

/**
 * After a container over lazy layers started: the spans its reads needed, per layer in
 * first-read order, become the image's prefetch list on this node (the first start's is kept)
 * and are offered to the server, so the next lazy start here or on another node fetches them first.
 */
export async function learnPrefetch(deps: HostDeps, lazy: LazyLayers, ref: ImageReference, manifestDigest: Digest, mounts: readonly LazyMount[]): Promise<void> {
  if (mounts.length === 0) return;
  try {
    await lazy.learn({ registry: ref.registry, repository: ref.repository }, manifestDigest, mounts.map((m) => m.blobDigest));
  } catch (err) {
    deps.logger.warn({ err: (err as Error).message, manifestDigest }, 'could not record the prefetch list of a lazy start');
  }
}
