import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import type { Logger } from '../log.js';
import { unmountAllUnder } from '../rootfs/index.js';
import { ownerAlive, cleanupStaleContainers } from '../runtime/index.js';
import type { StoreLayout } from '../store/index.js';
import { containerDirs, CREATING_PREFIX, creationMayBeInProgress, PERSISTENT_MARKER, runtimeStateDir } from './container-dirs.js';

/** Unmounts everything under a container's directory and removes it. */
export async function removeContainerDirs(layout: StoreLayout, id: string): Promise<void> {
  const dirs = containerDirs(layout, id);
  unmountAllUnder(dirs.bundle, { detach: true });
  await rm(dirs.bundle, { recursive: true, force: true });
}

/**
 * Removes what a killed `hostpull run` or `hostpull mount --container` left behind: runtime state
 * of containers whose owner process is gone, then their mounts and directories. A container
 * whose owner is alive is never touched.
 */
export async function cleanupLeftoverContainers(layout: StoreLayout, logger: Logger): Promise<string[]> {
  await cleanupStaleContainers(runtimeStateDir(layout), layout.containersDir, { logger });
  let names: string[];
  try {
    names = await readdir(layout.containersDir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  const removed: string[] = [];
  const now = Date.now();
  for (const id of names) {
    const dirs = containerDirs(layout, id);
    if (id.startsWith(CREATING_PREFIX)) {
      if (await creationMayBeInProgress(dirs.bundle, now)) continue;
    } else if (existsSync(join(dirs.bundle, PERSISTENT_MARKER)) || (await ownerAlive(dirs.bundle))) {
      continue;
    }
    logger.info({ id }, 'removing leftover container directory');
    await removeContainerDirs(layout, id);
    removed.push(id);
  }
  return removed;
}
