import type { Digest } from '../oci/index.js';

/** What GC knows about the store at one moment (read from SQLite by snapshot.ts). */
export interface GcSnapshot {
  blobs: ReadonlyArray<{ digest: Digest; size: number; lastUsed: number }>;
  layers: ReadonlyArray<{ id: number; diffId: Digest; blobDigest: Digest; unpackedSize: number; lastUsed: number }>;
  images: ReadonlyArray<{
    reference: string;
    manifestDigest: Digest;
    indexDigest: Digest | null;
    configDigest: Digest;
    layers: ReadonlyArray<{ blobDigest: Digest; diffId: Digest }>;
  }>;
  /** diff_ids a recorded rootfs uses (mounts table). */
  mounted: ReadonlySet<Digest>;
  /** diff_ids a containerd snapshot stands for (snapshots table): a chain refers to the layer. Default none. */
  snapshotted?: ReadonlySet<Digest>;
  /**
   * Digests in-flight pulls hold: blobs they download or unpack right now (a lease), and every
   * blob digest and diffID of an image whose pull has not recorded it yet (a pull hold).
   */
  leased: ReadonlySet<Digest>;
  now: number;
}

export interface GcPolicy {
  /** Evict least-recently-used unused layers until blobs + unpacked layers fit. Default: no budget. */
  maxStoreSize?: number | undefined;
  /**
   * Nothing used or created this recently is removed. A pull commits each layer as soon as it is
   * unpacked but records its image only when every layer is done; in between, a fresh layer is
   * referenced by no image, and this grace keeps it. Default 10 minutes.
   */
  graceMs?: number | undefined;
}

export interface GcPlan {
  /** Layer rows (and layers/<id> dirs) to remove. */
  layers: Array<{ id: number; diffId: Digest; blobDigest: Digest; unpackedSize: number }>;
  /** Blob rows and files to remove. */
  blobs: Digest[];
  /** Image rows to remove: one of their layers is evicted, so the image is no longer complete. */
  images: string[];
  /** Blobs + unpacked layers before and after the plan. */
  bytesBefore: number;
  bytesAfter: number;
  /** With a budget: still over it because everything left is in use (mounted, leased or fresh). */
  overBudget: boolean;
}

export const DEFAULT_GC_GRACE_MS = 10 * 60_000;

/**
 * Decides what GC removes; pure, so the policy is tested without a store. Two steps:
 *
 * 1. Sweep: layers and blobs no image references (left by removed images or failed pulls).
 * 2. Budget: while blobs + unpacked layers exceed `maxStoreSize`, evict the least recently used
 *    *unit* — an unpacked layer together with its compressed blob (the blob is only needed to
 *    unpack it again), or a layer blob that was never unpacked (`pull --no-unpack`). An image that
 *    loses a layer this way is removed (its name would promise a complete image), and its manifest
 *    and config blobs with it; the other layers it used stay (they are the cache shared with other
 *    composites), and a later sweep takes them once no image references them.
 *
 * Never removed: a layer a recorded rootfs uses (and so never an image whose layers are all
 * mounted), a layer a containerd snapshot stands for (containerd removes its snapshots first),
 * anything an in-flight pull holds, or anything used within the grace period.
 */
export function selectEvictions(s: GcSnapshot, policy: GcPolicy = {}): GcPlan {
  const grace = policy.graceMs ?? DEFAULT_GC_GRACE_MS;
  const fresh = (lastUsed: number) => s.now - lastUsed < grace;
  const blobSize = new Map(s.blobs.map((b) => [b.digest, b.size]));
  const snapshotted = s.snapshotted ?? new Set<Digest>();
  const layerProtected = (l: GcSnapshot['layers'][number]) =>
    s.mounted.has(l.diffId) || snapshotted.has(l.diffId) || s.leased.has(l.blobDigest) || s.leased.has(l.diffId) || fresh(l.lastUsed);

  const referencedBlobs = new Set<Digest>();
  const referencedDiffIds = new Set<Digest>();
  for (const img of s.images) {
    referencedBlobs.add(img.manifestDigest).add(img.configDigest);
    if (img.indexDigest) referencedBlobs.add(img.indexDigest);
    for (const l of img.layers) {
      referencedBlobs.add(l.blobDigest);
      referencedDiffIds.add(l.diffId);
    }
  }

  const evictedLayers = new Map<number, GcSnapshot['layers'][number]>();
  const evictedBlobs = new Set<Digest>();
  const keptLayerBlobs = () => new Set(s.layers.filter((l) => !evictedLayers.has(l.id)).map((l) => l.blobDigest));

  // 1. Sweep what nothing references.
  for (const l of s.layers) {
    if (!referencedDiffIds.has(l.diffId) && !layerProtected(l)) evictedLayers.set(l.id, l);
  }
  const stillNeeded = keptLayerBlobs();
  for (const b of s.blobs) {
    if (!referencedBlobs.has(b.digest) && !stillNeeded.has(b.digest) && !s.leased.has(b.digest) && !fresh(b.lastUsed)) evictedBlobs.add(b.digest);
  }

  let total = 0;
  for (const b of s.blobs) if (!evictedBlobs.has(b.digest)) total += b.size;
  for (const l of s.layers) if (!evictedLayers.has(l.id)) total += l.unpackedSize;
  const bytesBefore = s.blobs.reduce((n, b) => n + b.size, 0) + s.layers.reduce((n, l) => n + l.unpackedSize, 0);

  // 2. LRU eviction under the budget.
  const removedImages = new Set<string>();
  let overBudget = false;
  if (policy.maxStoreSize !== undefined && total > policy.maxStoreSize) {
    type Unit = { lastUsed: number; order: number; layer?: GcSnapshot['layers'][number]; blob?: Digest };
    const units: Unit[] = [];
    const unpackedBlobs = new Set(s.layers.map((l) => l.blobDigest));
    for (const l of s.layers) {
      if (evictedLayers.has(l.id) || layerProtected(l)) continue;
      const unit: Unit = { lastUsed: l.lastUsed, order: l.id, layer: l };
      if (blobSize.has(l.blobDigest) && !evictedBlobs.has(l.blobDigest)) unit.blob = l.blobDigest;
      units.push(unit);
    }
    const layerBlobs = new Set(s.images.flatMap((i) => i.layers.map((l) => l.blobDigest)));
    for (const b of s.blobs) {
      if (!layerBlobs.has(b.digest) || unpackedBlobs.has(b.digest) || evictedBlobs.has(b.digest) || s.leased.has(b.digest) || fresh(b.lastUsed)) continue;
      units.push({ lastUsed: b.lastUsed, order: Number.MAX_SAFE_INTEGER, blob: b.digest });
    }
    // Oldest first; equal times by layer id (older unpack first) so the choice is deterministic.
    units.sort((a, b) => a.lastUsed - b.lastUsed || a.order - b.order || (a.blob ?? '').localeCompare(b.blob ?? ''));
    for (const u of units) {
      if (total <= policy.maxStoreSize) break;
      if (u.layer) {
        evictedLayers.set(u.layer.id, u.layer);
        total -= u.layer.unpackedSize;
      }
      if (u.blob && !evictedBlobs.has(u.blob)) {
        evictedBlobs.add(u.blob);
        total -= blobSize.get(u.blob) ?? 0;
      }
    }
    // Images that lost a layer, then their manifests and configs if no kept image shares them.
    const goneDiffIds = new Set([...evictedLayers.values()].map((l) => l.diffId));
    const liveDiffIds = new Set(s.layers.filter((l) => !evictedLayers.has(l.id)).map((l) => l.diffId));
    const available = (l: { blobDigest: Digest; diffId: Digest }) => liveDiffIds.has(l.diffId) || (blobSize.has(l.blobDigest) && !evictedBlobs.has(l.blobDigest));
    for (const img of s.images) {
      if (img.layers.some((l) => (goneDiffIds.has(l.diffId) || evictedBlobs.has(l.blobDigest)) && !available(l))) removedImages.add(img.reference);
    }
    const keptMeta = new Set<Digest>();
    for (const img of s.images) {
      if (removedImages.has(img.reference)) continue;
      keptMeta.add(img.manifestDigest).add(img.configDigest);
      if (img.indexDigest) keptMeta.add(img.indexDigest);
    }
    for (const img of s.images) {
      if (!removedImages.has(img.reference)) continue;
      for (const d of [img.manifestDigest, img.configDigest, img.indexDigest]) {
        if (d && blobSize.has(d) && !keptMeta.has(d) && !evictedBlobs.has(d) && !s.leased.has(d)) {
          evictedBlobs.add(d);
          total -= blobSize.get(d)!;
        }
      }
    }
    overBudget = total > policy.maxStoreSize;
  }

  return {
    layers: [...evictedLayers.values()].map((l) => ({ id: l.id, diffId: l.diffId, blobDigest: l.blobDigest, unpackedSize: l.unpackedSize })),
    blobs: [...evictedBlobs].sort(),
    images: [...removedImages].sort(),
    bytesBefore,
    bytesAfter: total,
    overBudget,
  };
}
