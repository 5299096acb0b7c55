import { randomBytes } from 'node:crypto';
import { mkdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeOwner } from '../runtime/index.js';
import type { StoreLayout } from '../store/index.js';

/** The directories of one container: containers/<id>/{rootfs,upper,work} and the bundle (config.json) in containers/<id>. */
export interface ContainerDirs {
  id: string;
  /** The OCI bundle directory (holds config.json and the owner marker). */
  bundle: string;
  rootfs: string;
  upperdir: string;
  workdir: string;
}

export function newContainerId(): string {
  return randomBytes(6).toString('hex');
}

export function containerDirs(layout: StoreLayout, id: string): ContainerDirs {
  const bundle = join(layout.containersDir, id);
  return { id, bundle, rootfs: join(bundle, 'rootfs'), upperdir: join(bundle, 'upper'), workdir: join(bundle, 'work') };
}

/** runc's state directory (`runc --root`), kept per store so separate roots never see each other's containers. */
export function runtimeStateDir(layout: StoreLayout): string {
  return join(layout.root, 'runtime-state');
}

/**
 * Marks a container that outlives the process that made it (a rootfs the daemon prepared for an
 * orchestrator): leftover cleanup never removes it; only an explicit remove does.
 */
export const PERSISTENT_MARKER = 'hostpull-persistent';

/**
 * Marks a container of `hostpull run --keep` (keep-container.ts): written before its mount is
 * recorded, so from then on no leftover cleanup removes it, even after a kill -9 of its run;
 * once the run has ended the rootfs is unmounted and the directory (upper layer, bundle) stays
 * until `hostpull rm`. Holds the exit status once known (JSON, see KeptMarker).
 */
export const KEPT_MARKER = 'hostpull-kept';

/**
 * The overlay of a container's rootfs as planned (a Mount, JSON), written before mounting: after
 * a reboot took the mount away, the next daemon start mounts it again from this.
 */
export const MOUNT_FILE = 'hostpull-mount.json';

/** Container ids as {@link newContainerId} makes them (other rows of the mounts table are views, snapshots…). */
export function isContainerId(id: string): boolean {
  return /^[a-f0-9]{12}$/.test(id);
}

/** Names of container directories still being created (no owner marker yet). */
export const CREATING_PREFIX = '.creating-';

/** A `.creating-` directory this young may be another process's container being set up right now. */
const CREATING_GRACE_MS = 60_000;

/**
 * True when `dir` (named `.creating-…`) may still be set up by another process (see
 * createContainerDir); false once it is old enough to be the remains of one that died.
 */
export async function creationMayBeInProgress(dir: string, now = Date.now()): Promise<boolean> {
  const st = await stat(dir).catch(() => undefined);
  return st === undefined || now - st.mtimeMs < CREATING_GRACE_MS;
}

/**
 * Creates containers/<id> with its owner marker already inside: the directory is made under a
 * temporary name and renamed, so another process's leftover cleanup never sees a container
 * directory without an owner and mistakes it for the remains of a killed run.
 */
export async function createContainerDir(dirs: ContainerDirs): Promise<void> {
  const temp = join(dirs.bundle, '..', `${CREATING_PREFIX}${dirs.id}`);
  // Not traversable by others: the rootfs below may hold setuid-root files (DESIGN §2).
  await mkdir(temp, { recursive: true, mode: 0o700 });
  await writeOwner(temp);
  await rename(temp, dirs.bundle);
}
