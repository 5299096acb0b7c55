import { lstatSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import type { Logger } from '../log.js';
import { isAlive, readDirOrEmpty } from '../util/index.js';
import { immediate, type Db } from './database.js';
import type { StoreLayout } from './layout.js';
import type { Leases } from './leases.js';
import { parsePartialFileName } from './protocol.js';

export interface PartialDownloadsOptions {
  /** Keep partial files written to more recently than this (GC's min-age). */
  graceMs: number;
  dryRun: boolean;
  now?: number;
}

export interface PartialDownloadsReport {
  /** Partial files removed (or, for a dry run, that would be). */
  removed: number;
  bytes: number;
}

/**
 * Removes partial downloads under ingest/ that no live process holds and that are older than
 * `graceMs`, so space can always be reclaimed (after a full disk, a partial is usually the biggest
 * thing that no image references). A partial whose owner is alive is never touched: a file of one
 * process's own names its pid; the shared partial of a layer belongs to whoever holds the blob's
 * lease. That lease check and the unlink happen inside one write transaction: a pull takes the
 * lease in a write transaction too, so either it holds the lease before we look (we keep the
 * file), or it takes it after the file is gone and starts from byte 0 — never writes into a file
 * we unlink.
 */
export async function removeAbandonedPartials(
  deps: { db: Db; layout: StoreLayout; leases: Leases; logger: Logger },
  options: PartialDownloadsOptions,
): Promise<PartialDownloadsReport> {
  const { db, layout, leases, logger } = deps;
  const report: PartialDownloadsReport = { removed: 0, bytes: 0 };
  const now = options.now ?? Date.now();
  for (const name of await readDirOrEmpty(layout.ingestDir)) {
    const partial = parsePartialFileName(name);
    if (!partial) continue;
    if (partial.ownerPid !== undefined && isAlive(partial.ownerPid)) continue;
    const path = join(layout.ingestDir, name);
    // The size of what was removed, or undefined when the file is kept.
    const removed = immediate(db, (): number | undefined => {
      if (partial.ownerPid === undefined && leases.blobHeld(partial.digest)) return undefined;
      try {
        const st = lstatSync(path);
        if (!st.isFile() || now - st.mtimeMs < options.graceMs) return undefined;
        if (!options.dryRun) unlinkSync(path);
        return st.size;
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return undefined;
        throw err;
      }
    });
    if (removed === undefined) continue;
    report.removed++;
    report.bytes += removed;
    if (!options.dryRun) logger.info({ path, bytes: removed }, 'gc: removed partial download');
  }
  return report;
}
