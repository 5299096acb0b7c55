import { existsSync, realpathSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import type { MountRow, ContentStore } from '../store/index.js';
import { type Mount, listMountsUnder, performMount, unmountAllUnder } from '../rootfs/index.js';
import { cleanStaleMounts } from './stale-mounts.js';
import { isKept } from './keep-container.js';
import { cleanupStaleContainers, ownerAlive } from '../runtime/index.js';
import { readDirOrEmpty } from '../util/index.js';
import { containerDirs, CREATING_PREFIX, creationMayBeInProgress, isContainerId, MOUNT_FILE, runtimeStateDir } from './container-dirs.js';

export interface ContainerReconcileReport {
  /** Recorded for a process that is gone: unmounted, removed, released. */
  released: string[];
  /** Kept containers (`run --keep`) whose run was killed: unmounted and kept (keepContainer). */
  kept: string[];
  /** A record whose directory is gone (an interrupted remove): the record is released. */
  recordsDropped: string[];
  /** A recorded rootfs that was not mounted (after a reboot): mounted again. */
  remounted: string[];
  /** Directories with no record, or a record that could not be repaired: unmounted and removed. */
  removed: string[];
  /** Could not be cleaned (busy); left as they are, their records kept so their layers stay. */
  failed: Array<{ id: string; error: string }>;
}

/**
 * At daemon start, makes containers/ and the mount records agree, one log line per repair:
 *  - a record whose owner process is gone (a killed `hostpull run`, a rootfs the daemon was
 *    preparing when it died): unmounted, removed, released; a kept one (`run --keep`) unmounted
 *    and kept;
 *  - a record whose directory is gone (a remove interrupted between its two steps): released;
 *  - a record whose rootfs is not mounted (a reboot): mounted again from its saved plan, or
 *    removed when that cannot be done (a layer gone); not a kept container's, unmounted on purpose;
 *  - a directory with no record, whose owner is not alive: unmounted and removed (nothing holds
 *    its layers, so GC could take them from under it).
 * Only container ids are considered (views of `hostpull mount` are not containers), and nothing a
 * live process owns is touched, so this is safe beside `hostpull run` in other processes.
 */
export async function reconcileContainers(store: ContentStore): Promise<ContainerReconcileReport> {
  const log = store.logger;
  const report: ContainerReconcileReport = { released: [], kept: [], recordsDropped: [], remounted: [], removed: [], failed: [] };
  // First the runtime's containers of killed runs, as a run's own cleanup does: unmounting their
  // rootfs below would leave them running over nothing, with nobody to stop them.
  for (const id of await cleanupStaleContainers(runtimeStateDir(store.layout), store.layout.containersDir, { logger: log })) {
    log.info({ id }, 'container of a killed hostpull run: deleted from the runtime');
  }
  const stale = await cleanStaleMounts(store, { unmountAllUnder: (dir) => unmountAllUnder(dir) });
  report.released.push(...stale.released);
  report.kept.push(...stale.kept);
  report.failed.push(...stale.failed);

  const records = new Map(store.mounts.list().filter((m) => isContainerId(m.id)).map((m) => [m.id, m]));
  // The kernel reports real paths: compare against the canonical containers dir.
  const canonical = realpathSync(store.layout.containersDir);
  const mounted = new Set(listMountsUnder(canonical).map((m) => m.mountPoint));
  for (const record of records.values()) {
    if (record.ownerPid !== null) continue; // a live owner's (dead ones were released above)
    const dirs = containerDirs(store.layout, record.id);
    try {
      if (!existsSync(dirs.bundle)) {
        store.mounts.release(record.id);
        report.recordsDropped.push(record.id);
        log.info({ id: record.id }, 'rootfs record without its directory (an interrupted remove): record released');
      } else if (isKept(dirs.bundle)) {
        continue; // exited and kept (run --keep): its rootfs is unmounted on purpose
      } else if (!mounted.has(join(canonical, record.id, 'rootfs'))) {
        const why = await remount(store, record, dirs.bundle);
        if (why === undefined) {
          report.remounted.push(record.id);
          log.info({ id: record.id, rootfs: dirs.rootfs }, 'rootfs was not mounted (a reboot?): mounted again');
        } else {
          await removeDir(dirs.bundle);
          store.mounts.release(record.id);
          report.removed.push(record.id);
          log.warn({ id: record.id, why }, 'rootfs was not mounted and cannot be mounted again: removed');
        }
      }
    } catch (err) {
      report.failed.push({ id: record.id, error: (err as Error).message });
      log.warn({ id: record.id, err: (err as Error).message }, 'cannot reconcile a rootfs; leaving it as it is');
    }
  }

  for (const name of await readDirOrEmpty(store.layout.containersDir)) {
    const dir = join(store.layout.containersDir, name);
    if (name.startsWith(CREATING_PREFIX)) {
      if (await creationMayBeInProgress(dir)) continue;
    } else if (!isContainerId(name) || records.has(name) || (await ownerAlive(dir))) {
      continue;
    }
    try {
      await removeDir(dir);
      report.removed.push(name);
      log.info({ id: name }, 'container directory without a mount record: unmounted and removed');
    } catch (err) {
      report.failed.push({ id: name, error: (err as Error).message });
      log.warn({ id: name, err: (err as Error).message }, 'cannot remove a container directory without a record');
    }
  }
  return report;
}

/** Mounts a recorded rootfs again from its saved plan; returns why it cannot, or undefined when mounted. */
async function remount(store: ContentStore, record: MountRow, bundle: string): Promise<string | undefined> {
  let plan: Mount;
  try {
    plan = JSON.parse(await readFile(join(bundle, MOUNT_FILE), 'utf8')) as Mount;
  } catch (err) {
    return `no readable ${MOUNT_FILE} (${errnoCode(err) ?? (err as Error).message})`;
  }
  if (plan.target !== join(bundle, 'rootfs')) return `${MOUNT_FILE} names another target (${String(plan.target)})`;
  const missing = record.diffIds.find((d) => store.layers.get(d) === undefined);
  if (missing) return `layer ${missing} is no longer unpacked`;
  performMount(plan);
  return undefined;
}

async function removeDir(dir: string): Promise<void> {
  unmountAllUnder(dir, { detach: true });
  await rm(dir, { recursive: true, force: true });
}
