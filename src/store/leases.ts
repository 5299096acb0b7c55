import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Digest } from '../oci/index.js';
import { immediate, withBusyRetry, type Db } from './database.js';
import { isAlive } from '../util/index.js';
import { blobLeaseKey, LEASE_HEARTBEAT_MS, LEASE_POLL_MS, LEASE_STALE_AFTER_MS, leasedBlob } from './protocol.js';

export interface SingleFlightOptions<T> {
  /** Returns the finished result if some process already produced it (e.g. the blob row exists). */
  done: () => T | undefined;
  /** Produces the result; runs only while this process holds the lease. */
  work: () => Promise<T>;
  signal?: AbortSignal;
  /** Poll interval while another process holds the lease. Default {@link LEASE_POLL_MS}. */
  pollMs?: number;
}

/**
 * Single-flight across tasks of this process (an in-memory map) and across processes (a lease
 * row in SQLite), so two pulls that need the same blob at the same moment fetch it once. The
 * rules (staleness, heartbeat, takeover) are protocol.ts's.
 */
export class Leases {
  readonly #db: Db;
  readonly #token = randomBytes(8).toString('hex');
  readonly #inflight = new Map<string, Promise<unknown>>();

  constructor(db: Db) {
    this.#db = db;
  }

  /** Runs `work` while holding the lease of blob `digest` (the one a download of it holds). */
  forBlob<T>(digest: Digest, options: SingleFlightOptions<T>): Promise<T> {
    return this.run(blobLeaseKey(digest), options);
  }

  async run<T>(key: string, options: SingleFlightOptions<T>): Promise<T> {
    const pollMs = options.pollMs ?? LEASE_POLL_MS;
    for (;;) {
      options.signal?.throwIfAborted();
      const finished = options.done();
      if (finished !== undefined) return finished;
      const local = this.#inflight.get(key);
      if (local) {
        // Another task of this process is on it: wait for it, then look again (it may have failed).
        await local.catch(() => undefined);
        continue;
      }
      if (this.#tryAcquire(key)) {
        const task = this.#holding(key, options);
        this.#inflight.set(key, task);
        try {
          return await task;
        } finally {
          this.#inflight.delete(key);
        }
      }
      await sleep(pollMs, undefined, { signal: options.signal });
    }
  }

  async #holding<T>(key: string, options: SingleFlightOptions<T>): Promise<T> {
    const beat = setInterval(() => {
      try {
        withBusyRetry(() => this.#db.prepare('UPDATE leases SET heartbeat_at = ? WHERE key = ? AND token = ?').run(Date.now(), key, this.#token), this.#db);
      } catch {
        // A missed heartbeat only risks a takeover after LEASE_STALE_AFTER_MS; never crash for it.
      }
    }, LEASE_HEARTBEAT_MS);
    beat.unref();
    try {
      // Re-check under the lease: the previous holder may have finished between our check and acquire.
      const finished = options.done();
      if (finished !== undefined) return finished;
      return await options.work();
    } finally {
      clearInterval(beat);
      withBusyRetry(() => this.#db.prepare('DELETE FROM leases WHERE key = ? AND token = ?').run(key, this.#token), this.#db);
    }
  }

  #tryAcquire(key: string): boolean {
    return immediate(this.#db, () => {
      const row = this.#db.prepare('SELECT pid, token, heartbeat_at AS heartbeatAt FROM leases WHERE key = ?').get(key) as
        | { pid: number; token: string; heartbeatAt: number }
        | undefined;
      const now = Date.now();
      if (row && row.token !== this.#token && isAlive(row.pid) && now - row.heartbeatAt < LEASE_STALE_AFTER_MS) return false;
      // Free, or its holder died (kill -9, crash): take it over; the partial download it left is resumed.
      this.#db
        .prepare('INSERT INTO leases (key, pid, token, acquired_at, heartbeat_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET pid = excluded.pid, token = excluded.token, acquired_at = excluded.acquired_at, heartbeat_at = excluded.heartbeat_at')
        .run(key, process.pid, this.#token, now, now);
      return true;
    });
  }

  /** Keys held by live processes (reconciliation must not touch their files). */
  liveKeys(): Set<string> {
    const rows = this.#db.prepare('SELECT key, pid, heartbeat_at AS heartbeatAt FROM leases').all() as Array<{ key: string; pid: number; heartbeatAt: number }>;
    const now = Date.now();
    return new Set(rows.filter((r) => isAlive(r.pid) && now - r.heartbeatAt < LEASE_STALE_AFTER_MS).map((r) => r.key));
  }

  /** Blobs whose leases live processes hold (being downloaded or unpacked right now). */
  liveBlobs(): Set<Digest> {
    const out = new Set<Digest>();
    for (const key of this.liveKeys()) {
      const digest = leasedBlob(key);
      if (digest !== undefined) out.add(digest);
    }
    return out;
  }

  /** True while a live process holds the lease of blob `digest` (call inside a write transaction to act on the answer). */
  blobHeld(digest: Digest): boolean {
    const row = this.#db.prepare('SELECT pid, heartbeat_at AS heartbeatAt FROM leases WHERE key = ?').get(blobLeaseKey(digest)) as { pid: number; heartbeatAt: number } | undefined;
    return row !== undefined && isAlive(row.pid) && Date.now() - row.heartbeatAt < LEASE_STALE_AFTER_MS;
  }
}
