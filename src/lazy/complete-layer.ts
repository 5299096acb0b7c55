import { rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { constants as zc, inflateRaw } from 'node:zlib';
import { HostpullError } from '../errors.js';
import { createDigester, digestFromHash, type Digest } from '../oci/digest.js';
import type { SeekableToc, TocEntry } from '../oci/seekable-toc.js';
import type { ContentStore } from '../store/content-store.js';
import type { LayerRow } from '../store/layers.js';
import { applyLayer } from '../unpack/apply-layer.js';
import { normaliseEntryPath, TarReader, type TarEntryHeader, type TarEntrySink } from '../archive/index.js';
import type { SpanCache } from './span-cache.js';

const inflateRawAsync = promisify(inflateRaw);

export interface CompleteLayerJob {
  blobDigest: Digest;
  diffId: Digest;
  toc: SeekableToc;
}

export interface CompleteLayerDeps {
  store: ContentStore;
  cache: SpanCache;
  /** Makes sure these spans are verified in the cache (the FUSE helper fetches them, at background priority). */
  ensureSpans: (indexes: number[]) => Promise<void>;
  signal?: AbortSignal;
}

/** Spans asked for at once: enough to keep the helper's four requests busy while we unpack. */
const WINDOW = 8;
/** Spans inflated at once on the libuv pool. */
const INFLATE_AHEAD = 3;

/**
 * Checks, with the tar reader an unpack uses, that the TOC describes this tar: every entry in
 * order, with its type, mode, owner, size, target and data offset. The lazy view was built from
 * the TOC, so a TOC that lies about the tar makes the layer unfit, even if every byte matched.
 */
class TocCheck implements TarEntrySink {
  readonly #entries: readonly TocEntry[];
  readonly #where: string;
  #next = 0;

  constructor(entries: readonly TocEntry[], where: string) {
    this.#entries = entries;
    this.#where = where;
  }

  entry(h: TarEntryHeader): void {
    const e = this.#entries[this.#next++];
    const path = normaliseEntryPath(h.name, 4096);
    const mismatch = (what: string) =>
      new HostpullError('TOC_MISMATCH', `${this.#where}: the table of contents disagrees with the tar at entry ${this.#next - 1} (${JSON.stringify(h.name)}): ${what}`, {
        hint: 'the package was published with a wrong table of contents; publish it again. Its layer is pulled whole meanwhile',
      });
    if (!e) throw mismatch('the TOC has fewer entries');
    if (typeof path !== 'string' || path !== normaliseEntryPath(e.path, 4096)) throw mismatch(`path ${JSON.stringify(e.path)}`);
    if (h.type !== e.type || h.mode !== e.mode || h.uid !== e.uid || h.gid !== e.gid || h.size !== e.size) throw mismatch('type, mode, owner or size');
    if ((e.type === 'symlink' || e.type === 'hardlink') && h.linkname !== e.linkname) throw mismatch(`link target ${JSON.stringify(e.linkname)}`);
    if (e.type === 'file' && e.dataOffset !== h.offset + 512) throw mismatch(`data offset ${e.dataOffset}, the tar has it at ${h.offset + 512}`);
  }

  data(): void {}
  entryEnd(): void {}

  end(): void {
    if (this.#next !== this.#entries.length) {
      throw new HostpullError('TOC_MISMATCH', `${this.#where}: the table of contents lists ${this.#entries.length} entries, the tar has ${this.#next}`);
    }
  }
}

/**
 * The tar of a lazy layer rebuilt from its verified spans, in order: each span inflated alone on
 * the pool (a few at once), the compressed bytes hashed as they go so the whole blob's digest is
 * checked before the stream ends, and the tar's entries checked against the TOC.
 */
async function* tarFromSpans(job: CompleteLayerJob, deps: CompleteLayerDeps, where: string): AsyncGenerator<Buffer> {
  const { toc } = job;
  const count = toc.spans.length;
  const blobHash = createDigester();
  const check = new TocCheck(toc.entries, where);
  const reader = new TarReader(check, { where });
  // Windows of spans asked of the helper; the next one is asked as soon as one is needed.
  const windows: Array<Promise<void>> = [];
  const windowOf = (j: number): Promise<void> | undefined => {
    const w = Math.floor(j / WINDOW);
    if (w * WINDOW >= count) return undefined;
    if (!windows[w]) {
      windows[w] = deps.ensureSpans(Array.from({ length: Math.min(WINDOW, count - w * WINDOW) }, (_, k) => w * WINDOW + k));
      windows[w].catch(() => undefined); // awaited by the spans that need it
    }
    return windows[w];
  };
  const load = async (i: number): Promise<{ compressed: Buffer; tar: Buffer }> => {
    await windowOf(i);
    windowOf(i + WINDOW);
    const s = toc.spans[i]!;
    let compressed = await deps.cache.get(i, s.sha256);
    if (!compressed) {
      // Removed or damaged since the helper fetched it: ask once more.
      await deps.ensureSpans([i]);
      compressed = await deps.cache.get(i, s.sha256);
      if (!compressed) throw new HostpullError('LAZY_FETCH_FAILED', `${where}: span ${i} is not in the cache after fetching it`);
    }
    const from = Math.max(s.c, toc.gzip.headerSize) - s.c;
    const to = Math.min(s.c + s.cs, toc.size - toc.gzip.trailerSize) - s.c;
    const tar = await inflateRawAsync(compressed.subarray(from, to), { finishFlush: zc.Z_SYNC_FLUSH, chunkSize: Math.max(s.us, 64) + 64 });
    return { compressed, tar };
  };
  const loading: Array<Promise<{ compressed: Buffer; tar: Buffer }>> = [];
  const settleAll = () => Promise.allSettled(loading);
  try {
    for (let i = 0; i < count; i++) {
      deps.signal?.throwIfAborted();
      while (loading.length < INFLATE_AHEAD && i + loading.length < count) {
        const p = load(i + loading.length);
        p.catch(() => undefined); // awaited in order below
        loading.push(p);
      }
      const { compressed, tar } = await loading.shift()!;
      // Hashed here, in span order, whatever order the loads finished in.
      blobHash.update(compressed);
      if (tar.length !== toc.spans[i]!.us) throw new HostpullError('TOC_MISMATCH', `${where}: span ${i} inflates to ${tar.length} bytes, the TOC says ${toc.spans[i]!.us}`);
      reader.write(tar);
      if (i === count - 1) {
        // Everything is checked before the last bytes go out, so the unpack never completes on a lie.
        const digest = digestFromHash(blobHash, 'sha256');
        if (digest !== job.blobDigest) {
          throw new HostpullError('DIGEST_MISMATCH', `${where}: the spans make a blob with digest ${digest}, the manifest says ${job.blobDigest}`);
        }
        reader.end();
        check.end();
      }
      yield tar;
    }
  } finally {
    await settleAll();
  }
}

/**
 * The background pull of a lazy layer: every span fetched (or taken from the cache), the blob's
 * digest, the TOC and the diffID verified, the tar unpacked into layers/<id> exactly as a whole
 * pull does (same applier, same commit). Held under the same lease as a whole pull of the blob,
 * so a concurrent `hostpull pull` waits for it instead of fetching the layer again.
 */
export async function completeLayer(job: CompleteLayerJob, deps: CompleteLayerDeps): Promise<LayerRow> {
  const { store } = deps;
  const where = `lazy layer ${job.blobDigest}`;
  return store.leases.run(`blob:${job.blobDigest}`, {
    done: () => store.layers.get(job.diffId),
    ...(deps.signal ? { signal: deps.signal } : {}),
    work: async () => {
      const staging = await store.layers.stage();
      try {
        const result = await applyLayer(Readable.from(tarFromSpans(job, deps, where), { objectMode: false }), {
          compression: 'none',
          target: staging,
          expectedDiffId: job.diffId,
          ...(deps.signal ? { signal: deps.signal } : {}),
        });
        return await store.layers.commit(staging, {
          diffId: job.diffId,
          blobDigest: job.blobDigest,
          unpackedSize: result.uncompressedSize,
          entries: result.entries,
          ownedPaths: result.ownedPaths,
          footprint: result.footprint,
          treeChecksum: result.treeChecksum,
        });
      } catch (err) {
        await rm(staging, { recursive: true, force: true });
        throw err;
      }
    },
  });
}
