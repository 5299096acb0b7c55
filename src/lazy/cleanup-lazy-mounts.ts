import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import { digestHex } from '../oci/index.js';
import { processAlive } from '../util/index.js';
import type { Logger } from '../log.js';
import { unmountAllUnder } from '../rootfs/index.js';
import type { ContentStore, StoreLayout } from '../store/index.js';
import { lazyMountsDir, lazyRoot, parseHelperDirName } from './lazy-paths.js';

/**
 * Removes the FUSE mounts (and mount dirs) of lazy-layer helpers that are gone: a helper whose
 * hostpull process was killed -9 unmounts itself when it notices, but a helper killed too leaves
 * a mount that answers "transport endpoint is not connected". Mounts are grouped under
 * `lazy/mnt/<helper pid>-<start time>`, so a live helper's mounts are never touched. Detached
 * (MNT_DETACH): a leftover container still holding one cannot block the cleanup.
 */
export async function cleanupStaleLazyMounts(layout: StoreLayout, logger: Logger): Promise<string[]> {
  const root = lazyMountsDir(layout);
  let names: string[];
  try {
    names = await readdir(root);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  const removed: string[] = [];
  for (const name of names) {
    const owner = parseHelperDirName(name);
    if (owner && processAlive(owner.pid, owner.start)) continue;
    removed.push(...(await removeHelperMounts(join(root, name), logger)));
  }
  return removed;
}

/**
 * Detaches the FUSE mounts under a helper's mount dir (`lazy/mnt/<pid>-<start>`) and removes it,
 * once that helper is gone: at the next start (cleanupStaleLazyMounts), or as soon as its parent
 * sees it exit (LazyLayers). The mount points it returns were unmounted.
 */
export async function removeHelperMounts(dir: string, logger: Logger): Promise<string[]> {
  const unmounted = unmountAllUnder(dir, { detach: true });
  if (unmounted.length > 0) logger.info({ dir, unmounted }, 'removed the lazy mounts of a helper that is gone');
  await rm(dir, { recursive: true, force: true });
  return unmounted;
}

/**
 * Removes the span caches of layers that are unpacked now (completed, or pulled whole since):
 * a lazy layer whose background pull did not finish keeps its verified spans for the next lazy
 * start, until the layer arrives some other way. Never touches the cache of a layer in use by a
 * live helper (that layer is not unpacked yet, or its own completion removes the cache).
 */
export async function pruneSpanCaches(store: ContentStore): Promise<number> {
  const dir = join(lazyRoot(store.layout), 'spans');
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 0;
    throw err;
  }
  const unpacked = new Set(store.layers.list().map((l) => digestHex(l.blobDigest)));
  let removed = 0;
  for (const hex of names) {
    if (!unpacked.has(hex)) continue;
    await rm(join(dir, hex), { recursive: true, force: true });
    removed++;
  }
  return removed;
}
