import { HostpullError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { immediate, withBusyRetry } from '../store/database.js';
import type { ContentStore } from '../store/content-store.js';
import { processAlive, processStartTime } from './process-start.js';

export interface RecordMountOptions {
  /**
   * The process that uses the rootfs: when it is gone, the mount is stale and
   * {@link staleMounts} reports it. Default: none — the mount lives until {@link releaseMount}
   * (what a rootfs prepared for an orchestrator needs: its user is not a hostpull process).
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
 * Records that rootfs `id` (containers/<id>) uses the unpacked layers `diffIds`, so GC keeps
 * them. Call it *before* mounting. It runs in one write transaction that also checks every layer
 * still has its row: GC deletes a layer row in a write transaction that re-checks this table, so
 * either GC sees this record and keeps the layer, or the layer is already gone and this throws
 * LAYER_MISSING (pull again, then retry) — never a mount over a directory being removed.
 * Recording an id again replaces its layer list.
 */
export function recordMount(store: ContentStore, id: string, diffIds: readonly Digest[], options: RecordMountOptions = {}): void {
  const db = store.db;
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
 * Takes rootfs `id` away from its owner process: from now on only {@link releaseMount} ends its
 * record (a rootfs the daemon has handed to an orchestrator outlives the daemon). False if `id`
 * is not recorded.
 */
export function disownMount(store: ContentStore, id: string): boolean {
  return withBusyRetry(() => store.db.prepare('UPDATE mounts SET owner_pid = NULL, owner_start = NULL WHERE id = ?').run(id).changes > 0, store.db);
}

/** Forgets rootfs `id` (call it after unmounting); its layers become collectable. True if it was recorded. */
export function releaseMount(store: ContentStore, id: string): boolean {
  return withBusyRetry(() => store.db.prepare('DELETE FROM mounts WHERE id = ?').run(id).changes > 0, store.db);
}

export function listMounts(store: ContentStore): MountRow[] {
  const rows = store.db.prepare('SELECT id, owner_pid AS ownerPid, owner_start AS ownerStart, created_at AS createdAt FROM mounts ORDER BY id').all() as Array<
    Omit<MountRow, 'diffIds'>
  >;
  const layers = store.db.prepare('SELECT diff_id AS d FROM mount_layers WHERE mount_id = ? ORDER BY diff_id');
  return rows.map((r) => ({ ...r, diffIds: (layers.all(r.id) as Array<{ d: Digest }>).map((x) => x.d) }));
}

/** Every diff_id some recorded rootfs uses. */
export function mountedDiffIds(store: ContentStore): Set<Digest> {
  return new Set((store.db.prepare('SELECT DISTINCT diff_id AS d FROM mount_layers').all() as Array<{ d: Digest }>).map((r) => r.d));
}

/** Recorded mounts whose owner process is gone (same pid and start time no longer running). */
export function staleMounts(store: ContentStore): MountRow[] {
  return listMounts(store).filter((m) => m.ownerPid !== null && !processAlive(m.ownerPid, m.ownerStart));
}
