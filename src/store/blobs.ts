import type { Hash } from 'node:crypto';
import { createReadStream, openSync, constants as fsc } from 'node:fs';
import { chmod, mkdir, readFile, rename, stat, truncate, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HostpullError, errnoCode } from '../errors.js';
import { createDigester, digestAlgorithm, digestOf, digestStream, hashInto, shortDigest, type Digest, type DigestAlgorithm } from '../oci/index.js';
import { type Db, immediate, withBusyRetry } from './database.js';
import { fsyncDir } from './fsync-dir.js';
import { IngestWriter, type DirectWrites } from './ingest-writer.js';
import { alignedBuffer, DIRECT_IO_ALIGNMENT } from '../native/index.js';
import type { StoreLayout } from './layout.js';
import { BLOB_LEASE_HELD_SQL, LEASE_STALE_AFTER_MS, pullHeldSql } from './protocol.js';
import { Quarantine } from './quarantine.js';

export interface BlobRow {
  digest: Digest;
  size: number;
  mediaType: string | null;
  createdAt: number;
  lastUsed: number;
}

/** An open ingest: where to resume from, the digester fed with the bytes already on disk, and the sink. */
export interface Ingest {
  digest: Digest;
  size: number;
  /** Bytes already present in the partial file (the `Range` start). */
  offset: number;
  /** Digester already fed with `offset` bytes. */
  hash: Hash;
  /** Append-only sink: on a clean end it fsyncs (when durable), renames into blobs/ and commits the row. */
  writer: IngestWriter;
  /** The partial file under ingest/. */
  path: string;
}

/**
 * Verified blobs: files under blobs/ plus one row each. The row is the truth: it is written only
 * after the file was fsynced, verified and renamed, so a crash leaves either no row or a good file
 * (containerd's content store works the same way).
 */
export class BlobStore {
  readonly #db: Db;
  readonly #layout: StoreLayout;
  readonly #quarantine: Quarantine;
  readonly #get;
  readonly #insert;
  readonly #touch;

  constructor(db: Db, layout: StoreLayout) {
    this.#db = db;
    this.#layout = layout;
    this.#quarantine = new Quarantine(layout);
    this.#get = db.prepare('SELECT digest, size, media_type AS mediaType, created_at AS createdAt, last_used AS lastUsed FROM blobs WHERE digest = ?');
    this.#insert = db.prepare(
      'INSERT INTO blobs (digest, size, media_type, created_at, last_used) VALUES (?, ?, ?, ?, ?) ON CONFLICT(digest) DO UPDATE SET last_used = excluded.last_used',
    );
    this.#touch = db.prepare('UPDATE blobs SET last_used = ? WHERE digest = ?');
  }

  get(digest: Digest): BlobRow | undefined {
    return this.#get.get(digest) as BlobRow | undefined;
  }

  has(digest: Digest): boolean {
    return this.get(digest) !== undefined;
  }

  path(digest: Digest): string {
    return this.#layout.blobPath(digest);
  }

  touch(digests: Iterable<Digest>, now = Date.now()): void {
    withBusyRetry(() => this.#db.transaction(() => {
      for (const d of digests) this.#touch.run(now, d);
    })(), this.#db);
  }

  list(): BlobRow[] {
    return this.#db
      .prepare('SELECT digest, size, media_type AS mediaType, created_at AS createdAt, last_used AS lastUsed FROM blobs ORDER BY digest')
      .all() as BlobRow[];
  }

  /**
   * Reads a small stored blob (manifest, config) and checks it still hashes to its digest. A blob
   * that does not is quarantined before STORE_CORRUPT is thrown: the next pull fetches it again.
   */
  async readBytes(digest: Digest): Promise<Buffer> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.path(digest));
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      this.quarantine(digest);
      throw corrupt(digest, this.path(digest), 'is missing');
    }
    if (digestOf(bytes, digestAlgorithm(digest)) !== digest) {
      this.quarantine(digest);
      throw corrupt(digest, this.path(digest), 'no longer matches its digest (moved to quarantine)');
    }
    return bytes;
  }

  /**
   * Takes a corrupt blob out of the store: its row goes and its file moves into quarantine/, in
   * one write transaction, so the blob counts as missing from then on (fetched again by the next
   * pull, never "up to date"). Returns the quarantined path (undefined when the file was gone).
   */
  quarantine(digest: Digest): string | undefined {
    return immediate(this.#db, () => {
      this.#db.prepare('DELETE FROM blobs WHERE digest = ?').run(digest);
      return this.#quarantine.moveIn(this.path(digest), `blob-${digest}`);
    });
  }

  /** Stores bytes already in memory and verified by the caller (manifests and configs). */
  async putBytes(digest: Digest, bytes: Buffer, mediaType: string | null): Promise<void> {
    if (this.has(digest)) return;
    if (digestOf(bytes, digestAlgorithm(digest)) !== digest) {
      throw new HostpullError('DIGEST_MISMATCH', `refusing to store ${shortDigest(digest)}: content hashes differently`);
    }
    // No lease guards manifests and configs: two processes may store the same one at once, so
    // each writes a file of its own (a shared partial would be truncated under the other's feet).
    const ingest = await this.openIngest(digest, bytes.length, mediaType, { resume: false, ownFile: true });
    try {
      await new Promise<void>((resolve, reject) => {
        ingest.writer.once('error', reject);
        // end()'s callback also runs when _final (the commit) fails, with the error, and before
        // the 'error' event: ignoring its argument would report a failed commit as stored.
        ingest.writer.end(bytes, (err?: Error | null) => (err ? reject(err) : resolve()));
      });
    } catch (err) {
      // Nothing to resume from a file of our own: do not leave it for the age-based cleanup.
      await unlink(ingest.path).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Opens the ingest file for `digest`. With `resume`, bytes left by an earlier, interrupted
   * download are kept and re-hashed (reading is far cheaper than fetching again), and `offset`
   * says where the next request must start. The shared partial file is for writers that hold the
   * blob's lease; with `ownFile` the writer gets a file no other process opens.
   *
   * `durable: false` (default true) is for a blob kept only until its layer is committed, which
   * the holder of its lease then drops (the default of a pull): its file and its directory entry
   * are not fsynced. A kill leaves the page cache, so nothing changes there; only a power loss in
   * the moments between the row and the drop could leave a row whose file lost its bytes, and
   * unpacking that file fails on its digest, which quarantines it and fetches it again
   * (`corruptOnDisk`). Measured on a cold pull of the peer images at load 5-8: the fsyncs of the
   * two small layer blobs (written through the page cache) waited 93 and 251 ms, each delaying
   * its layer's commit.
   */
  async openIngest(
    digest: Digest,
    size: number,
    mediaType: string | null,
    options: { resume: boolean; ownFile?: boolean; direct?: boolean; durable?: boolean },
  ): Promise<Ingest> {
    const partial = this.#layout.ingestPath(digest, options.ownFile);
    await mkdir(this.#layout.ingestDir, { recursive: true });
    let offset = 0;
    const hash = createDigester(digestAlgorithm(digest));
    if (options.resume) {
      const existing = await stat(partial).catch((err) => (errnoCode(err) === 'ENOENT' ? undefined : Promise.reject(err)));
      // A whole one too (a process killed after its last byte, before the commit): `offset` is
      // then `size`, and the caller verifies and commits it without a request.
      if (existing && existing.size > 0 && existing.size <= size) {
        // The bytes already there feed the digester the download goes on with.
        offset = await hashInto(createReadStream(partial, { start: 0, end: existing.size - 1, highWaterMark: 1 << 20 }), hash);
      } else if (existing) {
        await truncate(partial, 0);
      }
    }
    // O_NOFOLLOW: ingest/ is ours, but never write through a link someone planted there.
    const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_NOFOLLOW | (offset > 0 ? 0 : fsc.O_TRUNC);
    const fd = openSync(partial, flags, 0o600);
    const direct = options.direct && offset % DIRECT_IO_ALIGNMENT === 0 ? openDirect(partial) : undefined;
    const durable = options.durable ?? true;
    const writer = new IngestWriter(fd, () => this.#commit(digest, size, mediaType, partial, durable), { offset, durable, ...(direct ? { direct } : {}) });
    return { digest, size, offset, hash, writer, path: partial };
  }

  /** Forgets a partial download (after a digest mismatch the prefix cannot be trusted). */
  async discardIngest(digest: Digest): Promise<void> {
    await unlink(this.#layout.ingestPath(digest)).catch((err) => {
      if (errnoCode(err) !== 'ENOENT') throw err;
    });
  }

  async #commit(digest: Digest, size: number, mediaType: string | null, partial: string, durable: boolean): Promise<void> {
    const final = this.path(digest);
    await mkdir(dirname(final), { recursive: true });
    await chmod(partial, 0o444);
    // Rename is atomic; if another process committed the same digest meanwhile, its file has the
    // same verified content, so replacing it is harmless.
    await rename(partial, final);
    if (durable) await fsyncDir(dirname(final));
    const now = Date.now();
    withBusyRetry(() => this.#insert.run(digest, size, mediaType, now, now), this.#db);
  }

  /** True when the stored file of `digest` is missing or no longer hashes to it (its row says it is stored). */
  async corruptOnDisk(digest: Digest): Promise<boolean> {
    if (!this.has(digest)) return false;
    try {
      return (await hashFile(this.path(digest), digestAlgorithm(digest))).digest !== digest;
    } catch {
      return true;
    }
  }

  /** Inserts a row for a verified file found on disk without one (crash between rename and commit). */
  adopt(digest: Digest, size: number): void {
    const now = Date.now();
    withBusyRetry(() => this.#insert.run(digest, size, null, now, now), this.#db);
  }

  /**
   * Drops a stored blob whose content lives on elsewhere (its layer is unpacked and verified):
   * the row goes first, then the file, so a crash in between leaves a verified file without a
   * row, which reconcile adopts again, never a row without its file.
   */
  async drop(digest: Digest): Promise<void> {
    this.deleteRow(digest);
    await this.#unlinkFile(digest);
  }

  deleteRow(digest: Digest): void {
    withBusyRetry(() => this.#db.prepare('DELETE FROM blobs WHERE digest = ?').run(digest), this.#db);
  }

  /**
   * GC's removal of a blob: its row goes only if, in this write transaction, it is still unused
   * since `lastUsed` (what GC read) and no live lease or pull in flight holds it; the file goes
   * after the row (a crash in between leaves a file without a row, which reconcile verifies and
   * adopts). False when something held it.
   */
  async collect(digest: Digest, lastUsed: number): Promise<boolean> {
    const removed = immediate(
      this.#db,
      () =>
        this.#db
          .prepare(`DELETE FROM blobs WHERE digest = ? AND last_used = ? AND NOT ${BLOB_LEASE_HELD_SQL} AND NOT ${pullHeldSql('blobs.digest')}`)
          .run(digest, lastUsed, digest, Date.now() - LEASE_STALE_AFTER_MS, Date.now() - LEASE_STALE_AFTER_MS).changes > 0,
    );
    if (removed) await this.#unlinkFile(digest);
    return removed;
  }

  /**
   * Drops a blob that only served to unpack its layer (the snapshotter keeps layers, not blobs),
   * unless an image hostpull pulled lists it: such an image must stay complete.
   */
  async dropUnlessListed(digest: Digest): Promise<boolean> {
    const dropped = immediate(
      this.#db,
      () => this.#db.prepare('DELETE FROM blobs WHERE digest = ? AND NOT EXISTS (SELECT 1 FROM manifest_layers WHERE blob_digest = ?)').run(digest, digest).changes > 0,
    );
    if (dropped) await this.#unlinkFile(digest);
    return dropped;
  }

  async #unlinkFile(digest: Digest): Promise<void> {
    await unlink(this.path(digest)).catch((err) => {
      if (errnoCode(err) !== 'ENOENT') throw err;
    });
  }
}

/** Bytes per direct write: 1 MiB took 0.59 s for 500 MB on the benchmark VM, 4 MiB 0.43 s. */
const DIRECT_BLOCK = 1 << 20;

/**
 * A second, O_DIRECT descriptor of the ingest file and its two aligned buffers (IngestWriter says
 * why), or undefined where that cannot be had: a filesystem without direct I/O (EINVAL at open),
 * or no native addon for aligned memory. The bytes then go through the page cache as before.
 */
function openDirect(path: string): DirectWrites | undefined {
  let buffers: [Buffer, Buffer];
  try {
    buffers = [alignedBuffer(DIRECT_BLOCK, DIRECT_IO_ALIGNMENT), alignedBuffer(DIRECT_BLOCK, DIRECT_IO_ALIGNMENT)];
  } catch {
    return undefined;
  }
  try {
    return { fd: openSync(path, fsc.O_WRONLY | fsc.O_NOFOLLOW | fsc.O_DIRECT), buffers };
  } catch (err) {
    if (errnoCode(err) === 'EINVAL') return undefined;
    throw err;
  }
}

/** Hashes a whole file (re-verification and reconciliation). */
export function hashFile(path: string, algorithm: DigestAlgorithm): Promise<{ digest: Digest; size: number }> {
  return digestStream(createReadStream(path, { highWaterMark: 1 << 20 }), algorithm);
}

function corrupt(digest: Digest, path: string, what: string): HostpullError {
  return new HostpullError('STORE_CORRUPT', `stored blob ${digest} at ${path} ${what}`, {
    hint: 'pull the image again: the blob is fetched anew (`hostpull verify --repair` checks the whole store)',
    details: { digest },
  });
}
