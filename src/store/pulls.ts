import type { Digest } from '../oci/index.js';
import { immediate, withBusyRetry, type Db } from './database.js';

/** What the counters of the log add up, over the rows that a WHERE clause appended to it selects. */
const SUMS = `SELECT COUNT(*) AS pulls,
                COALESCE(SUM(ok = 0), 0) AS failedPulls,
                COALESCE(SUM(up_to_date), 0) AS upToDatePulls,
                COALESCE(SUM(bytes_fetched), 0) AS bytesFetched,
                COALESCE(SUM(bytes_reused), 0) AS bytesReused,
                COALESCE(SUM(layer_hits), 0) AS layerHits,
                COALESCE(SUM(layer_misses), 0) AS layerMisses
           FROM pulls`;

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

export interface PullLogOptions {
  /** Rows kept; older ones are folded into the totals. Default {@link DEFAULT_PULL_HISTORY}. */
  keep?: number;
}

/** A node that prepares a rootfs per second for a day keeps the last few hours, in about 3 MB. */
const DEFAULT_PULL_HISTORY = 10_000;

/** Pruning runs every this many pulls: one DELETE of a batch rather than one per insert. */
const PRUNE_EVERY = 100;

/**
 * The pull log: one row per pull for the most recent `keep` pulls, and running totals of
 * everything older, together the source of `hostpull stats` and /metrics.
 */
export class PullLog {
  readonly #db: Db;
  readonly #keep: number;

  constructor(db: Db, options: PullLogOptions = {}) {
    this.#db = db;
    this.#keep = options.keep ?? DEFAULT_PULL_HISTORY;
  }

  record(r: PullRecord): void {
    const id = withBusyRetry(() =>
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
        ).lastInsertRowid,
      this.#db,
    );
    if (Number(id) % PRUNE_EVERY === 0) this.#prune(Number(id));
  }

  /** Folds the rows older than the last `keep` into the totals and deletes them, in one transaction. */
  #prune(lastId: number): void {
    const db = this.#db;
    const cut = lastId - this.#keep;
    if (cut <= 0) return;
    immediate(db, () => {
      db.prepare(
        `UPDATE pull_totals SET
           pulls = pull_totals.pulls + t.pulls, failed_pulls = failed_pulls + t.failedPulls, up_to_date_pulls = up_to_date_pulls + t.upToDatePulls,
           bytes_fetched = bytes_fetched + t.bytesFetched, bytes_reused = bytes_reused + t.bytesReused,
           layer_hits = layer_hits + t.layerHits, layer_misses = layer_misses + t.layerMisses
         FROM (${SUMS} WHERE id <= ?) AS t WHERE pull_totals.id = 1`,
      ).run(cut);
      db.prepare('DELETE FROM pulls WHERE id <= ?').run(cut);
    });
  }

  /** Rows in the log now (the history kept, not the number of pulls ever: see stats()). */
  size(): number {
    return (this.#db.prepare('SELECT COUNT(*) AS n FROM pulls').get() as { n: number }).n;
  }

  stats(): PullStats {
    // One statement, so the rows and the totals come from one snapshot (a prune in between moves
    // rows into the totals).
    const row = this.#db
      .prepare(
        `SELECT p.pulls + t.pulls AS pulls, p.failedPulls + t.failed_pulls AS failedPulls, p.upToDatePulls + t.up_to_date_pulls AS upToDatePulls,
                p.bytesFetched + t.bytes_fetched AS bytesFetched, p.bytesReused + t.bytes_reused AS bytesReused,
                p.layerHits + t.layer_hits AS layerHits, p.layerMisses + t.layer_misses AS layerMisses
           FROM (${SUMS}) AS p, pull_totals AS t WHERE t.id = 1`,
      )
      .get() as Omit<PullStats, 'layerHitRate' | 'byteHitRate'>;
    const layers = row.layerHits + row.layerMisses;
    const bytes = row.bytesReused + row.bytesFetched;
    return { ...row, layerHitRate: layers ? row.layerHits / layers : 0, byteHitRate: bytes ? row.bytesReused / bytes : 0 };
  }
}
