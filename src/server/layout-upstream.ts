import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errnoCode, HostpullError } from '../errors.js';
import { digestAlgorithm, digestHex, HashingStream, digestOf, isDigest, MAX_MANIFEST_BYTES, MediaType, parseManifest, type Digest } from '../oci/index.js';
import { Mutex, withFileLock } from './file-lock.js';
import type { BlobBody, BlobRead, ByteRange, StoredManifest, Upstream } from './upstream.js';

/**
 * Bytes per read of a blob being served. With Node's default (64 KiB) the server spent 3.8-4.2 ms
 * of CPU per MB of 4 MiB Range requests (lazy spans) and 3.1-3.7 ms per MB of whole blobs, in
 * stream and socket turns per chunk; with 1 MiB reads 2.3-2.6 and 2.0-2.1 ms (`hostpull serve`
 * over the demo's layout: 168 MB of ranges and 423 MB of whole blobs fetched by curl, CPU from
 * /proc, two runs each). A response holds about one read in memory at a time.
 */
export const BLOB_READ_BYTES = 1024 * 1024;

/** image-spec annotations.md: the reference name of an index entry. */
const REF_NAME = 'org.opencontainers.image.ref.name';
/** Our annotation naming the repository of an untagged manifest, so listTags knows the repo exists. */
const REPOSITORY_ANNOTATION = 'dev.hostpull.repository';

interface IndexEntry {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
}

interface LayoutIndex {
  schemaVersion: 2;
  mediaType: string;
  manifests: IndexEntry[];
}

export interface LayoutUpstreamOptions {
  /** The layout directory; created (with `oci-layout` and an empty `index.json`) if missing. */
  dir: string;
}

/**
 * An OCI image layout directory (image-spec image-layout.md) holding many repositories.
 *
 * Convention for several repositories in one layout: each tagged manifest has one entry in
 * index.json whose `org.opencontainers.image.ref.name` is `<repository>:<tag>` (the image-spec
 * allows a fully qualified reference there), so `skopeo copy oci:DIR:pkg/jdk:11.0 …` reads it.
 * Blobs live once in `blobs/<alg>/<hex>` and are visible from every repository: the layout is
 * one trust domain, unlike a registry with per-repository access.
 *
 * Writes are atomic (temporary file + rename, digest verified before the rename); index.json is
 * rewritten under an in-process mutex plus a lock file, so replicas sharing the directory do not
 * lose each other's tags.
 */
export class LayoutUpstream implements Upstream {
  readonly kind = 'layout' as const;
  readonly location: string;
  readonly registry = undefined;
  readonly #dir: string;
  readonly #indexMutex = new Mutex();
  #ready: Promise<void> | undefined;

  constructor(options: LayoutUpstreamOptions) {
    this.#dir = options.dir;
    this.location = options.dir;
  }

  #init(): Promise<void> {
    this.#ready ??= (async () => {
      await mkdir(join(this.#dir, 'blobs', 'sha256'), { recursive: true });
      await mkdir(join(this.#dir, '.ingest'), { recursive: true });
      await writeFile(join(this.#dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }), { flag: 'wx' }).catch((err: unknown) => {
        if (errnoCode(err) !== 'EEXIST') throw err;
      });
      const empty: LayoutIndex = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
      await writeFile(join(this.#dir, 'index.json'), JSON.stringify(empty), { flag: 'wx' }).catch((err: unknown) => {
        if (errnoCode(err) !== 'EEXIST') throw err;
      });
    })();
    return this.#ready;
  }

  #blobPath(digest: Digest): string {
    return join(this.#dir, 'blobs', digestAlgorithm(digest), digestHex(digest));
  }

  async #readIndex(): Promise<LayoutIndex> {
    await this.#init();
    const text = await readFile(join(this.#dir, 'index.json'), 'utf8');
    try {
      const parsed = JSON.parse(text) as LayoutIndex;
      if (!Array.isArray(parsed.manifests)) throw new Error('manifests is not an array');
      return parsed;
    } catch (err) {
      throw new HostpullError('UPSTREAM_ERROR', `${join(this.#dir, 'index.json')} is not a valid OCI index`, { cause: err });
    }
  }

  async #updateIndex(mutate: (index: LayoutIndex) => void): Promise<void> {
    await this.#init();
    await this.#indexMutex.run(() =>
      withFileLock(join(this.#dir, 'index.json.lock'), async () => {
        const index = await this.#readIndex();
        mutate(index);
        const tmp = join(this.#dir, `.index.json.${process.pid}.${randomBytes(4).toString('hex')}`);
        await writeFile(tmp, JSON.stringify(index));
        await rename(tmp, join(this.#dir, 'index.json'));
      }),
    );
  }

  async getManifest(repo: string, reference: string): Promise<StoredManifest | null> {
    const index = await this.#readIndex();
    let entry: IndexEntry | undefined;
    if (isDigest(reference)) {
      entry = index.manifests.find((m) => m.digest === reference);
      if (!entry) {
        // A manifest blob not (or no longer) listed in index.json is still content-addressed. Any
        // digest can be asked for, also a multi-GB layer's: read nothing past the manifest limit.
        const bytes = await this.#readSmallBlob(reference);
        if (!bytes) return null;
        try {
          const parsed = parseManifest(bytes, undefined, `manifest ${reference}`);
          return { bytes, digest: reference, mediaType: parsed.mediaType };
        } catch {
          return null;
        }
      }
    } else {
      const name = `${repo}:${reference}`;
      entry = index.manifests.find((m) => m.annotations?.[REF_NAME] === name);
    }
    if (!entry) return null;
    const bytes = await this.#readSmallBlob(entry.digest);
    if (!bytes) return null;
    return { bytes, digest: entry.digest, mediaType: entry.mediaType };
  }

  /**
   * A manifest-sized blob, verified against its digest; null when it is missing or larger than
   * MAX_MANIFEST_BYTES (only its size is looked at then: a request for a large blob's digest
   * as a manifest costs one stat, not a read of the blob).
   */
  async #readSmallBlob(digest: Digest): Promise<Buffer | null> {
    let handle: FileHandle;
    try {
      handle = await open(this.#blobPath(digest), 'r');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      throw err;
    }
    try {
      const { size } = await handle.stat();
      if (size > MAX_MANIFEST_BYTES) return null;
      const bytes = Buffer.alloc(size);
      const { bytesRead } = await handle.read(bytes, 0, size, 0);
      if (bytesRead !== size || digestOf(bytes, digestAlgorithm(digest)) !== digest) {
        throw new HostpullError('UPSTREAM_ERROR', `${this.#blobPath(digest)} does not hash to ${digest}`);
      }
      return bytes;
    } finally {
      await handle.close();
    }
  }

  async blobSize(_repo: string, digest: Digest): Promise<number | null> {
    await this.#init();
    try {
      return (await stat(this.#blobPath(digest))).size;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      throw err;
    }
  }

  async getBlob(repo: string, digest: Digest, range?: ByteRange): Promise<BlobRead | null> {
    const size = await this.blobSize(repo, digest);
    if (size === null) return null;
    const start = range?.start ?? 0;
    const end = range?.end ?? size - 1;
    const stream = size === 0 ? Readable.from([]) : createReadStream(this.#blobPath(digest), { start, end, highWaterMark: BLOB_READ_BYTES });
    return { stream, size, start };
  }

  async putBlob(repo: string, digest: Digest, size: number, body: BlobBody): Promise<void> {
    if ((await this.blobSize(repo, digest)) !== null) return;
    const tmp = join(this.#dir, '.ingest', `${digestHex(digest).slice(0, 16)}.${randomBytes(4).toString('hex')}`);
    const meter = new HashingStream({ algorithm: digestAlgorithm(digest) });
    const source = Buffer.isBuffer(body) ? Readable.from([body]) : body();
    try {
      await pipeline(source, meter, createWriteStream(tmp));
      const got = meter.digest();
      if (got !== digest || meter.bytes !== size) {
        throw new HostpullError('DIGEST_INVALID', `blob pushed as ${digest} (${size} bytes) has digest ${got} (${meter.bytes} bytes)`);
      }
      await mkdir(join(this.#dir, 'blobs', digestAlgorithm(digest)), { recursive: true });
      // rename is atomic: a reader sees either no blob or the whole verified blob.
      await rename(tmp, this.#blobPath(digest));
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async putManifest(repo: string, tag: string | undefined, bytes: Buffer, mediaType: string): Promise<Digest> {
    const digest = digestOf(bytes);
    await this.putBlob(repo, digest, bytes.length, bytes);
    await this.#updateIndex((index) => {
      if (tag !== undefined) {
        const name = `${repo}:${tag}`;
        // The tag moves here; and the untagged entry of this manifest in this repository (pushed
        // first, e.g. so its referrers could be attached before the tag) is the tagged one now.
        index.manifests = index.manifests.filter(
          (m) => m.annotations?.[REF_NAME] !== name && !(m.digest === digest && m.annotations?.[REPOSITORY_ANNOTATION] === repo && m.annotations?.[REF_NAME] === undefined),
        );
        index.manifests.push({ mediaType, digest, size: bytes.length, annotations: { [REF_NAME]: name } });
      } else if (!index.manifests.some((m) => m.digest === digest)) {
        index.manifests.push({ mediaType, digest, size: bytes.length, annotations: { [REPOSITORY_ANNOTATION]: repo } });
      }
    });
    return digest;
  }

  async listTags(repo: string): Promise<string[] | null> {
    const index = await this.#readIndex();
    let known = false;
    const tags: string[] = [];
    for (const m of index.manifests) {
      const name = m.annotations?.[REF_NAME];
      if (name) {
        const colon = name.lastIndexOf(':');
        if (colon > 0 && name.slice(0, colon) === repo) {
          tags.push(name.slice(colon + 1));
          known = true;
        }
      } else if (m.annotations?.[REPOSITORY_ANNOTATION] === repo) {
        known = true;
      }
    }
    return known ? tags.sort() : null;
  }

  async close(): Promise<void> {}
}
