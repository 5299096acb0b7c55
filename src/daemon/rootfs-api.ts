import { handOverContainer, prepareContainer, removeContainer, type HostDeps } from '../container/prepare-container.js';
import type { ContainerApi } from './handler.js';

/**
 * The daemon's rootfs for runtimes and orchestrators, on the container functions. A rootfs is
 * prepared as this process's own (so a daemon killed while preparing it leaves something the next
 * start removes, see reconcileContainers) and handed over only when its id is about to be sent.
 */
export function rootfsApi(deps: HostDeps): ContainerApi {
  return {
    async prepare(ref, body, signal) {
      const c = await prepareContainer(deps, ref, {
        ownedByProcess: true,
        allowOverlap: body.allowOverlap ?? false,
        process: { ...(body.args ? { args: body.args } : {}), ...(body.env ? { env: body.env } : {}) },
        signal,
      });
      return { id: c.id, rootfs: c.rootfs, bundle: c.bundle, reference: c.pull.reference, manifestDigest: c.pull.manifestDigest };
    },
    handOver: (rootfs) => handOverContainer(deps.store, rootfs.id, rootfs.reference),
    remove: (id) => removeContainer(deps.store, id),
  };
}
