import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HostpullError, errnoCode } from '../errors.js';
import type { Digest } from '../oci/index.js';
import { immediate, withBusyRetry, type Db } from './database.js';
import type { StoreLayout } from './layout.js';

export type SnapshotKind = 'active' | 'view' | 'committed';

export interface SnapshotRow {
  /** containerd's backend key (`<ns>/<seq>/<key>`), or the chainID of a layer hostpull made present. */
  name: string;
  /** Number of its own directory snapshots/<id>/ (which a committed layer snapshot never creates). */
  id: number;
  kind: SnapshotKind;
  parent: string | null;
  /** Committed: the unpacked layer it stands for (layers/<id>); null while it is its own fs/. */
  diffId: Digest | null;
  labels: Record<string, string>;
  createdAt: number;
  updatedAt: number;
}

export interface NewSnapshot {
  name: string;
  kind: SnapshotKind;
  parent: string | null;
  labels: Record<string, string>;
  /** A committed snapshot standing for this unpacked layer (its row must exist, unless `layerArriving`). */
  diffId?: Digest;
  /**
   * The layer `diffId` is not unpacked yet but is on its way (a lazy layer, completed in the
   * background): its row is not required. The snapshot holds it for GC from the start, like any
   * snapshot naming a diff_id, so the completed layer is never swept out from under it.
   */
  layerArriving?: boolean;
}

interface RawRow {
  name: string;
  id: number;
  kind: SnapshotKind;
  parent: string | null;
  diffId: Digest | null;
  labels: string;
  createdAt: number;
  updatedAt: number;
}

const COLUMNS = 'name, id, kind, parent, diff_id AS diffId, labels, created_at AS createdAt, updated_at AS updatedAt';

/**
 * A row when the committed snapshot `name` still has id `id` and is marked as holding diff_id
 * `diffId` (bind them in that order): SnapshotStore.holds(), and LayerStore's recovery of an
 * adoption, which asks the same thing of a snapshot named in an intent.
 */
export const SNAPSHOT_HOLDS_SQL = "SELECT 1 FROM snapshots WHERE name = ? AND id = ? AND kind = 'committed' AND diff_id = ?";

function fromRaw(r: RawRow): SnapshotRow {
  return { ...r, labels: JSON.parse(r.labels) as Record<string, string> };
}

function notFound(name: string): HostpullError {
  return new HostpullError('SNAPSHOT_NOT_FOUND', `snapshot ${JSON.stringify(name)} does not exist`);
}

/**
 * containerd snapshots as rows (migration 3). Every change runs in one write transaction that
 * checks what it depends on, the way recordMount() does for rootfs: a snapshot standing for a
 * layer is inserted only while the layer's row exists, and GC deletes a layer row only in a
 * transaction that finds no snapshot naming it, so a chain never points at a removed directory.
 * Directories are created and moved aside inside the same transactions, because ids are reused
 * once their row is gone.
 */
export class SnapshotStore {
  readonly #db: Db;
  readonly #layout: StoreLayout;

  constructor(db: Db, layout: StoreLayout) {
    this.#db = db;
    this.#layout = layout;
  }

  get(name: string): SnapshotRow | undefined {
    const r = this.#db.prepare(`SELECT ${COLUMNS} FROM snapshots WHERE name = ?`).get(name) as RawRow | undefined;
    return r && fromRaw(r);
  }

  list(): SnapshotRow[] {
    return (this.#db.prepare(`SELECT ${COLUMNS} FROM snapshots ORDER BY id`).all() as RawRow[]).map(fromRaw);
  }

  /** Committed snapshots not yet known as a layer, whose own fs/ holds what containerd applied. */
  unidentified(): SnapshotRow[] {
    return (this.#db.prepare(`SELECT ${COLUMNS} FROM snapshots WHERE kind = 'committed' AND diff_id IS NULL ORDER BY id`).all() as RawRow[]).map(fromRaw);
  }

  /** Committed snapshots standing for a layer that is not unpacked (yet): lazy layers still arriving. */
  awaitingLayer(): SnapshotRow[] {
    return (
      this.#db
        .prepare(`SELECT ${COLUMNS} FROM snapshots s WHERE kind = 'committed' AND diff_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM layers l WHERE l.diff_id = s.diff_id) ORDER BY id`)
        .all() as RawRow[]
    ).map(fromRaw);
  }

  /** Own directory of a snapshot: fs/ (upper, or the applied layer) and work/. */
  dir(row: Pick<SnapshotRow, 'id'>): { root: string; fs: string; work: string } {
    const root = this.#layout.snapshotDir(row.id);
    return { root, fs: this.#layout.snapshotFsDir(row.id), work: join(root, 'work') };
  }

  /**
   * Inserts a snapshot. Active and view snapshots get their own fs/ and work/ now; a committed
   * one (a layer made present by hostpull) gets no directory: it stands for `diffId`'s layer.
   */
  create(s: NewSnapshot, now = Date.now()): SnapshotRow {
    return immediate(this.#db, () => {
      if (this.get(s.name)) throw new HostpullError('SNAPSHOT_EXISTS', `snapshot ${JSON.stringify(s.name)} already exists`);
      this.#checkParent(s.name, s.parent);
      if (s.diffId !== undefined && !s.layerArriving) this.#checkLayer(s.name, s.diffId, now);
      const id = (this.#db.prepare('SELECT COALESCE(MAX(id), 0) + 1 AS id FROM snapshots').get() as { id: number }).id;
      if (s.kind !== 'committed') this.#makeDirs(id);
      this.#db
        .prepare('INSERT INTO snapshots (name, id, kind, parent, diff_id, labels, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(s.name, id, s.kind, s.parent, s.diffId ?? null, JSON.stringify(s.labels), now, now);
      return this.get(s.name)!;
    });
  }

  /**
   * Turns active snapshot `key` into committed snapshot `name` (containerd's Commit), keeping its
   * id and so its fs/ — unless `diffId` is given: then fs/ was already adopted as that layer.
   */
  commit(key: string, name: string, labels: Record<string, string>, diffId: Digest | null, now = Date.now()): SnapshotRow {
    return immediate(this.#db, () => {
      const active = this.get(key);
      if (!active) throw notFound(key);
      if (active.kind !== 'active') {
        throw new HostpullError('SNAPSHOT_NOT_ACTIVE', `snapshot ${JSON.stringify(key)} is a ${active.kind} snapshot; only an active one can be committed`);
      }
      if (this.get(name)) throw new HostpullError('SNAPSHOT_EXISTS', `snapshot ${JSON.stringify(name)} already exists`);
      if (diffId !== null) this.#checkLayer(name, diffId, now);
      this.#db.prepare('DELETE FROM snapshots WHERE name = ?').run(key);
      this.#db
        .prepare('INSERT INTO snapshots (name, id, kind, parent, diff_id, labels, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(name, active.id, 'committed', active.parent, diffId, JSON.stringify(labels), now, now);
      return this.get(name)!;
    });
  }

  /**
   * Records which layer a committed snapshot holds before its fs/ becomes that layer's directory
   * (adoption): until the layer row exists, its own fs/ still serves (see SnapshotStore users).
   * False when the snapshot read as `row` is gone (removed, its id perhaps another's now) or was
   * identified meanwhile: nothing is recorded then.
   */
  markDiffId(row: Pick<SnapshotRow, 'name' | 'id'>, diffId: Digest, now = Date.now()): boolean {
    const changed = withBusyRetry(
      () => this.#db.prepare("UPDATE snapshots SET diff_id = ?, updated_at = ? WHERE name = ? AND id = ? AND kind = 'committed' AND diff_id IS NULL").run(diffId, now, row.name, row.id).changes,
      this.#db,
    );
    return changed > 0;
  }

  /**
   * Whether the committed snapshot read as `row` still exists with the same id, marked as holding
   * `diffId`: so its fs/ is still what was identified as that layer (ids are reused once a row is
   * gone, so the path alone says nothing). Call it inside the transaction that acts on the answer.
   */
  holds(row: Pick<SnapshotRow, 'name' | 'id'>, diffId: Digest): boolean {
    return this.#db.prepare(SNAPSHOT_HOLDS_SQL).get(row.name, row.id, diffId) !== undefined;
  }

  setLabels(name: string, labels: Record<string, string>, now = Date.now()): SnapshotRow {
    return withBusyRetry(() => {
      const changed = this.#db.prepare('UPDATE snapshots SET labels = ?, updated_at = ? WHERE name = ?').run(JSON.stringify(labels), now, name).changes;
      if (changed === 0) throw notFound(name);
      return this.get(name)!;
    }, this.#db);
  }

  /**
   * Deletes a snapshot without children. Its own directory (if any) is moved aside inside the
   * transaction, since a new snapshot may get the same id as soon as the row is gone, and
   * deleted after it; the layer a committed snapshot stood for stays (GC decides about it).
   */
  async remove(name: string): Promise<SnapshotRow> {
    const doomed = join(this.#layout.snapshotsDir, `removed-${process.pid}-${randomBytes(6).toString('hex')}`);
    const row = immediate(this.#db, () => {
      const r = this.get(name);
      if (!r) throw notFound(name);
      const child = this.#db.prepare('SELECT name FROM snapshots WHERE parent = ? LIMIT 1').get(name) as { name: string } | undefined;
      if (child) {
        throw new HostpullError('SNAPSHOT_HAS_CHILDREN', `snapshot ${JSON.stringify(name)} has a child ${JSON.stringify(child.name)}`, {
          hint: 'remove the children first',
        });
      }
      this.#db.prepare('DELETE FROM snapshots WHERE name = ?').run(name);
      try {
        renameSync(this.#layout.snapshotDir(r.id), doomed);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
      }
      return r;
    });
    await rm(doomed, { recursive: true, force: true });
    return row;
  }

  /**
   * Of the entries `names` of snapshots/, moves those no row owns out of the way (under the write
   * lock, so a snapshot being created right now keeps its directory) and returns their new paths
   * for the caller to delete.
   */
  setAsideUnowned(names: readonly string[]): string[] {
    return immediate(this.#db, () => {
      const owned = new Set((this.#db.prepare('SELECT id FROM snapshots').all() as Array<{ id: number }>).map((r) => String(r.id)));
      const out: string[] = [];
      for (const name of names) {
        if (owned.has(name)) continue;
        const from = join(this.#layout.snapshotsDir, name);
        const to = name.startsWith('removed-') ? from : join(this.#layout.snapshotsDir, `removed-${process.pid}-${randomBytes(6).toString('hex')}`);
        try {
          if (to !== from) renameSync(from, to);
          out.push(to);
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') throw err;
        }
      }
      return out;
    });
  }

  /** Every diff_id some snapshot stands for (GC's references). */
  diffIds(): Set<Digest> {
    return new Set((this.#db.prepare('SELECT DISTINCT diff_id AS d FROM snapshots WHERE diff_id IS NOT NULL').all() as Array<{ d: Digest }>).map((r) => r.d));
  }

  #checkParent(name: string, parent: string | null): void {
    if (parent === null) return;
    const p = this.get(parent);
    if (!p) throw new HostpullError('SNAPSHOT_NOT_FOUND', `parent ${JSON.stringify(parent)} of snapshot ${JSON.stringify(name)} does not exist`);
    if (p.kind !== 'committed') {
      throw new HostpullError('SNAPSHOT_PARENT_NOT_COMMITTED', `parent ${JSON.stringify(parent)} of snapshot ${JSON.stringify(name)} is ${p.kind}, not committed`);
    }
  }

  #checkLayer(name: string, diffId: Digest, now: number): void {
    if (this.#db.prepare('UPDATE layers SET last_used = ? WHERE diff_id = ?').run(now, diffId).changes === 0) {
      throw new HostpullError('LAYER_MISSING', `snapshot ${JSON.stringify(name)}: layer ${diffId} is not unpacked in the store (removed by gc meanwhile?)`, {
        hint: 'pull the image again',
      });
    }
  }

  #makeDirs(id: number): void {
    const root = this.#layout.snapshotDir(id);
    // A directory with a free id is a leftover of a crash before its row was written: set it
    // aside (cleanup() removes it) rather than delete a possibly big tree inside the lock.
    try {
      renameSync(root, join(this.#layout.snapshotsDir, `removed-${process.pid}-${randomBytes(6).toString('hex')}`));
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    mkdirSync(join(root, 'fs'), { recursive: true, mode: 0o755 });
    mkdirSync(join(root, 'work'), { mode: 0o700 });
  }
}
