import { handOverContainer, learnPrefetch, prepareContainer, removeContainer, type HostDeps } from '../container/index.js';
import type { LazyLayers } from '../lazy/index.js';
import type { ContainerApi } from './handler.js';

export interface RootfsLazyOptions {
  /** The daemon's lazy layers (one FUSE helper for every lazy rootfs it prepares). */
  layers: LazyLayers;
  /** How long after preparing a lazy rootfs its reads are learned as the image's prefetch list. Default 30 s. */
  learnMs?: number;
}

/**
 * The daemon's rootfs for runtimes and orchestrators, on the container functions. A rootfs is
 * prepared as this process's own (so a daemon killed while preparing it leaves something the next
 * start removes, see reconcileContainers) and handed over only when its id is about to be sent.
 * A rootfs over lazy layers is never handed over: its lower dirs are FUSE mounts served by this
 * daemon's helper, which end with the daemon, so it stays the daemon's and the next start removes it.
 */
export function rootfsApi(deps: HostDeps, lazy?: RootfsLazyOptions): ContainerApi {
  const lazyIds = new Set<string>();
  return {
    async prepare(ref, body, signal) {
      const c = await prepareContainer(deps, ref, {
        ownedByProcess: true,
        allowOverlap: body.allowOverlap ?? false,
        process: { ...(body.args ? { args: body.args } : {}), ...(body.env ? { env: body.env } : {}) },
        ...(body.lazy && lazy ? { lazy: lazy.layers } : {}),
        signal,
      });
      if (lazy && c.lazyMounts.length > 0) {
        lazyIds.add(c.id);
        // Learned once the first start has had a moment to read; a later start of the same image fetches it first.
        const learn = setTimeout(() => void learnPrefetch(deps, lazy.layers, ref, c.pull.manifestDigest, c.lazyMounts), lazy.learnMs ?? 30_000);
        learn.unref();
      }
      return { id: c.id, rootfs: c.rootfs, bundle: c.bundle, reference: c.pull.reference, manifestDigest: c.pull.manifestDigest };
    },
    handOver: async (rootfs) => {
      if (!lazyIds.has(rootfs.id)) await handOverContainer(deps.store, rootfs.id, rootfs.reference);
    },
    remove: async (id) => {
      lazyIds.delete(id);
      return removeContainer(deps.store, id, lazy?.layers);
    },
  };
}
