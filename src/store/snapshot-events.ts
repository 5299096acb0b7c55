import type { Digest } from '../oci/index.js';
import { withBusyRetry, type Db } from './database.js';

/**
 * How a layer that containerd asked the snapshotter for became present: fetched whole by hostpull,
 * reused from the store, applied by containerd, or served lazily (its FUSE view stands for it until
 * its background completion; what that fetches is counted per layer in `lazy_layers`).
 */
export const SNAPSHOT_LAYER_OUTCOMES = ['fetched', 'reused', 'applied', 'lazy'] as const;
export type SnapshotLayerOutcome = (typeof SNAPSHOT_LAYER_OUTCOMES)[number];

export interface SnapshotLayerEvent {
  chainId: string;
  diffId: Digest | null;
  blobDigest: Digest | null;
  outcome: SnapshotLayerOutcome;
  /** Compressed bytes hostpull fetched whole for it (0 unless fetched; a lazy layer's are in lazy_layers). */
  bytes: number;
  /** Why containerd applied it instead of hostpull (for `applied`). */
  reason?: string | null;
  at?: number;
}

/** Per layer: how often each outcome happened (`hostpull stats`, `/metrics`). */
export interface SnapshotLayerStats {
  diffId: Digest | null;
  /** The chainID it was asked for under (the last one), which names a layer whose diffID is unknown. */
  chainId: string;
  blobDigest: Digest | null;
  fetched: number;
  reused: number;
  applied: number;
  lazy: number;
  bytesFetched: number;
  /** The reason given the last time containerd applied it. */
  lastReason: string | null;
}

export interface SnapshotterTotals {
  fetched: number;
  reused: number;
  applied: number;
  lazy: number;
  bytesFetched: number;
}

/** The snapshotter's layer log: one row per layer containerd asked for (append-only, like pulls). */
export class SnapshotLayerLog {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  record(e: SnapshotLayerEvent): void {
    withBusyRetry(
      () =>
        this.#db
          .prepare('INSERT INTO snapshot_layer_events (at, chain_id, diff_id, blob_digest, outcome, bytes, reason) VALUES (?, ?, ?, ?, ?, ?, ?)')
          .run(e.at ?? Date.now(), e.chainId, e.diffId, e.blobDigest, e.outcome, e.bytes, e.reason ?? null),
      this.#db,
    );
  }

  /** Attributes earlier events of a chain to its layer, once the layer is known (adoption). */
  identify(chainId: string, diffId: Digest, blobDigest: Digest | null): void {
    withBusyRetry(
      () => this.#db.prepare('UPDATE snapshot_layer_events SET diff_id = ?, blob_digest = COALESCE(blob_digest, ?) WHERE chain_id = ? AND diff_id IS NULL').run(diffId, blobDigest, chainId),
      this.#db,
    );
  }

  totals(): SnapshotterTotals {
    return this.#db
      .prepare(
        `SELECT COALESCE(SUM(outcome = 'fetched'), 0) AS fetched, COALESCE(SUM(outcome = 'reused'), 0) AS reused,
                COALESCE(SUM(outcome = 'applied'), 0) AS applied, COALESCE(SUM(outcome = 'lazy'), 0) AS lazy,
                COALESCE(SUM(bytes), 0) AS bytesFetched FROM snapshot_layer_events`,
      )
      .get() as SnapshotterTotals;
  }

  /** One line per layer (by diff_id; a layer containerd applied without saying which is keyed by its chain). */
  perLayer(): SnapshotLayerStats[] {
    return this.#db
      .prepare(
        `SELECT diff_id AS diffId, MAX(chain_id) AS chainId, MAX(blob_digest) AS blobDigest,
                SUM(outcome = 'fetched') AS fetched, SUM(outcome = 'reused') AS reused, SUM(outcome = 'applied') AS applied,
                SUM(outcome = 'lazy') AS lazy, SUM(bytes) AS bytesFetched,
                (SELECT reason FROM snapshot_layer_events r WHERE r.outcome = 'applied' AND COALESCE(r.diff_id, r.chain_id) = COALESCE(e.diff_id, e.chain_id) ORDER BY r.id DESC LIMIT 1) AS lastReason
           FROM snapshot_layer_events e GROUP BY COALESCE(diff_id, chain_id) ORDER BY MIN(id)`,
      )
      .all() as SnapshotLayerStats[];
  }
}
