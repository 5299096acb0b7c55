import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContentStore } from '../store/index.js';

export interface CleanStaleMountsDeps {
  /** Unmounts everything at or below a directory, deepest first (rootfs' unmountAllUnder). */
  unmountAllUnder: (dir: string) => string[];
}

export interface StaleMountReport {
  /** Rootfs ids whose owner was gone: unmounted, removed and released. */
  released: string[];
  /** Ids that could not be cleaned (still busy); kept recorded so their layers stay. */
  failed: Array<{ id: string; error: string }>;
}

/**
 * At daemon start: a rootfs recorded with an owner process that no longer runs (a `hostpull run`
 * killed -9, a crashed host tool) is unmounted, its containers/<id> removed and its record
 * released, so its layers become collectable. Rootfs recorded without an owner (prepared for an
 * orchestrator) and those of live owners are never touched.
 */
export async function cleanStaleMounts(store: ContentStore, deps: CleanStaleMountsDeps): Promise<StaleMountReport> {
  const report: StaleMountReport = { released: [], failed: [] };
  for (const m of store.mounts.stale()) {
    const dir = join(store.layout.containersDir, m.id);
    try {
      deps.unmountAllUnder(dir);
      await rm(dir, { recursive: true, force: true });
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
