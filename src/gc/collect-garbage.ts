import type { ContentStore } from '../store/index.js';
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
 * `hostpull gc`: removes what no image references (partial downloads no live process holds
 * included) and, under `maxStoreSize`, the least recently used unused layers (policy in
 * select-evictions.ts); everything used within `graceMs` stays. Safe beside pulls and mounts in other
 * processes: every row is deleted in a write transaction that re-checks it is still unmounted,
 * named by no containerd snapshot, unleased and unused since the snapshot, and a layer directory
 * is moved out of its numbered name inside that transaction (a new layer may reuse the id)
 * before it is deleted.
 */
export async function collectGarbage(store: ContentStore, options: GcOptions = {}): Promise<GcReport> {
  // Holds of pulls that died are no longer counted (their heartbeat is stale); their rows go here,
  // unless the disk is too full for that write: freeing room comes first.
  if (!options.dryRun) {
    try {
      store.pullHolds.sweep();
    } catch (err) {
      store.logger.debug({ err }, 'gc: could not sweep the holds of dead pulls');
    }
  }
  // What GC needs, read in one read transaction (one consistent snapshot).
  const snapshot = store.inventory();
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
  const partials = await store.removeAbandonedPartials({ graceMs: options.graceMs ?? DEFAULT_GC_GRACE_MS, dryRun: report.dryRun });
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

/**
 * Removes what the plan says, each row in a write transaction of the store that re-checks it is
 * still unheld and unused since the snapshot (protocol.ts); what was taken meanwhile is skipped.
 */
async function applyPlan(store: ContentStore, snapshot: GcSnapshot, plan: GcPlan, signal?: AbortSignal): Promise<{ layers: number; blobs: number }> {
  const log = store.logger;
  const done = { layers: 0, blobs: 0 };
  const lastUsedLayer = new Map(snapshot.layers.map((l) => [l.id, l.lastUsed]));
  const lastUsedBlob = new Map(snapshot.blobs.map((b) => [b.digest, b.lastUsed]));

  // Images first, so no reader takes an image for complete while its layers go.
  store.images.removeAll(plan.images);

  for (const l of plan.layers) {
    signal?.throwIfAborted();
    if (!(await store.layers.collect(l, lastUsedLayer.get(l.id) ?? 0))) continue;
    done.layers++;
    log.info({ diffId: l.diffId, id: l.id, bytes: l.unpackedSize }, 'gc: removed layer');
  }
  for (const digest of plan.blobs) {
    signal?.throwIfAborted();
    if (!(await store.blobs.collect(digest, lastUsedBlob.get(digest) ?? 0))) continue;
    done.blobs++;
    log.info({ digest }, 'gc: removed blob');
  }
  return done;
}
