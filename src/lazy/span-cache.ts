import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
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

  constructor(dir: string) {
    this.dir = dir;
  }

  #path(index: number): string {
    return join(this.dir, String(index));
  }

  /** The span's bytes if cached and still matching `sha256` (hex); a mismatching file is removed. */
  async get(index: number, sha256: string): Promise<Buffer | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.#path(index));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    if (spanSha256(bytes) === sha256) return bytes;
    await unlink(this.#path(index)).catch(() => undefined);
    return undefined;
  }

  /** Stores verified bytes (the caller has checked them against the TOC). */
  async put(index: number, bytes: Buffer): Promise<void> {
    this.#made ??= mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.#made;
    const tmp = join(this.dir, `.tmp-${index}-${randomBytes(4).toString('hex')}`);
    try {
      await writeFile(tmp, bytes, { mode: 0o400 });
      await rename(tmp, this.#path(index));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Removes every cached span of the layer. */
  async clear(): Promise<void> {
    this.#made = undefined;
    await rm(this.dir, { recursive: true, force: true });
  }
}
