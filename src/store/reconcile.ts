import { statSync } from 'node:fs';
import { rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { readDirOrEmpty, isAlive } from '../util/index.js';
import { isDigest, type Digest } from '../oci/index.js';
import { hashFile, type BlobStore } from './blobs.js';
import type { LayerStore } from './layers.js';
import type { StoreLayout } from './layout.js';
import type { Leases } from './leases.js';
import { blobLeaseKey, PARTIAL_MAX_AGE_MS, stagingDirOwner, UNCOMMITTED_FILE_GRACE_MS } from './protocol.js';

export interface ReconcileOptions {
  /** Partial downloads untouched for this long are removed. Default {@link PARTIAL_MAX_AGE_MS}. */
  maxIngestAgeMs?: number;
}

export interface ReconcileReport {
  blobRowsDropped: number;
  blobsAdopted: number;
  blobFilesRemoved: number;
  ingestRemoved: number;
  layerDirsRemoved: number;
  layerRowsDropped: number;
  /** Snapshot fs/ directories put back from layers/ (an adoption killed before its commit). */
  adoptionsRestored: number;
}

/**
 * Makes the files and the rows agree after a crash or kill -9 at any point of an ingest or an
 * unpack: rows without files are dropped, verified files without rows are adopted (the crash
 * came between rename and commit), partial downloads are kept for resume until they are old,
 * staging directories of dead processes are removed, and a snapshot's fs/ that an adoption had
 * moved into layers/ without committing goes back.
 */
export async function reconcile(
  deps: { layout: StoreLayout; blobs: BlobStore; layers: LayerStore; leases: Leases; logger: Logger },
  options: ReconcileOptions = {},
): Promise<ReconcileReport> {
  const report: ReconcileReport = { blobRowsDropped: 0, blobsAdopted: 0, blobFilesRemoved: 0, ingestRemoved: 0, layerDirsRemoved: 0, layerRowsDropped: 0, adoptionsRestored: 0 };
  const now = Date.now();
  const known = dropBlobRowsWithoutFiles(deps, report);
  await adoptOrRemoveBlobFiles(deps, known, deps.leases.liveKeys(), now, report);
  await removeOldPartials(deps.layout, now - (options.maxIngestAgeMs ?? PARTIAL_MAX_AGE_MS), report);
  await reconcileLayerDirs(deps, report);
  return report;
}

type Deps = Parameters<typeof reconcile>[0];

/** Rows whose file is missing or of the wrong size go; returns the digests whose files are good. */
function dropBlobRowsWithoutFiles({ blobs, logger }: Deps, report: ReconcileReport): Set<string> {
  const known = new Set<string>();
  for (const row of blobs.list()) {
    const st = statSync(blobs.path(row.digest), { throwIfNoEntry: false });
    if (!st || st.size !== row.size) {
      logger.warn({ digest: row.digest }, 'blob row without a matching file; dropping the row');
      blobs.deleteRow(row.digest);
      report.blobRowsDropped++;
      // Not `known`: a file of the wrong size left behind is judged below like any orphan.
      continue;
    }
    known.add(row.digest);
  }
  return known;
}

/**
 * A file in blobs/ without a row: adopted when it hashes to its name (the crash came between
 * rename and commit), removed otherwise; left alone while a live lease holds its blob or it is
 * young enough to be a commit in progress elsewhere.
 */
async function adoptOrRemoveBlobFiles({ layout, blobs, logger }: Deps, known: Set<string>, live: Set<string>, now: number, report: ReconcileReport): Promise<void> {
  for (const algorithm of await readDirOrEmpty(layout.blobsDir)) {
    for (const fan of await readDirOrEmpty(join(layout.blobsDir, algorithm))) {
      for (const hex of await readDirOrEmpty(join(layout.blobsDir, algorithm, fan))) {
        const digest = `${algorithm}:${hex}`;
        if (known.has(digest) || (isDigest(digest) && live.has(blobLeaseKey(digest)))) continue;
        const path = join(layout.blobsDir, algorithm, fan, hex);
        const st = await stat(path).catch(() => undefined);
        if (!st || now - st.mtimeMs < UNCOMMITTED_FILE_GRACE_MS) continue;
        if (isDigest(digest) && (algorithm === 'sha256' || algorithm === 'sha512')) {
          const actual = await hashFile(path, algorithm);
          if (actual.digest === digest) {
            blobs.adopt(digest as Digest, actual.size);
            report.blobsAdopted++;
            continue;
          }
        }
        logger.warn({ path }, 'unverifiable file in blobs/; removing it');
        await unlink(path).catch(() => undefined);
        report.blobFilesRemoved++;
      }
    }
  }
}

/** Partial downloads untouched since `before` are given up. */
async function removeOldPartials(layout: StoreLayout, before: number, report: ReconcileReport): Promise<void> {
  for (const name of await readDirOrEmpty(layout.ingestDir)) {
    const path = join(layout.ingestDir, name);
    const st = await stat(path).catch(() => undefined);
    if (st && st.mtimeMs < before) {
      await unlink(path).catch(() => undefined);
      report.ingestRemoved++;
    }
  }
}

/**
 * Adoptions of dead processes first: their numbered directories may be a snapshot's only copy,
 * to be put back, not removed. Then staging directories of dead processes and numbered
 * directories without a row go; rows without a directory go.
 */
async function reconcileLayerDirs({ layout, layers, logger }: Deps, report: ReconcileReport): Promise<void> {
  for (const a of await layers.recoverAdoptions()) {
    const at = { snapshot: a.snapshotName, snapshotId: a.snapshotId, diffId: a.diffId, layerDir: a.layerId };
    if (a.outcome === 'restored') {
      logger.warn(at, "adoption of a snapshot's fs/ killed before its commit: moved back from layers/");
      report.adoptionsRestored++;
    } else if (a.outcome === 'removed') {
      logger.warn(at, 'adoption killed before its commit, its snapshot removed since (or the directory an older leftover): removed it from layers/');
      report.layerDirsRemoved++;
    }
  }
  const rows = new Map(layers.list().map((r) => [String(r.id), r]));
  const present = new Set<string>();
  for (const name of await readDirOrEmpty(layout.layersDir)) {
    const owner = stagingDirOwner(name);
    if (owner !== undefined) {
      if (!isAlive(owner)) {
        await rm(join(layout.layersDir, name), { recursive: true, force: true });
        report.layerDirsRemoved++;
      }
      continue;
    }
    if (!rows.has(name)) {
      // A numbered dir without a row: an unpack that renamed but never committed, unless another
      // process committed it after `rows` was read, or it is an adoption's (its owner alive, or
      // killed since recoverAdoptions): removeUnclaimedDir re-checks both under the lock.
      if (await layers.removeUnclaimedDir(name)) report.layerDirsRemoved++;
      continue;
    }
    present.add(name);
  }
  for (const [name, row] of rows) {
    if (!present.has(name)) {
      if (!layers.remove(row)) continue;
      logger.warn({ diffId: row.diffId, id: row.id }, 'layer row without its directory; dropped the row');
      report.layerRowsDropped++;
    }
  }
}
