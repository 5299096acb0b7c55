import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import { spanSha256 } from '../oci/index.js';

/**
 * Verified compressed spans of one layer on disk, `<dir>/<index>`: written to a temporary name
 * and renamed, so a reader sees a whole span or none (a killed process leaves no half-filled
 * entry, only a `.tmp-` file removed with the directory), and checked against the TOC's sha256
 * again when read, so a file damaged on disk is dropped and fetched again, never served.
 */
export class SpanCache {
  readonly dir: string;
  #made: Promise<unknown> | undefined;
  /**
   * The spans on disk, listed once, for the cache's only writer (the FUSE helper): a fresh node
   * then asks the disk nothing for the spans it has not got (a failed open per span was ~40 ms
   * of a starting JVM's misses). Another process's view of the same directory (the parent's
   * completion, reading what the helper wrote) has no index: it must see new files.
   */
  #index: Promise<Set<number> | undefined> | undefined;
  /** The index once listed (the same set), for {@link has}. */
  #listed: Set<number> | undefined;

  constructor(dir: string, options: { soleWriter?: boolean } = {}) {
    this.dir = dir;
    if (options.soleWriter) this.#index = listSpans(dir).then((set) => (this.#listed = set));
  }

  /** The sole writer's view: span `index` is on disk (false when unknown, or the index is not listed yet). */
  has(index: number): boolean {
    return this.#listed?.has(index) ?? false;
  }

  #path(index: number): string {
    return join(this.dir, String(index));
  }

  /**
   * The span's bytes if cached and still matching `sha256` (hex); a mismatching file is removed.
   * A span whose file is gone (the directory removed under this cache) is a miss, and unlisted.
   */
  async get(index: number, sha256: string): Promise<Buffer | undefined> {
    const listed = await this.#index;
    if (listed && !listed.has(index)) return undefined;
    let bytes: Buffer;
    try {
      bytes = await readFile(this.#path(index));
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      listed?.delete(index);
      return undefined;
    }
    if (spanSha256(bytes) === sha256) return bytes;
    listed?.delete(index);
    await unlink(this.#path(index)).catch(() => undefined);
    return undefined;
  }

  /** Stores verified bytes (the caller has checked them against the TOC). */
  async put(index: number, bytes: Buffer): Promise<void> {
    try {
      await this.#write(index, bytes);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      // The directory went while this cache was in use (pruneSpanCaches() at a `hostpull run`'s
      // start, another process's clear() of a layer it completed): made again, once, rather than
      // every later span failing for the life of the helper. The spans the index listed went with
      // it, so it lists none of them any more (a has() that said "here" would skip their prefetch).
      (await this.#index)?.clear();
      this.#made = undefined;
      await this.#write(index, bytes);
    }
  }

  async #write(index: number, bytes: Buffer): Promise<void> {
    this.#made ??= mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.#made;
    const tmp = join(this.dir, `.tmp-${index}-${randomBytes(4).toString('hex')}`);
    try {
      await writeFile(tmp, bytes, { mode: 0o400 });
      await rename(tmp, this.#path(index));
      (await this.#index)?.add(index);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Removes every cached span of the layer. */
  async clear(): Promise<void> {
    this.#made = undefined;
    (await this.#index)?.clear();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** The span indexes with a file in `dir` (none when it does not exist yet); undefined, so no index, if it cannot be listed. */
async function listSpans(dir: string): Promise<Set<number> | undefined> {
  try {
    return new Set((await readdir(dir)).filter((n) => /^\d+$/.test(n)).map(Number));
  } catch (err) {
    return errnoCode(err) === 'ENOENT' ? new Set() : undefined;
  }
}
