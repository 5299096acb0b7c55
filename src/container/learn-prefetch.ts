import type { LazyLayers, LazyMount } from '../lazy/lazy-layers.js';
import { recordPrefetchList } from '../lazy/lazy-records.js';
import type { Digest } from '../oci/digest.js';
import type { HostDeps } from './prepare-container.js';

/**
 * After a container over lazy layers ran: the spans its reads needed, per layer in first-read
 * order, become the image's prefetch list on this node (kept from the first start only), which
 * the next lazy start of the same image fetches first.
 */
export async function learnPrefetch(deps: HostDeps, lazy: LazyLayers, manifestDigest: Digest, mounts: readonly LazyMount[]): Promise<void> {
  if (mounts.length === 0) return;
  try {
    const lists = new Map<Digest, number[]>();
    for (const m of mounts) lists.set(m.blobDigest, await lazy.readOrder(m.blobDigest));
    recordPrefetchList(deps.store, manifestDigest, lists);
  } catch (err) {
    deps.logger.warn({ err: (err as Error).message, manifestDigest }, 'could not record the prefetch list of a lazy start');
  }
}
