import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HostpullError } from '../errors.js';
import type { LazyLayers } from '../lazy/index.js';
import type { Logger } from '../log.js';
import { unmountAllUnder } from '../rootfs/index.js';
import { ownerAlive, cleanupStaleContainers } from '../runtime/index.js';
import type { ContentStore, StoreLayout } from '../store/index.js';
import { processAlive, readDirOrEmpty } from '../util/index.js';
import { containerDirs, CREATING_PREFIX, creationMayBeInProgress, isContainerId, PERSISTENT_MARKER, runtimeStateDir } from './container-dirs.js';
import { releaseContainerNames } from './container-names.js';
import { isKept, keepContainer } from './keep-container.js';
import { findContainer, type ContainerInfo } from './list-containers.js';

/** Unmounts everything under a container's directory and removes it. */
export async function removeContainerDirs(layout: StoreLayout, id: string): Promise<void> {
  const dirs = containerDirs(layout, id);
  unmountAllUnder(dirs.bundle, { detach: true });
  await rm(dirs.bundle, { recursive: true, force: true });
}

/**
 * Unmounts a container's rootfs, removes its directory and releases its hold on the layers (and
 * on its lazy layers, which are unmounted once complete and unused).
 * Idempotent, and complete whatever an earlier, interrupted removal left: the directory goes
 * before the record, so a crash between them leaves a record without a directory, which
 * reconcileContainers (or the next run's cleanupLeftoverContainers) releases. True if there was
 * anything to remove.
 */
export async function removeContainer(store: ContentStore, id: string, lazy?: LazyLayers): Promise<boolean> {
  const existed = existsSync(containerDirs(store.layout, id).bundle);
  await removeContainerDirs(store.layout, id);
  await releaseContainerNames(store, id);
  const released = store.mounts.release(id);
  await lazy?.release(id);
  return released || existed;
}

/**
 * Removes what a killed `hostpull run` or `hostpull mount --container` left behind, as a daemon
 * start would (reconcileContainers), so a host without a daemon does not pile up records that
 * keep layers from GC:
 *  - runtime state of containers whose owner process is gone;
 *  - their directories, mount records and names (the whole removeContainer);
 *  - a kept container (`run --keep`) whose run was killed is not removed but kept as that run
 *    would have (keepContainer: unmounted, its record owner-less);
 *  - records of containers whose owner is gone and whose directory is gone already (a run
 *    killed while removing its container, between the directory and the record).
 * A container whose owner is alive, a rootfs prepared for an orchestrator and a kept container
 * are never removed here.
 */
export async function cleanupLeftoverContainers(store: ContentStore, logger: Logger): Promise<string[]> {
  const { layout } = store;
  await cleanupStaleContainers(runtimeStateDir(layout), layout.containersDir, { logger });
  const removed: string[] = [];
  const now = Date.now();
  for (const id of await readDirOrEmpty(layout.containersDir)) {
    const dirs = containerDirs(layout, id);
    if (id.startsWith(CREATING_PREFIX)) {
      if (await creationMayBeInProgress(dirs.bundle, now)) continue;
    } else if (existsSync(join(dirs.bundle, PERSISTENT_MARKER))) {
      continue;
    } else if (isKept(dirs.bundle)) {
      // The record tells whether its run still runs: the run drops its owner file before it
      // disowns the record (runContainer's cleanup, then keepContainer). Before the record exists
      // (the marker is written first) only the owner file can tell.
      const row = store.mounts.get(id);
      if (row === undefined ? await ownerAlive(dirs.bundle) : row.ownerPid === null || processAlive(row.ownerPid, row.ownerStart)) continue;
      if (row !== undefined) {
        await keepContainer(store, id);
        logger.info({ id }, 'kept container whose run was killed: unmounted, kept until `hostpull rm`');
        continue;
      }
      // Its run died before the mount was recorded: the container never ran; nothing to keep.
    } else if (await ownerAlive(dirs.bundle)) {
      continue;
    }
    logger.info({ id }, 'removing leftover container');
    await removeContainer(store, id);
    removed.push(id);
  }
  // Only container ids: other records (a `hostpull mount` view) have no directory under containers/.
  for (const m of store.mounts.stale()) {
    if (!isContainerId(m.id) || existsSync(containerDirs(layout, m.id).bundle)) continue;
    await releaseContainerNames(store, m.id);
    store.mounts.release(m.id);
    logger.info({ id: m.id, ownerPid: m.ownerPid }, 'released the record of a container whose directory is gone');
    removed.push(m.id);
  }
  return removed;
}

/**
 * `hostpull rm`: removes a container that is not running — kept by `run --keep`, or left by a
 * killed run — with its directory (upper layer included), mount record and name, so its layers
 * become collectable. A running container, and a rootfs prepared for an orchestrator (which the
 * daemon API that prepared it removes), are refused.
 */
export async function removeStoppedContainer(store: ContentStore, idOrName: string, logger: Logger): Promise<ContainerInfo> {
  const c = await findContainer(store, idOrName);
  if (c.state === 'running') {
    throw new HostpullError('CONTAINER_RUNNING', `container ${c.name ?? c.id} is running (hostpull run pid ${c.ownerPid})`, { hint: `stop it first: \`hostpull stop ${c.name ?? c.id}\`` });
  }
  if (c.state === 'prepared') {
    throw new HostpullError('CONTAINER_RUNNING', `container ${c.id} is a rootfs prepared for an orchestrator`, { hint: 'remove it through the daemon API that prepared it' });
  }
  // A killed run's runtime may still be running its container: deleted first, as a run's cleanup does.
  await cleanupStaleContainers(runtimeStateDir(store.layout), store.layout.containersDir, { logger });
  await removeContainer(store, c.id);
  return c;
}
