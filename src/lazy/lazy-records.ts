import type { Digest } from '../oci/digest.js';
import { withBusyRetry } from '../store/database.js';
import type { ContentStore } from '../store/content-store.js';

/** How a layer reached this node. */
export type LayerArrival = 'whole' | 'lazy' | 'lazy-completed';

export interface LazyLayerRecord {
  blobDigest: Digest;
  diffId: Digest;
  mode: LayerArrival;
  /** Why the layer was not lazy (mode whole), or why a lazy layer was not completed. */
  reason: string | null;
  tocDigest: Digest | null;
  /** Span bytes fetched for reads and prefetch before the layer was complete. */
  bytesLazy: number;
  updatedAt: number;
}

/**
 * Records how a layer of a lazy run arrived. `whole` with a reason for a layer that could not be
 * lazy; `lazy` once mounted lazily; `lazy-completed` once the background pull unpacked it. A
 * layer never recorded here was pulled whole without --lazy.
 */
export function recordLayerArrival(
  store: ContentStore,
  r: { blobDigest: Digest; diffId: Digest; mode: LayerArrival; reason?: string | undefined; tocDigest?: Digest | undefined; bytesLazy?: number },
  now = Date.now(),
): void {
  withBusyRetry(
    () =>
      store.db
        .prepare(
          `INSERT INTO lazy_layers (blob_digest, diff_id, mode, reason, toc_digest, bytes_lazy, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(blob_digest) DO UPDATE SET mode = excluded.mode, reason = excluded.reason,
             toc_digest = COALESCE(excluded.toc_digest, toc_digest), bytes_lazy = MAX(bytes_lazy, excluded.bytes_lazy), updated_at = excluded.updated_at`,
        )
        .run(r.blobDigest, r.diffId, r.mode, r.reason ?? null, r.tocDigest ?? null, r.bytesLazy ?? 0, now),
    store.db,
  );
}

export function layerArrivals(store: ContentStore): LazyLayerRecord[] {
  return store.db
    .prepare(
      'SELECT blob_digest AS blobDigest, diff_id AS diffId, mode, reason, toc_digest AS tocDigest, bytes_lazy AS bytesLazy, updated_at AS updatedAt FROM lazy_layers ORDER BY updated_at DESC',
    )
    .all() as LazyLayerRecord[];
}

/** Spans of each layer that the first start of image `image` (a manifest digest) read, in order. */
export function prefetchList(store: ContentStore, image: Digest): Map<Digest, number[]> {
  const rows = store.db.prepare('SELECT blob_digest AS b, spans AS s FROM prefetch_lists WHERE image = ?').all(image) as Array<{ b: Digest; s: string }>;
  return new Map(rows.map((r) => [r.b, JSON.parse(r.s) as number[]]));
}

/** Keeps what the first start read; a later start of the same image does not overwrite it. */
export function recordPrefetchList(store: ContentStore, image: Digest, lists: ReadonlyMap<Digest, readonly number[]>, now = Date.now()): void {
  withBusyRetry(
    () =>
      store.db.transaction(() => {
        const add = store.db.prepare('INSERT OR IGNORE INTO prefetch_lists (image, blob_digest, spans, recorded_at) VALUES (?, ?, ?, ?)');
        for (const [blob, spans] of lists) if (spans.length > 0) add.run(image, blob, JSON.stringify(spans), now);
      })(),
    store.db,
  );
}

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
  const records = layerArrivals(store);
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
