import type { ContentStore, HostPullStats, ImageRow, LayerArrivalSummary, SnapshotLayerStats, SnapshotterTotals } from '../store/index.js';

/** One line of `hostpull images` (and of `GET /v1/images`). */
export interface ImageSummary extends Omit<ImageRow, 'resolvedAt'> {
  layers: number;
  /** Compressed bytes of the layers. */
  size: number;
  /** ISO 8601. */
  resolvedAt: string;
}

/** `hostpull stats` (and `GET /v1/stats`): the pull log plus what the store holds. */
export interface HostStats extends HostPullStats {
  store: { blobs: number; blobBytes: number; layers: number; unpackedBytes: number };
  /** How each layer reached this node: whole, lazily, or lazily then completed, and why not lazy. */
  layerArrivals: LayerArrivalSummary[];
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
  const s = store.pullStats();
  const totals = store.totals();
  return {
    ...s,
    store: { blobs: totals.blobs, blobBytes: totals.blobBytes, layers: totals.layers, unpackedBytes: totals.unpackedBytes },
    layerArrivals: store.layerArrivals(),
    snapshotter: {
      snapshots: totals.snapshots,
      totals: store.snapshotLog.totals(),
      layers: store.snapshotLog.perLayer(),
    },
  };
}
