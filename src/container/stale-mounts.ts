import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContentStore } from '../store/index.js';
import { releaseContainerNames } from './container-names.js';
import { isKept, keepContainer } from './keep-container.js';

export interface CleanStaleMountsDeps {
  /** Unmounts everything at or below a directory, deepest first (rootfs' unmountAllUnder). */
  unmountAllUnder: (dir: string) => string[];
}

export interface StaleMountReport {
  /** Rootfs ids whose owner was gone: unmounted, removed and released. */
  released: string[];
  /** Kept containers (`run --keep`) whose run was killed: unmounted and kept, as their run would have (keepContainer). */
  kept: string[];
  /** Ids that could not be cleaned (still busy); kept recorded so their layers stay. */
  failed: Array<{ id: string; error: string }>;
}

/**
 * At daemon start: a rootfs recorded with an owner process that no longer runs (a `hostpull run`
 * killed -9, a crashed host tool) is unmounted, its containers/<id> removed and its record
 * released, so its layers become collectable; a kept container (`run --keep`) is unmounted and
 * kept instead. Rootfs recorded without an owner (prepared for an orchestrator, a kept container
 * whose run ended) and those of live owners are never touched.
 */
export async function cleanStaleMounts(store: ContentStore, deps: CleanStaleMountsDeps): Promise<StaleMountReport> {
  const report: StaleMountReport = { released: [], kept: [], failed: [] };
  for (const m of store.mounts.stale()) {
    const dir = join(store.layout.containersDir, m.id);
    try {
      if (isKept(dir)) {
        await keepContainer(store, m.id);
        report.kept.push(m.id);
        store.logger.info({ id: m.id, ownerPid: m.ownerPid }, 'kept container whose run was killed: unmounted, kept until `hostpull rm`');
        continue;
      }
      deps.unmountAllUnder(dir);
      await rm(dir, { recursive: true, force: true });
      await releaseContainerNames(store, m.id);
      store.mounts.release(m.id);
      report.released.push(m.id);
      store.logger.info({ id: m.id, ownerPid: m.ownerPid }, 'released the rootfs of a process that is gone');
    } catch (err) {
      report.failed.push({ id: m.id, error: (err as Error).message });
      store.logger.warn({ id: m.id, err: (err as Error).message }, 'cannot clean a stale rootfs; keeping its record');
    }
  }
  return report;
}
