import type { Digest } from '../oci/digest.js';
import { withBusyRetry, type Db } from './database.js';

/** Durations of the phases of one pull, in milliseconds. */
export interface PullPhases {
  resolve: number;
  layers: number;
  total: number;
}

export interface PullRecord {
  reference: string;
  manifestDigest: Digest | null;
  startedAt: number;
  finishedAt: number;
  ok: boolean;
  /** The manifest digest was already in the store: nothing but the HEAD was requested. */
  upToDate: boolean;
  bytesFetched: number;
  bytesReused: number;
  layerHits: number;
  layerMisses: number;
  phases: PullPhases;
  error?: string | null;
}

export interface PullStats {
  pulls: number;
  failedPulls: number;
  upToDatePulls: number;
  bytesFetched: number;
  bytesReused: number;
  layerHits: number;
  layerMisses: number;
  /** layerHits / (layerHits + layerMisses), 0 when nothing was pulled. */
  layerHitRate: number;
  /** bytesReused / (bytesReused + bytesFetched), 0 when nothing was pulled. */
  byteHitRate: number;
}

/** The pull log: one row per pull, the source of `hostpull stats`. */
export class PullLog {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  record(r: PullRecord): void {
    withBusyRetry(() =>
      this.#db
        .prepare(
          'INSERT INTO pulls (reference, manifest_digest, started_at, finished_at, ok, up_to_date, bytes_fetched, bytes_reused, layer_hits, layer_misses, phases, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(
          r.reference,
          r.manifestDigest,
          r.startedAt,
          r.finishedAt,
          r.ok ? 1 : 0,
          r.upToDate ? 1 : 0,
          r.bytesFetched,
          r.bytesReused,
          r.layerHits,
          r.layerMisses,
          JSON.stringify(r.phases),
          r.error ?? null,
        ),
      this.#db,
    );
  }

  stats(): PullStats {
    const row = this.#db
      .prepare(
        `SELECT COUNT(*) AS pulls,
                COALESCE(SUM(ok = 0), 0) AS failedPulls,
                COALESCE(SUM(up_to_date), 0) AS upToDatePulls,
                COALESCE(SUM(bytes_fetched), 0) AS bytesFetched,
                COALESCE(SUM(bytes_reused), 0) AS bytesReused,
                COALESCE(SUM(layer_hits), 0) AS layerHits,
                COALESCE(SUM(layer_misses), 0) AS layerMisses
           FROM pulls`,
      )
      .get() as Omit<PullStats, 'layerHitRate' | 'byteHitRate'>;
    const layers = row.layerHits + row.layerMisses;
    const bytes = row.bytesReused + row.bytesFetched;
    return { ...row, layerHitRate: layers ? row.layerHits / layers : 0, byteHitRate: bytes ? row.bytesReused / bytes : 0 };
  }
}
