import { renameSync } from 'node:fs';
import { rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { immediate } from '../store/database.js';
import type { ContentStore } from '../store/content-store.js';
import { mountedDiffIds } from './mounts.js';
import { collectPartialDownloads } from './partial-downloads.js';
import { DEFAULT_GC_GRACE_MS, selectEvictions, type GcPlan, type GcPolicy, type GcSnapshot } from './select-evictions.js';

export interface GcOptions extends GcPolicy {
  /** Report what would be removed without removing it. Default false. */
  dryRun?: boolean;
  signal?: AbortSignal;
}

export interface GcReport {
  dryRun: boolean;
  maxStoreSize: number | null;
  imagesRemoved: string[];
  layersRemoved: number;
  blobsRemoved: number;
  /** Blobs + unpacked layers before, and after (planned, for a dry run). */
  bytesBefore: number;
  bytesAfter: number;
  freedBytes: number;
  /** Still over the budget: everything left is mounted, leased by a pull, or fresh. */
  overBudget: boolean;
  /** Planned removals skipped because the item was used, mounted or leased after the snapshot. */
  skipped: number;
  /** Partial downloads in ingest/ that no live process held, removed (counted apart from the store size). */
  partialsRemoved: number;
  partialBytesFreed: number;
}

/**
 * A lease whose heartbeat is older than this belongs to a dead or hung pull (leases.ts takes
 * such leases over after 30 s; GC waits a little longer before it ignores one).
 */
const LEASE_FRESH_MS = 60_000;

/** Reads what GC needs from the store in one read transaction (one consistent snapshot). */
export function gcSnapshot(store: ContentStore, now = Date.now()): GcSnapshot {
  return store.db.transaction(() => {
    const images = store.images.list().map((img) => ({
      reference: img.reference,
      manifestDigest: img.manifestDigest,
      indexDigest: img.indexDigest,
      configDigest: img.configDigest,
      layers: store.images.layers(img.manifestDigest).map((l) => ({ blobDigest: l.blobDigest, diffId: l.diffId })),
    }));
    const leased = new Set<Digest>();
    for (const key of store.leases.liveKeys()) if (key.startsWith('blob:')) leased.add(key.slice('blob:'.length) as Digest);
    return { blobs: store.blobs.list(), layers: store.layers.list(), images, mounted: mountedDiffIds(store), snapshotted: store.snapshots.diffIds(), leased, now };
  })();
}

/**
 * `hostpull gc`: removes what no image references (partial downloads no live process holds
 * included) and, under `maxStoreSize`, the least recently used unused layers (policy in
 * select-evictions.ts); everything used within `graceMs` stays. Safe beside pulls and mounts in other
 * processes: every row is deleted in a write transaction that re-checks it is still unmounted,
 * named by no containerd snapshot, unleased and unused since the snapshot, and a layer directory
 * is moved out of its numbered name inside that transaction (a new layer may reuse the id)
 * before it is deleted.
 */
export async function collectGarbage(store: ContentStore, options: GcOptions = {}): Promise<GcReport> {
  const snapshot = gcSnapshot(store);
  const plan = selectEvictions(snapshot, options);
  const report: GcReport = {
    dryRun: options.dryRun ?? false,
    maxStoreSize: options.maxStoreSize ?? null,
    imagesRemoved: plan.images,
    layersRemoved: plan.layers.length,
    blobsRemoved: plan.blobs.length,
    bytesBefore: plan.bytesBefore,
    bytesAfter: plan.bytesAfter,
    freedBytes: plan.bytesBefore - plan.bytesAfter,
    overBudget: plan.overBudget,
    skipped: 0,
    partialsRemoved: 0,
    partialBytesFreed: 0,
  };
  const partials = await collectPartialDownloads(store, { graceMs: options.graceMs ?? DEFAULT_GC_GRACE_MS, dryRun: report.dryRun });
  report.partialsRemoved = partials.removed;
  report.partialBytesFreed = partials.bytes;
  if (report.dryRun) return report;
  const done = await applyPlan(store, snapshot, plan, options.signal);
  // Blobs and layers found corrupt were moved aside for a look; gc is when they go.
  await store.quarantine.purge();
  report.layersRemoved = done.layers;
  report.blobsRemoved = done.blobs;
  report.skipped = plan.layers.length + plan.blobs.length - done.layers - done.blobs;
  return report;
}

async function applyPlan(store: ContentStore, snapshot: GcSnapshot, plan: GcPlan, signal?: AbortSignal): Promise<{ layers: number; blobs: number }> {
  const db = store.db;
  const log = store.logger;
  const done = { layers: 0, blobs: 0 };
  const lastUsedLayer = new Map(snapshot.layers.map((l) => [l.id, l.lastUsed]));
  const lastUsedBlob = new Map(snapshot.blobs.map((b) => [b.digest, b.lastUsed]));

  // Images first, so no reader takes an image for complete while its layers go.
  immediate(db, () => {
    const del = db.prepare('DELETE FROM images WHERE reference = ?');
    const orphanLayers = db.prepare('DELETE FROM manifest_layers WHERE manifest_digest = ? AND NOT EXISTS (SELECT 1 FROM images WHERE manifest_digest = ?)');
    for (const ref of plan.images) {
      const img = snapshot.images.find((i) => i.reference === ref);
      del.run(ref);
      if (img) orphanLayers.run(img.manifestDigest, img.manifestDigest);
    }
  });

  const leaseFresh = `EXISTS (SELECT 1 FROM leases WHERE key = 'blob:' || ? AND heartbeat_at > ?)`;
  const delLayer = db.prepare(
    `DELETE FROM layers WHERE id = ? AND last_used = ? AND NOT EXISTS (SELECT 1 FROM mount_layers WHERE diff_id = layers.diff_id)
       AND NOT EXISTS (SELECT 1 FROM snapshots WHERE diff_id = layers.diff_id) AND NOT ${leaseFresh}`,
  );
  for (const l of plan.layers) {
    signal?.throwIfAborted();
    const parked = join(store.layout.layersDir, `staging-${process.pid}-gc${l.id}`);
    const removed = immediate(db, () => {
      if (delLayer.run(l.id, lastUsedLayer.get(l.id) ?? 0, l.blobDigest, Date.now() - LEASE_FRESH_MS).changes === 0) return false;
      // Still inside the write lock: once it is released, a new layer may get this id.
      try {
        renameSync(store.layout.layerDir(l.id), parked);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
      }
      return true;
    });
    if (!removed) continue;
    done.layers++;
    log.info({ diffId: l.diffId, id: l.id, bytes: l.unpackedSize }, 'gc: removed layer');
    await rm(parked, { recursive: true, force: true });
  }

  const delBlob = db.prepare(`DELETE FROM blobs WHERE digest = ? AND last_used = ? AND NOT ${leaseFresh}`);
  for (const digest of plan.blobs) {
    signal?.throwIfAborted();
    const removed = immediate(db, () => delBlob.run(digest, lastUsedBlob.get(digest) ?? 0, digest, Date.now() - LEASE_FRESH_MS).changes > 0);
    if (!removed) continue;
    done.blobs++;
    // After the row: a crash here leaves a file without a row, which reconcile verifies and adopts.
    await unlink(store.blobs.path(digest)).catch((err) => {
      if (errnoCode(err) !== 'ENOENT') throw err;
    });
    log.info({ digest }, 'gc: removed blob');
  }
  return done;
}
