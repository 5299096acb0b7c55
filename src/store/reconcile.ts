import { rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { readDirOrEmpty } from '../util/read-dir-or-empty.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { hashFile, type BlobStore } from './blobs.js';
import type { LayerStore } from './layers.js';
import type { StoreLayout } from './layout.js';
import { isAlive, type Leases } from './leases.js';

export interface ReconcileOptions {
  /** Partial downloads untouched for this long are removed. Default 24 h. */
  maxIngestAgeMs?: number;
}

export interface ReconcileReport {
  blobRowsDropped: number;
  blobsAdopted: number;
  blobFilesRemoved: number;
  ingestRemoved: number;
  layerDirsRemoved: number;
  layerRowsDropped: number;
}

/** A file this young may belong to a commit in progress in another process (rename, then row). */
const IN_FLIGHT_GRACE_MS = 60_000;


/**
 * Makes the files and the rows agree after a crash or kill -9 at any point of an ingest or an
 * unpack: rows without files are dropped, verified files without rows are adopted (the crash
 * came between rename and commit), partial downloads are kept for resume until they are old, and
 * staging directories of dead processes are removed.
 */
export async function reconcile(
  deps: { layout: StoreLayout; blobs: BlobStore; layers: LayerStore; leases: Leases; logger: Logger },
  options: ReconcileOptions = {},
): Promise<ReconcileReport> {
  const { layout, blobs, layers, leases, logger } = deps;
  const report: ReconcileReport = { blobRowsDropped: 0, blobsAdopted: 0, blobFilesRemoved: 0, ingestRemoved: 0, layerDirsRemoved: 0, layerRowsDropped: 0 };
  const now = Date.now();
  const live = leases.liveKeys();

  const known = new Set<string>();
  for (const row of blobs.list()) {
    const st = await stat(blobs.path(row.digest)).catch(() => undefined);
    if (!st || st.size !== row.size) {
      logger.warn({ digest: row.digest }, 'blob row without a matching file; dropping the row');
      blobs.deleteRow(row.digest);
      report.blobRowsDropped++;
      // Not `known`: a file of the wrong size left behind is judged below like any orphan.
      continue;
    }
    known.add(row.digest);
  }

  for (const algorithm of await readDirOrEmpty(layout.blobsDir)) {
    for (const fan of await readDirOrEmpty(join(layout.blobsDir, algorithm))) {
      for (const hex of await readDirOrEmpty(join(layout.blobsDir, algorithm, fan))) {
        const digest = `${algorithm}:${hex}`;
        if (known.has(digest) || live.has(`blob:${digest}`)) continue;
        const path = join(layout.blobsDir, algorithm, fan, hex);
        const st = await stat(path).catch(() => undefined);
        if (!st || now - st.mtimeMs < IN_FLIGHT_GRACE_MS) continue;
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

  const maxAge = options.maxIngestAgeMs ?? 24 * 3600_000;
  for (const name of await readDirOrEmpty(layout.ingestDir)) {
    const path = join(layout.ingestDir, name);
    const st = await stat(path).catch(() => undefined);
    if (st && now - st.mtimeMs > maxAge) {
      await unlink(path).catch(() => undefined);
      report.ingestRemoved++;
    }
  }

  const rows = new Map(layers.list().map((r) => [String(r.id), r]));
  const present = new Set<string>();
  for (const name of await readDirOrEmpty(layout.layersDir)) {
    const staging = /^staging-(\d+)-/.exec(name);
    if (staging) {
      if (!isAlive(Number(staging[1]))) {
        await rm(join(layout.layersDir, name), { recursive: true, force: true });
        report.layerDirsRemoved++;
      }
      continue;
    }
    if (!rows.has(name)) {
      // A numbered dir without a row: an unpack that renamed but never committed, unless another
      // process committed it after `rows` was read; removeUnclaimedDir re-checks under the lock.
      if (await layers.removeUnclaimedDir(name)) report.layerDirsRemoved++;
      continue;
    }
    present.add(name);
  }
  for (const [name, row] of rows) {
    if (!present.has(name)) {
      logger.warn({ diffId: row.diffId, id: row.id }, 'layer row without its directory; dropping the row');
      await layers.remove(row);
      report.layerRowsDropped++;
    }
  }
  return report;
}
