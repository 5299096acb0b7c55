import type { Digest } from '../oci/index.js';
import { HostpullError } from '../errors.js';
import { immediate, type Db } from './database.js';

export interface ImageRow {
  reference: string;
  registry: string;
  repository: string;
  tag: string | null;
  manifestDigest: Digest;
  indexDigest: Digest | null;
  configDigest: Digest;
  resolvedAt: number;
}

export interface ManifestLayerRow {
  position: number;
  blobDigest: Digest;
  diffId: Digest;
  mediaType: string;
  size: number;
}

const IMAGE_COLUMNS =
  'reference, registry, repository, tag, manifest_digest AS manifestDigest, index_digest AS indexDigest, config_digest AS configDigest, resolved_at AS resolvedAt';

/** Which reference resolved to which manifest, and each manifest's layers in manifest order. */
export class ImageIndex {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  get(reference: string): ImageRow | undefined {
    return this.#db.prepare(`SELECT ${IMAGE_COLUMNS} FROM images WHERE reference = ?`).get(reference) as ImageRow | undefined;
  }

  /** Any image row that resolved to this manifest (to answer "already pulled" by digest). */
  byManifest(manifestDigest: Digest): ImageRow | undefined {
    return this.#db.prepare(`SELECT ${IMAGE_COLUMNS} FROM images WHERE manifest_digest = ? OR index_digest = ? LIMIT 1`).get(manifestDigest, manifestDigest) as
      | ImageRow
      | undefined;
  }

  list(): ImageRow[] {
    return this.#db.prepare(`SELECT ${IMAGE_COLUMNS} FROM images ORDER BY reference`).all() as ImageRow[];
  }

  layers(manifestDigest: Digest): ManifestLayerRow[] {
    return this.#db
      .prepare('SELECT position, blob_digest AS blobDigest, diff_id AS diffId, media_type AS mediaType, size FROM manifest_layers WHERE manifest_digest = ? ORDER BY position')
      .all(manifestDigest) as ManifestLayerRow[];
  }

  /** Records a resolved image and its layers in one transaction. */
  put(image: ImageRow, layers: ManifestLayerRow[]): void {
    immediate(this.#db, () => {
      const insertLayer = this.#db.prepare(
        'INSERT OR IGNORE INTO manifest_layers (manifest_digest, position, blob_digest, diff_id, media_type, size) VALUES (?, ?, ?, ?, ?, ?)',
      );
      for (const l of layers) insertLayer.run(image.manifestDigest, l.position, l.blobDigest, l.diffId, l.mediaType, l.size);
      this.#db
        .prepare(
          'INSERT INTO images (reference, registry, repository, tag, manifest_digest, index_digest, config_digest, resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ' +
            'ON CONFLICT(reference) DO UPDATE SET manifest_digest = excluded.manifest_digest, index_digest = excluded.index_digest, config_digest = excluded.config_digest, resolved_at = excluded.resolved_at',
        )
        .run(image.reference, image.registry, image.repository, image.tag, image.manifestDigest, image.indexDigest, image.configDigest, image.resolvedAt);
    });
  }

  /**
   * Removes image rows in one write transaction (GC: an image that lost a layer no longer
   * promises a complete image), and the layer lists of manifests no remaining image resolves to.
   */
  removeAll(references: readonly string[]): void {
    immediate(this.#db, () => this.#delete(references));
  }

  /**
   * `hostpull rmi`: removes exactly these images, or none of them (IMAGE_UNKNOWN naming every
   * reference the store does not hold), in one write transaction. Their layers stay: GC removes
   * those no other image lists.
   */
  removeNamed(references: readonly string[]): ImageRow[] {
    return immediate(this.#db, () => {
      const rows = references.map((r) => ({ reference: r, row: this.get(r) }));
      const unknown = rows.filter((r) => !r.row).map((r) => r.reference);
      if (unknown.length > 0) {
        throw new HostpullError('IMAGE_UNKNOWN', `not in the store: ${unknown.join(', ')}; nothing was removed`, {
          hint: '`hostpull images` lists the stored references, spelled as they must be given',
        });
      }
      this.#delete(references);
      return rows.map((r) => r.row!);
    });
  }

  /** Deletes image rows and the layer lists no remaining image resolves to; inside the caller's transaction. */
  #delete(references: readonly string[]): void {
    const del = this.#db.prepare('DELETE FROM images WHERE reference = ? RETURNING manifest_digest AS m');
    const orphanLayers = this.#db.prepare('DELETE FROM manifest_layers WHERE manifest_digest = ? AND NOT EXISTS (SELECT 1 FROM images WHERE manifest_digest = ?)');
    for (const ref of references) {
      const row = del.get(ref) as { m: Digest } | undefined;
      if (row) orphanLayers.run(row.m, row.m);
    }
  }

  /** diff_id → compressed digest of every layer some stored image lists. */
  listedLayers(): Map<Digest, Digest> {
    const rows = this.#db.prepare('SELECT DISTINCT diff_id AS diffId, blob_digest AS blobDigest FROM manifest_layers').all() as Array<{ diffId: Digest; blobDigest: Digest }>;
    return new Map(rows.map((r) => [r.diffId, r.blobDigest]));
  }
}
