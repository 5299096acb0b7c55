import type { ContainerDirs } from '../container/container-dirs.js';
import { stageContainer, type HostDeps, type PrepareContainerOptions } from '../container/prepare-container.js';
import type { ImageReference } from '../oci/reference.js';
import type { PullResult } from '../pull/puller.js';
import type { Mount } from '../rootfs/mount-plan.js';
import type { RuntimeSpecInput } from '../runtime/build-runtime-spec.js';

export interface RootlessContainer {
  id: string;
  dirs: ContainerDirs;
  /** The rootfs mount, planned for a user namespace (`userxattr`); the helper performs it. */
  mount: Mount;
  /** Spec input for the helper: buildRuntimeSpec runs there, once the rootfs is mounted. */
  spec: RuntimeSpecInput;
  pull: PullResult;
}

/**
 * The unprivileged half of a rootless container, the counterpart of prepareContainer up to the
 * mount: pull and unpack as this user (the unpacker writes rootless layers: `user.overlay.*`
 * whiteout/opaque xattrs, files owned by us), create containers/<id> with its upper and work
 * dirs, record the layers as in use (so GC keeps them), and plan the overlay. Mounting and the
 * bundle are left to the helper in the namespace. On any failure nothing is left behind.
 */
export async function prepareRootlessContainer(
  deps: HostDeps,
  ref: ImageReference,
  options: Omit<PrepareContainerOptions, 'ownedByProcess'> = {},
): Promise<RootlessContainer> {
  // Owned by this process: the mount dies with the helper's namespace, and the record with us.
  const { dirs, mount, imageConfig, pull } = await stageContainer(deps, ref, { ...options, ownedByProcess: true }, { rootless: true });
  const spec: RuntimeSpecInput = { ...options.process, imageConfig, rootfsPath: dirs.rootfs, containerId: dirs.id };
  return { id: dirs.id, dirs, mount, spec, pull };
}
