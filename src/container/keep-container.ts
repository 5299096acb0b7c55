import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LazyLayers } from '../lazy/index.js';
import { unmountAllUnder } from '../rootfs/index.js';
import { removeOwner } from '../runtime/index.js';
import type { ContentStore } from '../store/index.js';
import { containerDirs, KEPT_MARKER } from './container-dirs.js';

/** What the kept marker holds (JSON). */
export interface KeptMarker {
  /** The container's exit status; absent while it runs, and when its run ended without one (killed, the runtime failed). */
  exitCode?: number;
}

/**
 * Marks a container to be kept. Written whole under another name, then renamed: `ps` never reads
 * half a marker, and a crash while rewriting it leaves the old one (the container stays kept).
 */
export async function markKept(bundle: string, marker: KeptMarker = {}): Promise<void> {
  const temp = join(bundle, `${KEPT_MARKER}.tmp`);
  await writeFile(temp, `${JSON.stringify(marker)}\n`);
  await rename(temp, join(bundle, KEPT_MARKER));
}

export function isKept(bundle: string): boolean {
  return existsSync(join(bundle, KEPT_MARKER));
}

/** The marker of a kept container, or undefined when it is not kept ({} when unreadable: kept all the same). */
export async function readKept(bundle: string): Promise<KeptMarker | undefined> {
  let text: string;
  try {
    text = await readFile(join(bundle, KEPT_MARKER), 'utf8');
  } catch {
    return isKept(bundle) ? {} : undefined;
  }
  try {
    const m = JSON.parse(text) as { exitCode?: unknown };
    return typeof m.exitCode === 'number' ? { exitCode: m.exitCode } : {};
  } catch {
    return {};
  }
}

/**
 * Ends the run of a kept container (`hostpull run --keep`) and keeps what it leaves, as podman
 * keeps an exited container: its directory (upper layer, bundle) stays until `hostpull rm`, its
 * rootfs is unmounted, and its mount record stays, without an owner, so GC keeps the layers the
 * upper layer sits over and its `--name` stays taken. Called by the run when its container has
 * exited, and by a later run's leftover cleanup for a kept container whose run was killed.
 *
 * Idempotent, and safe to repeat after a crash at any step: the marker (already there since the
 * container was staged) keeps every cleanup from removing the directory; the record is disowned
 * only after the unmount, so until then its owner is the dead run and the next cleanup does it
 * all again; the record is never released here, so the layers are held throughout.
 */
export async function keepContainer(store: ContentStore, id: string, options: { exitCode?: number; lazy?: LazyLayers } = {}): Promise<void> {
  const { bundle } = containerDirs(store.layout, id);
  if (options.exitCode !== undefined) await markKept(bundle, { exitCode: options.exitCode });
  unmountAllUnder(bundle, { detach: true });
  await options.lazy?.release(id);
  store.mounts.disown(id);
  await removeOwner(bundle);
}
