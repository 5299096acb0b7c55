import { randomBytes } from 'node:crypto';
import type { Digest } from '../oci/index.js';
import { isAlive } from '../util/index.js';
import { immediate, withBusyRetry, type Db } from './database.js';
import { LEASE_HEARTBEAT_MS, LEASE_STALE_AFTER_MS, PULL_LEASE_PREFIX } from './protocol.js';

/** A pull whose process lives but has written no heartbeat for this long is taken for abandoned (pids are reused). */
const ABANDONED_AFTER_MS = 24 * 3600_000;

/**
 * What a pull in flight holds for GC until its image is recorded: the manifest, the config and
 * every layer of the image, named by blob digest and by diffID. Before the image row exists,
 * nothing else refers to a layer that the pull committed minutes ago (or found present, unused
 * by any image): without the hold, a GC under a size budget, or any GC with `--min-age` shorter
 * than the pull, would remove it, and the image would be recorded without it.
 *
 * Liveness is a lease row (`pull:<token>`, the pid and a heartbeat, as a blob lease has), so a
 * pull killed with -9 holds nothing once its heartbeat is stale; its rows are swept by GC.
 */
export class PullHolds {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  /** A new, empty hold of this process; `release()` it when the pull ends, however it ends. */
  begin(): PullHold {
    return new PullHold(this.#db);
  }

  /** The digests that live pulls hold (heartbeat fresh, process alive): GC's selection keeps them. */
  liveDigests(now = Date.now()): Set<Digest> {
    const rows = this.#db
      .prepare(`SELECT h.digest AS digest, l.pid AS pid FROM pull_holds h JOIN leases l ON l.key = h.lease WHERE l.heartbeat_at > ?`)
      .all(now - LEASE_STALE_AFTER_MS) as Array<{ digest: Digest; pid: number }>;
    return new Set(rows.filter((r) => isAlive(r.pid)).map((r) => r.digest));
  }

  /**
   * Removes the holds of pulls that died (kill -9, a crash), or went silent so long ago that they
   * are abandoned; returns how many pulls. A pull silent for a while (a stopped process, an event
   * loop blocked) is not swept: GC ignores its hold meanwhile, and it counts again once the pull's
   * heartbeat resumes. Writes only when there is something to remove: GC runs on a full disk too,
   * where a write transaction may fail for want of room (and those holds count for nothing anyway).
   */
  sweep(now = Date.now()): number {
    const dead = () =>
      (this.#db.prepare(`SELECT key, pid, heartbeat_at AS heartbeatAt FROM leases WHERE key GLOB '${PULL_LEASE_PREFIX}*'`).all() as Array<{ key: string; pid: number; heartbeatAt: number }>).filter(
        (l) => !isAlive(l.pid) || now - l.heartbeatAt >= ABANDONED_AFTER_MS,
      );
    const orphans = () => this.#db.prepare('SELECT 1 FROM pull_holds WHERE lease NOT IN (SELECT key FROM leases) LIMIT 1').get() !== undefined;
    if (dead().length === 0 && !orphans()) return 0;
    return immediate(this.#db, () => {
      const gone = dead();
      const dropLease = this.#db.prepare('DELETE FROM leases WHERE key = ?');
      for (const l of gone) dropLease.run(l.key);
      // Holds whose lease is gone: those just dropped, and any a crash left without one.
      this.#db.prepare('DELETE FROM pull_holds WHERE lease NOT IN (SELECT key FROM leases)').run();
      return gone.length;
    });
  }
}

/** One pull's hold. Digests are added as the pull learns them, each before the pull relies on it. */
export class PullHold {
  readonly #db: Db;
  readonly #key = `${PULL_LEASE_PREFIX}${randomBytes(8).toString('hex')}`;
  #beat: NodeJS.Timeout | undefined;
  #released = false;

  constructor(db: Db) {
    this.#db = db;
  }

  /**
   * Holds these digests from now on. In one write transaction, as GC's deleting statements are:
   * either GC removed a digest before (the pull then finds it missing and fetches it), or it sees
   * the hold and keeps it.
   */
  add(digests: Iterable<Digest>): void {
    if (this.#released) throw new Error('pull hold used after release');
    const now = Date.now();
    immediate(this.#db, () => {
      this.#db
        .prepare('INSERT INTO leases (key, pid, token, acquired_at, heartbeat_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET heartbeat_at = excluded.heartbeat_at')
        .run(this.#key, process.pid, this.#key, now, now);
      const hold = this.#db.prepare('INSERT OR IGNORE INTO pull_holds (lease, digest) VALUES (?, ?)');
      for (const d of digests) hold.run(this.#key, d);
    });
    this.#beat ??= setInterval(() => this.#heartbeat(), LEASE_HEARTBEAT_MS).unref();
  }

  /** Lets go of everything (idempotent). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    if (this.#beat) clearInterval(this.#beat);
    if (this.#beat === undefined) return; // nothing was written
    try {
      immediate(this.#db, () => {
        this.#db.prepare('DELETE FROM pull_holds WHERE lease = ?').run(this.#key);
        this.#db.prepare('DELETE FROM leases WHERE key = ?').run(this.#key);
      });
    } catch {
      // Called as a pull ends, possibly on its way out with its own error (a full disk): that
      // error must win. A hold left behind stops counting when its heartbeat is stale, and GC
      // sweeps it.
    }
  }

  #heartbeat(): void {
    try {
      withBusyRetry(() => this.#db.prepare('UPDATE leases SET heartbeat_at = ? WHERE key = ?').run(Date.now(), this.#key), this.#db);
    } catch {
      // A missed heartbeat only risks GC ignoring the hold after LEASE_STALE_AFTER_MS; never crash for it.
    }
  }
}
