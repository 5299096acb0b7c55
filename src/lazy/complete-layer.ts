import { rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { HostpullError } from '../errors.js';
import { createDigester, digestFromHash, inflateSpan, type Digest } from '../oci/index.js';
import type { SeekableToc, TocEntry } from '../oci/index.js';
import type { ContentStore } from '../store/index.js';
import type { LayerRow } from '../store/index.js';
import { applyOptions, layerCommit } from '../pull/index.js';
import { applyLayer } from '../unpack/index.js';
import { LAYER_LIMIT_DEFAULTS, normaliseEntryPath, TarReader, type PackageClaim, type TarEntryHeader, type TarEntrySink } from '../archive/index.js';
import type { SpanCache } from './span-cache.js';
import { spanInflater } from './span-inflater.js';


export interface CompleteLayerJob {
  blobDigest: Digest;
  diffId: Digest;
  toc: SeekableToc;
  /** The package claim the unpack holds it to, as a whole pull would (none for a base layer). */
  claim: PackageClaim | undefined;
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
 * order, with its type, mode, owner, size, mtime, target, device numbers, extended attributes
 * and data offset. The lazy view was built from the TOC, so a TOC that lies about the tar makes
 * the layer unfit, even if every byte matched. The first disagreement is kept, not thrown: the
 * unpack reading the same bytes gives its own verdict on the archive first (a hostile tar behind
 * an honest-looking TOC is refused as an unpack refuses it), and the mismatch is thrown only for
 * an archive the unpack accepted, before the layer is committed.
 */
class TocCheck implements TarEntrySink {
  readonly #entries: readonly TocEntry[];
  readonly #where: string;
  #next = 0;
  mismatch: HostpullError | undefined;

  constructor(entries: readonly TocEntry[], where: string) {
    this.#entries = entries;
    this.#where = where;
  }

  entry(h: TarEntryHeader): void {
    if (this.mismatch) return;
    const e = this.#entries[this.#next++];
    const what = e ? disagreement(e, h) : 'the TOC has fewer entries';
    if (what !== undefined) {
      this.mismatch = new HostpullError('TOC_MISMATCH', `${this.#where}: the table of contents disagrees with the tar at entry ${this.#next - 1} (${JSON.stringify(h.name)}): ${what}`, {
        hint: 'the package was published with a wrong table of contents; publish it again. Its layer is pulled whole meanwhile',
      });
    }
  }

  data(): void {}
  entryEnd(): void {}

  end(): void {
    if (!this.mismatch && this.#next !== this.#entries.length) {
      this.mismatch = new HostpullError('TOC_MISMATCH', `${this.#where}: the table of contents lists ${this.#entries.length} entries, the tar has ${this.#next}`);
    }
  }
}

/** What a TOC entry says differently from the tar's header, or undefined when they agree. */
function disagreement(e: TocEntry, h: TarEntryHeader): string | undefined {
  const path = normaliseEntryPath(h.name, LAYER_LIMIT_DEFAULTS.maxDepth);
  if (typeof path !== 'string' || path !== normaliseEntryPath(e.path, LAYER_LIMIT_DEFAULTS.maxDepth)) return `path ${JSON.stringify(e.path)}`;
  if (h.type !== e.type || h.mode !== e.mode || h.uid !== e.uid || h.gid !== e.gid || h.size !== e.size) return 'type, mode, owner or size';
  // The view shows the TOC's mtime (lazy-tree.ts), the unpacked layer the tar's. Compared exactly:
  // the TOC holds the number this reader gave when publish read the tar it wrote (seconds, a
  // PAX fraction included), and JSON keeps a double as it was, so an honest TOC is equal.
  if (h.mtime !== e.mtime) return `mtime ${e.mtime}, the tar has ${h.mtime}`;
  if ((e.type === 'symlink' || e.type === 'hardlink') && h.linkname !== e.linkname) return `link target ${JSON.stringify(e.linkname)}`;
  if ((e.type === 'char' || e.type === 'block') && (h.devmajor !== e.devmajor || h.devminor !== e.devminor)) return 'device numbers';
  const xattrs = Object.entries(e.xattrs ?? {});
  if (xattrs.length !== h.xattrs.size || xattrs.some(([k, v]) => h.xattrs.get(k)?.toString('base64') !== v)) return 'extended attributes';
  if (e.type === 'file' && e.dataOffset !== h.offset + 512) return `data offset ${e.dataOffset}, the tar has it at ${h.offset + 512}`;
  return undefined;
}

/**
 * The tar of a lazy layer rebuilt from its verified spans, in order: each span inflated alone on
 * the pool (a few at once), the compressed bytes hashed as they go so the whole blob's digest is
 * checked before the stream ends, and the tar's entries checked against the TOC.
 */
async function* tarFromSpans(job: CompleteLayerJob, deps: CompleteLayerDeps, where: string, check: TocCheck): AsyncGenerator<Buffer> {
  const { toc } = job;
  const count = toc.spans.length;
  const blobHash = createDigester();
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
    return { compressed, tar: await inflateSpan(toc, i, compressed, spanInflater()) };
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
      reader.write(tar);
      if (i === count - 1) {
        // The blob is checked before the last bytes go out, so the unpack never completes on a lie.
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
 * pull does (same applier, options, claim and bounds, same commit). Held under the same lease
 * as a whole pull of the blob, so a concurrent `hostpull pull` waits for it instead of fetching
 * the layer again.
 */
export async function completeLayer(job: CompleteLayerJob, deps: CompleteLayerDeps): Promise<LayerRow> {
  const { store } = deps;
  const where = `lazy layer ${job.blobDigest}`;
  return store.leases.forBlob(job.blobDigest, {
    done: () => store.layers.get(job.diffId),
    ...(deps.signal ? { signal: deps.signal } : {}),
    work: async () => {
      const staging = await store.layers.stage();
      const check = new TocCheck(job.toc.entries, where);
      try {
        const tar = Readable.from(tarFromSpans(job, deps, where, check), { objectMode: false });
        // The tar is handed over already inflated (spans inflate on the pool, a few at once).
        const result = await applyLayer(tar, applyOptions(store, { diffId: job.diffId, size: job.toc.size, claim: job.claim }, 'none', staging, deps.signal));
        if (check.mismatch) throw check.mismatch;
        return await store.layers.commit(staging, layerCommit({ digest: job.blobDigest, diffId: job.diffId }, result));
      } catch (err) {
        await rm(staging, { recursive: true, force: true });
        throw err;
      }
    },
  });
}
