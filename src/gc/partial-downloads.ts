import { lstatSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import { immediate } from '../store/database.js';
import type { ContentStore } from '../store/content-store.js';
import { isAlive } from '../store/leases.js';
import { readDirOrEmpty } from '../util/read-dir-or-empty.js';

export interface PartialDownloadsOptions {
  /** Keep partial files written to more recently than this (GcPolicy.graceMs). */
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
 * `ingest/` holds two kinds of partial file (store/blobs.ts openIngest): the shared
 * `<alg>-<hex>.partial` of a layer download, written only by the holder of the lease
 * `blob:<alg>:<hex>`, and `<alg>-<hex>.partial.<pid>-<rand>`, a manifest or config that one
 * process writes on its own.
 */
const PARTIAL_NAME = /^(sha256|sha512)-([a-f0-9]+)\.partial(?:\.(\d+)-[a-f0-9]+)?$/;

/**
 * Removes partial downloads that no live process holds and that are older than `graceMs`, so
 * space can always be reclaimed (after a full disk, a partial is usually the biggest thing that
 * no image references). A partial whose lease holder is alive is never touched. The lease check
 * and the unlink of a shared partial happen inside one write transaction: a pull takes the lease
 * in a write transaction too, so either it holds the lease before we look (we keep the file), or
 * it takes it after the file is gone and starts from byte 0 — never writes into a file we unlink.
 */
export async function collectPartialDownloads(store: ContentStore, options: PartialDownloadsOptions): Promise<PartialDownloadsReport> {
  const report: PartialDownloadsReport = { removed: 0, bytes: 0 };
  const dir = store.layout.ingestDir;
  const names = await readDirOrEmpty(dir);
  const now = options.now ?? Date.now();
  const db = store.db;
  const holder = db.prepare('SELECT pid FROM leases WHERE key = ?');
  for (const name of names) {
    const m = PARTIAL_NAME.exec(name);
    if (!m) continue;
    const path = join(dir, name);
    const ownerPid = m[3] === undefined ? undefined : Number(m[3]);
    if (ownerPid !== undefined && isAlive(ownerPid)) continue;
    // The size of what was removed, or undefined when the file is kept.
    const removed = immediate(db, (): number | undefined => {
      if (ownerPid === undefined) {
        const lease = holder.get(`blob:${m[1]}:${m[2]}`) as { pid: number } | undefined;
        if (lease && isAlive(lease.pid)) return undefined;
      }
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
    if (!options.dryRun) store.logger.info({ path, bytes: removed }, 'gc: removed partial download');
  }
  return report;
}
