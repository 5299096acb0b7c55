import type { Digest } from '../oci/index.js';
import type { ContentStore, LayerArrival } from '../store/index.js';

/** One layer of this node and how it arrived, for `hostpull stats` and `/metrics`. */
export interface LayerArrivalSummary {
  blobDigest: Digest;
  diffId: Digest;
  arrival: LayerArrival;
  /** Why it was not lazy (or not completed); for a layer pulled without --lazy, says so. */
  reason: string | null;
  /** Unpacked in layers/ now. */
  unpacked: boolean;
  bytesLazy: number;
}

export const NOT_REQUESTED = 'lazy pulling not requested';

/** Every unpacked layer and every layer a lazy run saw, newest first. */
export function layerArrivalSummary(store: ContentStore): LayerArrivalSummary[] {
  const records = store.lazyLayers.arrivals();
  const seen = new Set(records.map((r) => r.diffId));
  const out: LayerArrivalSummary[] = records.map((r) => ({
    blobDigest: r.blobDigest,
    diffId: r.diffId,
    arrival: r.mode,
    reason: r.reason,
    unpacked: store.layers.get(r.diffId) !== undefined,
    bytesLazy: r.bytesLazy,
  }));
  for (const l of store.layers.list()) {
    if (!seen.has(l.diffId)) out.push({ blobDigest: l.blobDigest, diffId: l.diffId, arrival: 'whole', reason: NOT_REQUESTED, unpacked: true, bytesLazy: 0 });
  }
  return out;
}
