import { existsSync, renameSync } from 'node:fs';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import type { LayerFootprint } from '../archive/index.js';
import type { Digest } from '../oci/index.js';
import { processAlive, processStartTime } from '../util/index.js';
import { immediate, withBusyRetry, type Db } from './database.js';
import { fsyncDir } from './fsync-dir.js';
import type { StoreLayout } from './layout.js';
import { BLOB_LEASE_HELD_SQL, LEASE_STALE_AFTER_MS, numberedDirId, pullHeldSql, stagingDirName } from './protocol.js';
import { Quarantine } from './quarantine.js';
import { SNAPSHOT_HOLDS_SQL, type SnapshotRow } from './snapshots.js';
import { syncFileSystem } from './sync-file-system.js';

export interface LayerRow {
  id: number;
  diffId: Digest;
  blobDigest: Digest;
  unpackedSize: number;
  entries: number;
  createdAt: number;
  lastUsed: number;
}

export interface LayerCommit {
  diffId: Digest;
  blobDigest: Digest;
  unpackedSize: number;
  entries: number;
  /** Non-directory paths the layer writes (relative, no leading slash), for overlap checks. */
  ownedPaths: string[];
  /** What the layer does to the tree, for checking package claims of later images against it. */
  footprint: LayerFootprint;
  /** Checksum of the unpacked tree (archive/tree-checksum.ts), for `hostpull verify`. */
  treeChecksum: string;
}

/**
 * An adoption written ahead (migration 9): layers/<layerId> is, or is about to become, the fs/
 * of committed snapshot `snapshotName` (id `snapshotId`), identified as layer `diffId`.
 */
export interface AdoptionIntent {
  layerId: number;
  snapshotName: string;
  snapshotId: number;
  diffId: Digest;
  ownerPid: number;
  ownerStart: string;
}

/** What reconcile did with the intent of an adoption whose owner died. */
export type AdoptionOutcome = 'restored' | 'removed' | 'none';

/** The next layer id: above every row and every id an adoption in progress reserved. */
const NEXT_LAYER_ID_SQL = 'SELECT COALESCE(MAX(id), 0) + 1 AS id FROM (SELECT id FROM layers UNION ALL SELECT layer_id FROM layer_adoptions)';

const INTENT_COLUMNS = 'layer_id AS layerId, snapshot_name AS snapshotName, snapshot_id AS snapshotId, diff_id AS diffId, owner_pid AS ownerPid, owner_start AS ownerStart';

const COLUMNS = 'id, diff_id AS diffId, blob_digest AS blobDigest, unpacked_size AS unpackedSize, entries, created_at AS createdAt, last_used AS lastUsed';

/**
 * Unpacked layers: one read-only tree per diff_id under layers/<id>/. A layer is extracted into a
 * staging directory named after this process and only renamed to its final name, with its row,
 * once extraction and diff_id verification succeeded; staging dirs of dead processes are removed
 * at start-up (reconcile.ts). The states and who may move a layer between them: protocol.ts.
 */
export class LayerStore {
  readonly #db: Db;
  readonly #layout: StoreLayout;
  readonly #quarantine: Quarantine;
  readonly #syncFs: ((dir: string) => Promise<void>) | undefined;

  /**
   * `syncFs`: flush the file system before a layer's row is written (containerd's
   * image_pull_with_sync_fs). Without it, the files an unpack wrote may still be only in the page
   * cache when the row is: a power loss can then leave a recorded layer with empty or short files.
   * With it, a row that survives always stands for files on the disk. `true` is syncfs(2); a
   * function replaces it (tests).
   */
  constructor(db: Db, layout: StoreLayout, options: { syncFs?: boolean | ((dir: string) => Promise<void>) } = {}) {
    this.#db = db;
    this.#layout = layout;
    this.#quarantine = new Quarantine(layout);
    this.#syncFs = options.syncFs === true ? syncFileSystem : options.syncFs || undefined;
  }

  get(diffId: Digest): LayerRow | undefined {
    return this.#db.prepare(`SELECT ${COLUMNS} FROM layers WHERE diff_id = ?`).get(diffId) as LayerRow | undefined;
  }

  /** The layer unpacked from this compressed blob, if any. */
  byBlob(blobDigest: Digest): LayerRow | undefined {
    return this.#db.prepare(`SELECT ${COLUMNS} FROM layers WHERE blob_digest = ? LIMIT 1`).get(blobDigest) as LayerRow | undefined;
  }

  getById(id: number): LayerRow | undefined {
    return this.#db.prepare(`SELECT ${COLUMNS} FROM layers WHERE id = ?`).get(id) as LayerRow | undefined;
  }

  list(): LayerRow[] {
    return this.#db.prepare(`SELECT ${COLUMNS} FROM layers ORDER BY id`).all() as LayerRow[];
  }

  dir(row: LayerRow): string {
    return this.#layout.layerDir(row.id);
  }

  ownedPaths(diffId: Digest): string[] {
    const row = this.#db.prepare('SELECT owned_paths AS p FROM layers WHERE diff_id = ?').get(diffId) as { p: string } | undefined;
    return row && row.p.length > 0 ? row.p.split('\n') : [];
  }

  /** The footprint recorded at unpack; null for a layer unpacked before footprints were recorded. */
  footprint(diffId: Digest): LayerFootprint | null {
    const row = this.#db.prepare('SELECT footprint AS f FROM layers WHERE diff_id = ?').get(diffId) as { f: string | null } | undefined;
    return row?.f ? (JSON.parse(row.f) as LayerFootprint) : null;
  }

  /** The tree checksum recorded at unpack; null for a layer unpacked before checksums were recorded. */
  treeChecksum(diffId: Digest): string | null {
    const row = this.#db.prepare('SELECT tree_checksum AS c FROM layers WHERE diff_id = ?').get(diffId) as { c: string | null } | undefined;
    return row?.c ?? null;
  }

  /**
   * Takes a layer out of the store because it is corrupt (or predates the records a check
   * needs): its row goes and its directory moves into quarantine/ in one write transaction, so
   * no reader sees a row without its directory, and the next pull unpacks it again. Returns the
   * quarantined path (undefined when the directory was already gone).
   */
  quarantine(row: LayerRow): string | undefined {
    return immediate(this.#db, () => {
      const current = this.getById(row.id);
      if (!current || current.diffId !== row.diffId) return undefined;
      this.#db.prepare('DELETE FROM layers WHERE id = ?').run(row.id);
      return this.#quarantine.moveIn(this.#layout.layerDir(row.id), `layer-${row.id}-${row.diffId}`);
    });
  }

  touch(diffIds: Iterable<Digest>, now = Date.now()): void {
    withBusyRetry(() => this.#db.transaction(() => {
      const stmt = this.#db.prepare('UPDATE layers SET last_used = ? WHERE diff_id = ?');
      for (const d of diffIds) stmt.run(now, d);
    })(), this.#db);
  }

  /** A fresh, empty staging directory for extracting a layer (name carries our pid). */
  async stage(): Promise<string> {
    await mkdir(this.#layout.layersDir, { recursive: true });
    const dir = join(this.#layout.layersDir, stagingDirName());
    await mkdir(dir, { mode: 0o755 });
    // Whatever the umask: the layer root is the rootfs's `/` unless the archive says otherwise.
    await chmod(dir, 0o755);
    return dir;
  }

  /**
   * Moves a finished staging directory to layers/<id> and commits its row. The rename happens
   * inside the write transaction that allocates the id: no other process can allocate the same id
   * meanwhile, and no reader ever sees a row whose directory is not in place yet.
   */
  async commit(stagingDir: string, layer: LayerCommit): Promise<LayerRow> {
    const existing = this.get(layer.diffId);
    if (existing) {
      await rm(stagingDir, { recursive: true, force: true });
      return existing;
    }
    await this.#syncFs?.(stagingDir);
    const committed = this.#moveIn(stagingDir, layer);
    if (committed.duplicate) {
      await rm(stagingDir, { recursive: true, force: true });
      return this.getById(committed.id)!;
    }
    await this.#settled(stagingDir);
    return this.getById(committed.id)!;
  }

  /**
   * commit() for the fs/ of committed snapshot `snapshot`, which the store does not own but
   * borrows: containerd's Remove moves it aside at any moment, after which the snapshot's id — so
   * the same path — may be a new snapshot's. `stillOwned` runs inside the write transaction,
   * where no removal can interleave: only while it is true is the directory renamed into
   * layers/. Never deletes fs/: when the layer is present already (committed by another process
   * meanwhile) or the owner let go, it is left to its owner.
   *
   * Unlike a staging directory, fs/ is containerd's only copy of the snapshot, so the move is
   * written ahead: an intent naming the snapshot and reserving the layer id is committed first,
   * and the transaction that renames and inserts the row deletes it. Killed between that rename
   * and that commit, the process leaves layers/<id> without a row but with its intent, and
   * reconcile puts the directory back (recoverAdoptions) instead of removing it as an unpack's.
   */
  async adopt(snapshot: Pick<SnapshotRow, 'name' | 'id'>, layer: LayerCommit, stillOwned: () => boolean): Promise<'adopted' | 'present' | 'gone'> {
    if (this.get(layer.diffId)) return 'present';
    const dir = this.#layout.snapshotFsDir(snapshot.id);
    await this.#syncFs?.(dir);
    const intent = this.#intendAdoption(snapshot, layer.diffId);
    let committed: { id: number; duplicate: boolean } | 'gone';
    try {
      committed = this.#moveIn(dir, layer, { layerId: intent.layerId, stillOwned });
    } catch (err) {
      // Rolled back, intent included; but a failed COMMIT leaves the rename done: settle it now,
      // as reconcile would once this process is gone (and will, should this fail too).
      await this.#settleAdoption(intent).catch(() => undefined);
      throw err;
    }
    if (committed === 'gone') return 'gone';
    if (committed.duplicate) return 'present';
    await this.#settled(dir);
    return 'adopted';
  }

  /**
   * After a directory moved in (#moveIn): the leftover it set aside goes, and the rename is made
   * durable (the entry lives in layers/).
   */
  async #settled(movedFrom: string): Promise<void> {
    await rm(`${movedFrom}.stale`, { recursive: true, force: true });
    await fsyncDir(this.#layout.layersDir);
  }

  /**
   * Settles the adoptions whose owner died between committing its intent and committing the
   * layer (reconcile, at open). Those of live processes are theirs to finish.
   */
  async recoverAdoptions(): Promise<Array<AdoptionIntent & { outcome: AdoptionOutcome }>> {
    const out: Array<AdoptionIntent & { outcome: AdoptionOutcome }> = [];
    for (const intent of this.#db.prepare(`SELECT ${INTENT_COLUMNS} FROM layer_adoptions ORDER BY layer_id`).all() as AdoptionIntent[]) {
      if (processAlive(intent.ownerPid, intent.ownerStart)) continue;
      out.push({ ...intent, outcome: await this.#settleAdoption(intent) });
    }
    return out;
  }

  /**
   * Commits the intent to move `snapshot`'s fs/ to layers/<id>, reserving the id: commit() takes
   * ids above every intent's (NEXT_LAYER_ID_SQL), so no other process's layer lands on it, and
   * no commit sets aside as a leftover the directory of an adoption that died there.
   */
  #intendAdoption(snapshot: Pick<SnapshotRow, 'name' | 'id'>, diffId: Digest): AdoptionIntent {
    const previous = this.#db.pragma('synchronous', { simple: true }) as number;
    // FULL for this one commit: in WAL mode, NORMAL makes a commit durable only at the next
    // checkpoint, and after a power loss the rename that follows could be on disk while the
    // intent (and the snapshot's diff_id mark before it) is not.
    this.#db.pragma('synchronous = FULL');
    try {
      return immediate(this.#db, () => {
        const layerId = (this.#db.prepare(NEXT_LAYER_ID_SQL).get() as { id: number }).id;
        const intent: AdoptionIntent = { layerId, snapshotName: snapshot.name, snapshotId: snapshot.id, diffId, ownerPid: process.pid, ownerStart: processStartTime(process.pid) ?? '' };
        this.#db
          .prepare('INSERT INTO layer_adoptions (layer_id, snapshot_name, snapshot_id, diff_id, owner_pid, owner_start, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
          .run(intent.layerId, intent.snapshotName, intent.snapshotId, intent.diffId, intent.ownerPid, intent.ownerStart, Date.now());
        return intent;
      });
    } finally {
      this.#db.pragma(`synchronous = ${previous}`);
    }
  }

  /**
   * Under the write lock, what an adoption that did not commit left, then its intent goes:
   *  - layers/<id> absent (or a row's): the rename never happened, or was undone.
   *  - the snapshot still as identified (same name, id and mark: ids are reused once a row is
   *    gone) and its fs/ path free: only the adoption's rename empties that path, so layers/<id>
   *    is that fs/, and it goes back.
   *  - otherwise layers/<id> is of no use to anyone (the snapshot was removed; or it is an older
   *    unpack's leftover and the rename never happened): removed, like any unclaimed directory.
   * Nothing when the intent was settled meanwhile (another process reconciling).
   */
  async #settleAdoption(intent: AdoptionIntent): Promise<AdoptionOutcome> {
    const dir = this.#layout.layerDir(intent.layerId);
    const fs = this.#layout.snapshotFsDir(intent.snapshotId);
    const doomed = join(this.#layout.layersDir, stagingDirName(`unclaimed-${intent.layerId}`));
    const outcome = immediate(this.#db, (): AdoptionOutcome => {
      if (this.#db.prepare('DELETE FROM layer_adoptions WHERE layer_id = ?').run(intent.layerId).changes === 0) return 'none';
      if (!existsSync(dir) || this.getById(intent.layerId)) return 'none';
      if (this.#db.prepare(SNAPSHOT_HOLDS_SQL).get(intent.snapshotName, intent.snapshotId, intent.diffId) !== undefined && !existsSync(fs)) {
        renameSync(dir, fs);
        return 'restored';
      }
      renameSync(dir, doomed);
      return 'removed';
    });
    if (outcome === 'restored') await fsyncDir(this.#layout.snapshotDir(intent.snapshotId));
    if (outcome === 'removed') await rm(doomed, { recursive: true, force: true });
    return outcome;
  }

  /**
   * Renames `stagingDir` to the next layers/<id> and inserts its row, in one write transaction.
   * An adoption moves to the id its intent reserved, and deletes the intent in the same
   * transaction (a rollback keeps it); 'gone' (nothing moved) when `stillOwned` says the
   * directory is no longer the caller's.
   */
  #moveIn(stagingDir: string, layer: LayerCommit): { id: number; duplicate: boolean };
  #moveIn(stagingDir: string, layer: LayerCommit, adoption: { layerId: number; stillOwned: () => boolean }): { id: number; duplicate: boolean } | 'gone';
  #moveIn(stagingDir: string, layer: LayerCommit, adoption?: { layerId: number; stillOwned: () => boolean }): { id: number; duplicate: boolean } | 'gone' {
    const now = Date.now();
    return immediate(this.#db, () => {
      if (adoption) this.#db.prepare('DELETE FROM layer_adoptions WHERE layer_id = ?').run(adoption.layerId);
      // Another process may have committed this diffId (unpacked from another blob with the same
      // content, so under another lease) between the caller's check and our write lock: keep its
      // layer, discard ours, rather than fail the pull on the UNIQUE constraint.
      const raced = this.get(layer.diffId);
      if (raced) return { id: raced.id, duplicate: true };
      if (adoption && !adoption.stillOwned()) return 'gone';
      const next = adoption?.layerId ?? (this.#db.prepare(NEXT_LAYER_ID_SQL).get() as { id: number }).id;
      const final = this.#layout.layerDir(next);
      // A directory of this id can only be a leftover of a crash between rename and commit;
      // reconcile removes those at start-up, so one here is rare: move it into our staging name.
      if (existsSync(final)) renameSync(final, `${stagingDir}.stale`);
      renameSync(stagingDir, final);
      try {
        this.#db
          .prepare(
            'INSERT INTO layers (id, diff_id, blob_digest, unpacked_size, entries, owned_paths, footprint, tree_checksum, created_at, last_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
          )
          .run(next, layer.diffId, layer.blobDigest, layer.unpackedSize, layer.entries, layer.ownedPaths.join('\n'), JSON.stringify(layer.footprint), layer.treeChecksum, now, now);
      } catch (err) {
        renameSync(final, stagingDir);
        throw err;
      }
      return { id: next, duplicate: false };
    });
  }

  /**
   * Removes layers/<name> unless a row claims it (reconciliation). commit() renames into
   * layers/<id> and inserts the row inside one write transaction, so a directory seen without a
   * row may be a commit that landed after the caller listed the rows: the check and a rename out
   * of the way happen under the write lock, the slow recursive delete after it.
   */
  async removeUnclaimedDir(name: string): Promise<boolean> {
    const doomed = join(this.#layout.layersDir, stagingDirName(`unclaimed-${name}`));
    const moved = immediate(this.#db, () => {
      const id = numberedDirId(name);
      if (id !== undefined && this.getById(id)) return false;
      // An adoption's, its owner alive or killed after the rename: recoverAdoptions decides.
      if (id !== undefined && this.#db.prepare('SELECT 1 FROM layer_adoptions WHERE layer_id = ?').get(id)) return false;
      try {
        renameSync(join(this.#layout.layersDir, name), doomed);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return false;
        throw err;
      }
      return true;
    });
    if (moved) await rm(doomed, { recursive: true, force: true });
    return moved;
  }

  /**
   * GC's removal of a layer: its row goes only if, in this write transaction, the layer is still
   * unused since `lastUsed` (what GC read), and no mount record, containerd snapshot, live lease
   * of its blob or pull in flight holds it; its directory is renamed out of its numbered name in
   * the same transaction (a new layer may get the id as soon as the row is gone) and deleted after.
   * False when something held it.
   */
  async collect(layer: Pick<LayerRow, 'id' | 'blobDigest'>, lastUsed: number): Promise<boolean> {
    const parked = join(this.#layout.layersDir, stagingDirName(`gc${layer.id}`));
    const removed = immediate(this.#db, () => {
      const deleted = this.#db
        .prepare(
          `DELETE FROM layers WHERE id = ? AND last_used = ? AND NOT EXISTS (SELECT 1 FROM mount_layers WHERE diff_id = layers.diff_id)
             AND NOT EXISTS (SELECT 1 FROM snapshots WHERE diff_id = layers.diff_id) AND NOT ${BLOB_LEASE_HELD_SQL}
             AND NOT ${pullHeldSql('layers.diff_id, layers.blob_digest')}`,
        )
        .run(layer.id, lastUsed, layer.blobDigest, Date.now() - LEASE_STALE_AFTER_MS, Date.now() - LEASE_STALE_AFTER_MS);
      if (deleted.changes === 0) return false;
      try {
        renameSync(this.#layout.layerDir(layer.id), parked);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
      }
      return true;
    });
    if (removed) await rm(parked, { recursive: true, force: true });
    return removed;
  }

  /**
   * Drops the row of a layer whose directory is gone (reconciliation). The caller saw the row and
   * the missing directory at different moments, and ids are reused (commit() takes MAX(id)+1): GC
   * may have removed this layer meanwhile and another pull committed a new one under the same id.
   * So, under the write lock, only the same layer's row goes (id and diffID), and only while its
   * directory is still missing. False when nothing was dropped.
   */
  remove(row: Pick<LayerRow, 'id' | 'diffId'>): boolean {
    return immediate(this.#db, () => {
      if (existsSync(this.#layout.layerDir(row.id))) return false;
      return this.#db.prepare('DELETE FROM layers WHERE id = ? AND diff_id = ?').run(row.id, row.diffId).changes > 0;
    });
  }
}
