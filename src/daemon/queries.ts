import type { ContentStore } from '../store/content-store.js';
import type { ImageRow } from '../store/images.js';
import type { PullStats } from '../store/pulls.js';
import type { SnapshotLayerStats, SnapshotterTotals } from '../store/snapshot-events.js';

/** One line of `hostpull images` (and of `GET /v1/images`). */
export interface ImageSummary extends Omit<ImageRow, 'resolvedAt'> {
  layers: number;
  /** Compressed bytes of the layers. */
  size: number;
  /** ISO 8601. */
  resolvedAt: string;
}

/** `hostpull stats` (and `GET /v1/stats`): the pull log plus what the store holds. */
export interface HostStats extends PullStats {
  store: { blobs: number; blobBytes: number; layers: number; unpackedBytes: number };
  /** The containerd snapshotter: per layer, how often hostpull fetched it, reused it, or containerd applied it. */
  snapshotter: { snapshots: number; totals: SnapshotterTotals; layers: SnapshotLayerStats[] };
}

export function imageSummaries(store: ContentStore): ImageSummary[] {
  return store.images.list().map((img) => {
    const layers = store.images.layers(img.manifestDigest);
    return { ...img, layers: layers.length, size: layers.reduce((n, l) => n + l.size, 0), resolvedAt: new Date(img.resolvedAt).toISOString() };
  });
}

export function hostStats(store: ContentStore): HostStats {
  const s = store.pulls.stats();
  const blobs = store.blobs.list();
  const layers = store.layers.list();
  return {
    ...s,
    store: {
      blobs: blobs.length,
      blobBytes: blobs.reduce((n, b) => n + b.size, 0),
      layers: layers.length,
      unpackedBytes: layers.reduce((n, l) => n + l.unpackedSize, 0),
    },
    snapshotter: {
      snapshots: store.snapshots.list().length,
      totals: store.snapshotLog.totals(),
      layers: store.snapshotLog.perLayer(),
    },
  };
}
