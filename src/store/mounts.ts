import { HostpullError } from '../errors.js';
import type { Digest } from '../oci/index.js';
import { immediate, withBusyRetry, type Db } from './database.js';
import { processAlive, processStartTime } from '../util/index.js';

export interface RecordMountOptions {
  /**
   * The process that uses the rootfs: when it is gone, the mount is stale and {@link
   * MountRecords.stale} reports it. Default: none — the mount lives until {@link
   * MountRecords.release} (what a rootfs prepared for an orchestrator needs: its user is not a
   * hostpull process).
   */
  ownerPid?: number;
  now?: number;
}

export interface MountRow {
  id: string;
  ownerPid: number | null;
  ownerStart: string | null;
  createdAt: number;
  diffIds: Digest[];
}

/**
 * Which rootfs (containers/<id>, a `hostpull mount` view) uses which unpacked layers, so GC keeps
 * them (protocol.ts: a mount record is one of the rows GC re-checks before it removes a layer).
 */
export class MountRecords {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  /**
   * Records that rootfs `id` uses the unpacked layers `diffIds`. Call it *before* mounting. It runs
   * in one write transaction that also checks every layer still has its row: GC deletes a layer
   * row in a write transaction that re-checks this table, so either GC sees this record and keeps
   * the layer, or the layer is already gone and this throws LAYER_MISSING (pull again, then
   * retry) — never a mount over a directory being removed. Recording an id again replaces its
   * layer list.
   */
  record(id: string, diffIds: readonly Digest[], options: RecordMountOptions = {}): void {
    const db = this.#db;
    const now = options.now ?? Date.now();
    const ownerStart = options.ownerPid === undefined ? null : (processStartTime(options.ownerPid) ?? null);
    immediate(db, () => {
      const has = db.prepare('SELECT 1 FROM layers WHERE diff_id = ?');
      const missing = diffIds.filter((d) => has.get(d) === undefined);
      if (missing.length > 0) {
        throw new HostpullError('LAYER_MISSING', `rootfs ${id}: layer ${missing[0]} is not unpacked in the store (removed by gc, or never pulled)`, {
          hint: 'pull the image again, then retry',
          details: { id, missing },
        });
      }
      db.prepare(
        'INSERT INTO mounts (id, owner_pid, owner_start, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET owner_pid = excluded.owner_pid, owner_start = excluded.owner_start',
      ).run(id, options.ownerPid ?? null, ownerStart, now);
      db.prepare('DELETE FROM mount_layers WHERE mount_id = ?').run(id);
      const add = db.prepare('INSERT OR IGNORE INTO mount_layers (mount_id, diff_id) VALUES (?, ?)');
      const touch = db.prepare('UPDATE layers SET last_used = ? WHERE diff_id = ?');
      for (const d of diffIds) {
        add.run(id, d);
        touch.run(now, d);
      }
    });
  }

  /**
   * Takes rootfs `id` away from its owner process: from now on only {@link release} ends its
   * record (a rootfs the daemon has handed to an orchestrator outlives the daemon). False if `id`
   * is not recorded.
   */
  disown(id: string): boolean {
    return withBusyRetry(() => this.#db.prepare('UPDATE mounts SET owner_pid = NULL, owner_start = NULL WHERE id = ?').run(id).changes > 0, this.#db);
  }

  /** Forgets rootfs `id` (call it after unmounting); its layers become collectable. True if it was recorded. */
  release(id: string): boolean {
    return withBusyRetry(() => this.#db.prepare('DELETE FROM mounts WHERE id = ?').run(id).changes > 0, this.#db);
  }

  list(): MountRow[] {
    const rows = this.#db.prepare('SELECT id, owner_pid AS ownerPid, owner_start AS ownerStart, created_at AS createdAt FROM mounts ORDER BY id').all() as Array<
      Omit<MountRow, 'diffIds'>
    >;
    const layers = this.#db.prepare('SELECT diff_id AS d FROM mount_layers WHERE mount_id = ? ORDER BY diff_id');
    return rows.map((r) => ({ ...r, diffIds: (layers.all(r.id) as Array<{ d: Digest }>).map((x) => x.d) }));
  }

  /** The record of rootfs `id`, or undefined when it has none. */
  get(id: string): MountRow | undefined {
    const row = this.#db.prepare('SELECT id, owner_pid AS ownerPid, owner_start AS ownerStart, created_at AS createdAt FROM mounts WHERE id = ?').get(id) as Omit<MountRow, 'diffIds'> | undefined;
    if (row === undefined) return undefined;
    const layers = this.#db.prepare('SELECT diff_id AS d FROM mount_layers WHERE mount_id = ? ORDER BY diff_id').all(id) as Array<{ d: Digest }>;
    return { ...row, diffIds: layers.map((x) => x.d) };
  }

  /** How many rootfs are recorded. */
  count(): number {
    return (this.#db.prepare('SELECT COUNT(*) AS n FROM mounts').get() as { n: number }).n;
  }

  /** Every diff_id some recorded rootfs uses. */
  diffIds(): Set<Digest> {
    return new Set((this.#db.prepare('SELECT DISTINCT diff_id AS d FROM mount_layers').all() as Array<{ d: Digest }>).map((r) => r.d));
  }

  /** Whether rootfs `id` is recorded (whether or not its owner is alive). */
  has(id: string): boolean {
    return this.#db.prepare('SELECT 1 FROM mounts WHERE id = ?').get(id) !== undefined;
  }

  /**
   * Runs `fn` inside one write transaction, with `held` answering {@link isHeld} within it: until
   * `fn` returns, no other process records or releases a rootfs or runs this. The names that
   * point at a rootfs (container-names/) change only in here, so the holder a caller judged is
   * still the holder when it replaces or removes the name. `fn` must be synchronous and short: it
   * holds the store's write lock. Should SQLite answer BUSY after `fn` ran, `fn` runs again: make
   * it idempotent.
   */
  exclusively<T>(fn: (held: (id: string) => boolean) => T): T {
    return immediate(this.#db, () => fn((id) => this.isHeld(id)));
  }

  /** Whether rootfs `id` is recorded and its owner process, if it has one, is alive. */
  isHeld(id: string): boolean {
    const row = this.#db.prepare('SELECT owner_pid AS ownerPid, owner_start AS ownerStart FROM mounts WHERE id = ?').get(id) as { ownerPid: number | null; ownerStart: string | null } | undefined;
    return row !== undefined && (row.ownerPid === null || processAlive(row.ownerPid, row.ownerStart));
  }

  /** Recorded mounts whose owner process is gone (same pid and start time no longer running). */
  stale(): MountRow[] {
    return this.list().filter((m) => m.ownerPid !== null && !processAlive(m.ownerPid, m.ownerStart));
  }
}
