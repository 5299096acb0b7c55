import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HostpullError } from '../errors.js';
import { recordMount, releaseMount } from '../gc/mounts.js';
import type { Logger } from '../log.js';
import { parseImageConfig, type ImageConfig } from '../oci/manifest.js';
import type { ImageReference } from '../oci/reference.js';
import type { PullEvent } from '../pull/events.js';
import { Puller, type PullPolicy, type PullResult } from '../pull/puller.js';
import type { RegistryClient } from '../registry/index.js';
import type { Mount } from '../rootfs/mount-plan.js';
import { performMount } from '../rootfs/mount.js';
import { createMountDirs, planImageRootfs } from '../rootfs/prepare-rootfs.js';
import { buildRuntimeSpec, type RuntimeSpecInput } from '../runtime/build-runtime-spec.js';
import { writeBundle } from '../runtime/write-bundle.js';
import type { ContentStore } from '../store/content-store.js';
import { containerDirs, createContainerDir, newContainerId, PERSISTENT_MARKER, type ContainerDirs } from './container-dirs.js';
import { removeContainerDirs } from './remove-container.js';

export interface HostDeps {
  store: ContentStore;
  client: RegistryClient;
  logger: Logger;
  /** Keep layer blobs after unpacking (PullOptions.keepBlobs). Default false. */
  keepBlobs?: boolean;
}

export interface PrepareContainerOptions {
  /** Process settings for config.json (command, env, user, cwd, tty…); image defaults otherwise. */
  process?: Omit<RuntimeSpecInput, 'imageConfig' | 'rootfsPath' | 'containerId'>;
  allowOverlap?: boolean;
  concurrency?: number;
  /** When to ask the registry (see PullPolicy). Default `always`. */
  pullPolicy?: PullPolicy;
  /**
   * The container belongs to the calling process (`hostpull run`): when that process dies, the
   * next start removes it. Otherwise (a rootfs prepared by the daemon for an orchestrator) it
   * stays until removed explicitly, across restarts. Default true.
   */
  ownedByProcess?: boolean;
  signal?: AbortSignal;
  onPullEvent?: (e: PullEvent) => void;
}

export interface PreparedContainer {
  id: string;
  dirs: ContainerDirs;
  /** The mounted rootfs (the bundle's config.json points at it). */
  rootfs: string;
  /** The OCI bundle directory, ready for `runc run --bundle`. */
  bundle: string;
  imageConfig: ImageConfig;
  pull: PullResult;
}

/**
 * Pulls the image (a no-op when its manifest is already complete), mounts its layers as one
 * overlay with a writable upper for this container, and writes the OCI bundle next to it. On any
 * failure nothing is left behind.
 */
export async function prepareContainer(deps: HostDeps, ref: ImageReference, options: PrepareContainerOptions = {}): Promise<PreparedContainer> {
  const staged = await stageContainer(deps, ref, options, { rootless: false });
  const { dirs, imageConfig, pull } = staged;
  try {
    performMount(staged.mount);
    const spec = buildRuntimeSpec({ ...options.process, imageConfig, rootfsPath: dirs.rootfs, containerId: dirs.id });
    await writeBundle(dirs.bundle, spec);
    return { id: dirs.id, dirs, rootfs: dirs.rootfs, bundle: dirs.bundle, imageConfig, pull };
  } catch (err) {
    await removeContainer(deps.store, dirs.id);
    throw err;
  }
}

export interface StagedContainer {
  dirs: ContainerDirs;
  /** The overlay to mount on dirs.rootfs, planned but not performed. */
  mount: Mount;
  imageConfig: ImageConfig;
  pull: PullResult;
}

/**
 * Everything before the mount, shared by root and rootless containers: pull and unpack, create
 * containers/<id> with its upper and work dirs, plan the overlay, and record the layers as held
 * (so GC keeps them). A rootless plan reads whiteouts from `user.overlay.*` (`userxattr`) and is
 * mounted by the namespace helper. On any failure nothing is left behind.
 */
export async function stageContainer(
  deps: HostDeps,
  ref: ImageReference,
  options: PrepareContainerOptions,
  how: { rootless: boolean },
): Promise<StagedContainer> {
  const { store } = deps;
  const pull = await new Puller(deps).pull(ref, {
    unpack: true,
    ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    ...(options.pullPolicy ? { policy: options.pullPolicy } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onPullEvent ? { onEvent: options.onPullEvent } : {}),
  });
  const image = store.images.get(pull.reference);
  if (!image) throw new HostpullError('IMAGE_UNKNOWN', `${pull.reference} vanished from the store after pulling it`);
  const imageConfig = parseImageConfig(await store.blobs.readBytes(image.configDigest), `config of ${pull.reference}`);

  const dirs = containerDirs(store.layout, newContainerId());
  const ownedByProcess = options.ownedByProcess ?? true;
  await createContainerDir(dirs);
  try {
    if (!ownedByProcess) await writeFile(join(dirs.bundle, PERSISTENT_MARKER), `${pull.reference}\n`);
    const writable = { upperdir: dirs.upperdir, workdir: dirs.workdir };
    const plan = await planImageRootfs(store, image, { target: dirs.rootfs, writable, allowOverlap: options.allowOverlap ?? false, rootless: how.rootless });
    await createMountDirs({ target: dirs.rootfs, writable });
    options.signal?.throwIfAborted();
    // Recorded before mounting: from here on GC will not evict these layers. A process-owned
    // record dies with its process, and the next start cleans up after a kill -9.
    recordMount(store, dirs.id, plan.layers.map((l) => l.diffId), ownedByProcess ? { ownerPid: process.pid } : {});
    return { dirs, mount: plan.mount, imageConfig, pull };
  } catch (err) {
    await removeContainer(store, dirs.id);
    throw err;
  }
}

/** Unmounts a container's rootfs, removes its directory and releases its hold on the layers. */
export async function removeContainer(store: ContentStore, id: string): Promise<void> {
  await removeContainerDirs(store.layout, id);
  releaseMount(store, id);
}
