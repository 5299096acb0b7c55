import { existsSync, renameSync } from 'node:fs';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import type { LayerFootprint } from '../archive/index.js';
import type { Digest } from '../oci/index.js';
import { immediate, withBusyRetry, type Db } from './database.js';
import { fsyncDir } from './fsync-dir.js';
import type { StoreLayout } from './layout.js';
import { BLOB_LEASE_HELD_SQL, LEASE_STALE_AFTER_MS, numberedDirId, pullHeldSql, stagingDirName } from './protocol.js';
import { Quarantine } from './quarantine.js';
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
    await rm(`${stagingDir}.stale`, { recursive: true, force: true });
    await fsyncDir(this.#layout.layersDir);
    return this.getById(committed.id)!;
  }

  /**
   * commit() for a directory the store does not own but borrows from a record that may let go of
   * it meanwhile (a containerd snapshot's fs/, which containerd's Remove moves aside, after which
   * the snapshot's id — so the same path — may be a new snapshot's). `stillOwned` runs inside the
   * write transaction, where no removal can interleave: only while it is true is the directory
   * renamed into layers/. Never deletes `dir`: when the layer is present already (committed by
   * another process meanwhile) or the owner let go, it is left to its owner.
   */
  async adopt(dir: string, layer: LayerCommit, stillOwned: () => boolean): Promise<'adopted' | 'present' | 'gone'> {
    if (this.get(layer.diffId)) return 'present';
    await this.#syncFs?.(dir);
    const committed = this.#moveIn(dir, layer, stillOwned);
    if (committed === 'gone') return 'gone';
    if (committed.duplicate) return 'present';
    await rm(`${dir}.stale`, { recursive: true, force: true });
    await fsyncDir(this.#layout.layersDir);
    return 'adopted';
  }

  /**
   * Renames `stagingDir` to the next layers/<id> and inserts its row, in one write transaction;
   * 'gone' (nothing moved) when `stillOwned` says the directory is no longer the caller's.
   */
  #moveIn(stagingDir: string, layer: LayerCommit): { id: number; duplicate: boolean };
  #moveIn(stagingDir: string, layer: LayerCommit, stillOwned: () => boolean): { id: number; duplicate: boolean } | 'gone';
  #moveIn(stagingDir: string, layer: LayerCommit, stillOwned?: () => boolean): { id: number; duplicate: boolean } | 'gone' {
    const now = Date.now();
    return immediate(this.#db, () => {
      // Another process may have committed this diffId (unpacked from another blob with the same
      // content, so under another lease) between the caller's check and our write lock: keep its
      // layer, discard ours, rather than fail the pull on the UNIQUE constraint.
      const raced = this.get(layer.diffId);
      if (raced) return { id: raced.id, duplicate: true };
      if (stillOwned && !stillOwned()) return 'gone';
      const next = (this.#db.prepare('SELECT COALESCE(MAX(id), 0) + 1 AS id FROM layers').get() as { id: number }).id;
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
