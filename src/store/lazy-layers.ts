import type { Digest } from '../oci/index.js';
import { withBusyRetry, type Db } from './database.js';

/** How a layer reached this node. */
export type LayerArrival = 'whole' | 'lazy' | 'lazy-completed';

export interface LazyLayerRecord {
  blobDigest: Digest;
  diffId: Digest;
  mode: LayerArrival;
  /** Why the layer was not lazy (mode whole), or why a lazy layer was not completed. */
  reason: string | null;
  tocDigest: Digest | null;
  /**
   * Bytes the lazy helper fetched for the layer: spans for reads and the prefetch, and for the
   * background pull that completes it. The most any one lazy run of it fetched.
   */
  bytesLazy: number;
  updatedAt: number;
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

/** The reason given for an unpacked layer that no lazy run saw. */
export const NOT_REQUESTED = 'lazy pulling not requested';

export interface LayerArrivalUpdate {
  blobDigest: Digest;
  diffId: Digest;
  mode: LayerArrival;
  reason?: string | undefined;
  tocDigest?: Digest | undefined;
  bytesLazy?: number;
}

/**
 * What lazy pulling (src/lazy) keeps: how each layer of a lazy run arrived (for stats and
 * /metrics), and the spans a composite's first lazy start read (the next start fetches them
 * first). Neither holds anything GC must keep: both are advice.
 */
export class LazyLayerLog {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  /**
   * `whole` with a reason for a layer that could not be lazy; `lazy` once mounted lazily;
   * `lazy-completed` once the background pull unpacked it. A layer never recorded here was
   * pulled whole without --lazy. The TOC digest and the lazy byte count are never lost to a later,
   * less informed update.
   */
  recordArrival(r: LayerArrivalUpdate, now = Date.now()): void {
    withBusyRetry(
      () =>
        this.#db
          .prepare(
            `INSERT INTO lazy_layers (blob_digest, diff_id, mode, reason, toc_digest, bytes_lazy, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(blob_digest) DO UPDATE SET mode = excluded.mode, reason = excluded.reason,
               toc_digest = COALESCE(excluded.toc_digest, toc_digest), bytes_lazy = MAX(bytes_lazy, excluded.bytes_lazy), updated_at = excluded.updated_at`,
          )
          .run(r.blobDigest, r.diffId, r.mode, r.reason ?? null, r.tocDigest ?? null, r.bytesLazy ?? 0, now),
      this.#db,
    );
  }

  /** The bytes lazy pulling fetched, over all layers (see {@link LazyLayerRecord.bytesLazy}). */
  bytesFetched(): number {
    return (this.#db.prepare('SELECT COALESCE(SUM(bytes_lazy), 0) AS n FROM lazy_layers').get() as { n: number }).n;
  }

  /** Every layer a lazy run saw, newest first. */
  arrivals(): LazyLayerRecord[] {
    return this.#db
      .prepare(
        'SELECT blob_digest AS blobDigest, diff_id AS diffId, mode, reason, toc_digest AS tocDigest, bytes_lazy AS bytesLazy, updated_at AS updatedAt FROM lazy_layers ORDER BY updated_at DESC',
      )
      .all() as LazyLayerRecord[];
  }

  /** Spans of each layer (by blob digest) that the first lazy start of image `image` (a manifest digest) read, in order. */
  prefetchList(image: Digest): Map<Digest, number[]> {
    const rows = this.#db.prepare('SELECT blob_digest AS b, spans AS s FROM prefetch_lists WHERE image = ?').all(image) as Array<{ b: Digest; s: string }>;
    return new Map(rows.map((r) => [r.b, JSON.parse(r.s) as number[]]));
  }

  /** Keeps what the first start read; a later start of the same image does not overwrite it. */
  recordPrefetchList(image: Digest, lists: ReadonlyMap<Digest, readonly number[]>, now = Date.now()): void {
    withBusyRetry(
      () =>
        this.#db.transaction(() => {
          const add = this.#db.prepare('INSERT OR IGNORE INTO prefetch_lists (image, blob_digest, spans, recorded_at) VALUES (?, ?, ?, ?)');
          for (const [blob, spans] of lists) if (spans.length > 0) add.run(image, blob, JSON.stringify(spans), now);
        })(),
      this.#db,
    );
  }
}
