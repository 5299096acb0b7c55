import { readFile } from 'node:fs/promises';
import type { Logger } from '../log.js';
import type { Digest } from '../oci/index.js';
import type { SeekableToc } from '../oci/index.js';
import { createFuseHandlers, type FuseHandlers } from './fuse-handlers.js';
import { readDeadlineMs } from './fetch-policy.js';
import type { FetchPolicy, LayerStats } from './helper-protocol.js';
import { LazyReader, type LazyReaderOptions } from './lazy-reader.js';
import { LazyTree, type LazyTreeOptions, parseLayerToc } from './lazy-tree.js';
import { LocalCopies } from './local-copies.js';
import { SpanCache } from './span-cache.js';
import { SpanFetcher, type SpanFetcherOptions, type SpanSource } from './span-fetcher.js';

export interface LazyLayerOptions {
  /** Names the layer in logs and errors. */
  where: string;
  /** The claim and bounds the layer is held to: the tree is built through the unpack's entry checker under them. */
  tree: Omit<LazyTreeOptions, 'where'>;
  source: SpanSource;
  cacheDir: string;
  /** Where complete copies of files are written for FUSE passthrough (local-copies.ts); without it, none are. */
  copiesDir?: string;
  /** Attempts and their bound (the source's retry budget enforces the attempts), and the fetcher's concurrency. */
  fetch: FetchPolicy & Pick<SpanFetcherOptions, 'concurrency' | 'backgroundConcurrency'>;
  /** Which files are fetched whole rather than a span at a time (LazyReader's defaults otherwise). */
  wholeFiles?: Pick<LazyReaderOptions, 'wholeExecutableMax' | 'wholeScatteredMax' | 'regionSpans'>;
  logger: Logger;
}

/**
 * One layer seen lazily: its tree (from the TOC), the verified span fetcher and cache, the reader
 * and the FUSE handlers over them. Independent of FUSE itself, so it is tested without /dev/fuse.
 */
export class LazyLayer {
  readonly toc: SeekableToc;
  readonly tree: LazyTree;
  readonly fetcher: SpanFetcher;
  readonly reader: LazyReader;
  readonly handlers: FuseHandlers;
  readonly copies: LocalCopies | undefined;
  #readErrors = 0;
  #prefetching = false;

  constructor(toc: SeekableToc, options: LazyLayerOptions) {
    this.toc = toc;
    this.tree = LazyTree.fromToc(toc, { ...options.tree, where: options.where });
    this.fetcher = new SpanFetcher(toc.spans, options.source, new SpanCache(options.cacheDir, { soleWriter: true }), { ...options.fetch, logger: options.logger });
    // A read is bounded as one span's fetch is, even when its spans wait behind others for a
    // connection: a stalled registry gives EIO in that time.
    this.reader = new LazyReader(toc, this.fetcher, { ...options.wholeFiles, readDeadlineMs: readDeadlineMs(options.fetch) });
    this.copies = options.copiesDir === undefined ? undefined : new LocalCopies(options.copiesDir, this.reader, this.fetcher);
    this.handlers = createFuseHandlers(this.tree, this.reader, {
      logger: options.logger,
      where: options.where,
      onReadError: () => this.#readErrors++,
      ...(this.copies ? { copies: this.copies } : {}),
    });
  }

  /**
   * Reads the TOC blob from a file, checks it is the blob `tocDigest` names and that it describes
   * `layer` (as its manifest gives it), and builds the layer.
   */
  static async fromFile(tocFile: string, tocDigest: Digest, layer: { digest: Digest; diffId: Digest; size: number }, options: LazyLayerOptions): Promise<LazyLayer> {
    return new LazyLayer(parseLayerToc(await readFile(tocFile), tocDigest, layer, options.where), options);
  }

  /** A learned prefetch was started ({@link prefetchInOrder}). */
  get prefetching(): boolean {
    return this.#prefetching;
  }

  /**
   * The learned prefetch: the spans this image's first start read, fetched in that order (see
   * LazyReader.prefetchInOrder), and the files they cover copied for passthrough ahead of their
   * first open (LocalCopies.ahead). A later list (the same one sent again after the mount, or
   * another image's over this layer) only fetches the spans that are neither here nor on their way.
   */
  prefetchInOrder(spans: readonly number[]): Promise<void> {
    if (this.#prefetching) return this.reader.prefetch(spans.filter((i) => !this.fetcher.has(i)));
    this.#prefetching = true;
    const fetched = this.reader.prefetchInOrder(spans);
    this.copies?.ahead(this.tree.files(), spans);
    return fetched;
  }

  stats(): LayerStats {
    return { readOrder: this.reader.readOrder(), reads: this.reader.reads, bytesFetched: this.fetcher.bytesFetched, spansFetched: this.fetcher.spansFetched, readErrors: this.#readErrors, filesPassedThrough: this.copies?.copied ?? 0 };
  }

  /** Stops fetching and removes the local copies (files the kernel still reads stay readable until closed). */
  async close(): Promise<void> {
    this.fetcher.close();
    await this.copies?.clear();
  }
}
