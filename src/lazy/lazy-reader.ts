import { HostpullError } from '../errors.js';
import { spansFor, type SeekableToc } from '../oci/index.js';
import { InflatingSpan } from './inflating-span.js';
import type { LazyNode } from './lazy-tree.js';
import { steppedInflater, type SteppedInflater } from './span-inflater.js';
import type { SpanFetcher, SpanPriority } from './span-fetcher.js';

/** Files whose read position is remembered (the one read longest ago is forgotten first). */
const MAX_CURSORS = 4096;
/** Default {@link LazyReaderOptions.aheadWindow} (1 MiB spans: 16 MiB held ahead at most). */
const AHEAD_WINDOW = 16;
/** Inflations ahead at once: the libuv pool has four threads, and a read's own inflation must find one. */
const AHEAD_CONCURRENCY = 2;
/** Default {@link LazyReaderOptions.wholeExecutableMax}. */
const WHOLE_EXECUTABLE_MAX = 16 * 1024 * 1024;
/** Default {@link LazyReaderOptions.wholeScatteredMax}. */
const WHOLE_SCATTERED_MAX = 16 * 1024 * 1024;
/** Different spans of one file read before the rest of it is fetched at once (see #follow). */
const SCATTERED_SPANS = 3;
/** Default {@link LazyReaderOptions.regionSpans}. */
const REGION_SPANS = 4;

export interface LazyReaderOptions {
  /**
   * The longest one read waits, whatever is queued before its spans: then LAZY_TIMEOUT (EIO to the
   * reader). The fetches go on and fill the cache for a later read. Default: no bound of its own.
   */
  readDeadlineMs?: number;
  /**
   * Inflated spans kept in memory. Default 64 MiB: sixty-four 1 MiB spans, enough for a program
   * reading a few files at once without inflating the same span again for each 128 KiB read.
   */
  inflatedCacheBytes?: number;
  /** Spans of a learned prefetch list inflated ahead of the furthest one read. Default 16. */
  aheadWindow?: number;
  /** Executable files up to this many bytes are fetched whole at their first read (see #follow). Default 16 MiB. */
  wholeExecutableMax?: number;
  /** Files up to this many bytes are fetched whole once reads have touched three of their spans (see #follow). Default 16 MiB. */
  wholeScatteredMax?: number;
  /**
   * A larger file read in three different spans has, from then on, each span a read misses
   * fetched with the others of its aligned block of this many spans (see #follow). Default 4;
   * 0 or 1 turns it off.
   */
  regionSpans?: number;
  /** How spans are inflated in steps (InflatingSpan). Default: the addon's ISA-L where it is built, else zlib at once. */
  inflater?: SteppedInflater;
}

/**
 * Reads file bytes of a lazy layer: the spans that hold them are fetched (verified) through the
 * {@link SpanFetcher}, inflated on the libuv pool with raw inflate (each span stands alone; a read
 * waits only until its own bytes are out, see {@link InflatingSpan}), and kept in a small LRU.
 * Also records the order in which spans were first needed, which is what the next start of the
 * same image prefetches.
 */
export class LazyReader {
  readonly #toc: SeekableToc;
  readonly #fetcher: SpanFetcher;
  readonly #max: number;
  readonly #deadline: number | undefined;
  readonly #window: number;
  readonly #wholeExecutableMax: number;
  readonly #wholeScatteredMax: number;
  readonly #regionSpans: number;
  readonly #inflater: SteppedInflater;
  /** Spans in memory or being inflated (a read that needs only their first bytes takes those), least recently used first. */
  readonly #inflated = new Map<number, InflatingSpan>();
  /** The settled entries of #inflated: their bytes. */
  readonly #settled = new Map<number, Buffer>();
  /** Told of each span settled in memory (its bytes) and each dropped (null): a FUSE session's native reads. */
  readonly #watchers = new Set<(index: number, bytes: Buffer | null) => void>();
  #inflatedBytes = 0;
  readonly #firstReads: number[] = [];
  readonly #seen = new Set<number>();
  /**
   * Per file: where its previous read ended and in which span, to recognise a sequential reader;
   * the different spans its reads touched, while it may yet be fetched whole or by blocks (null
   * otherwise); and whether the spans its reads miss are fetched by blocks.
   */
  readonly #cursors = new Map<number, { end: number; span: number; spans: Set<number> | null; blocks: boolean }>();
  /**
   * The learned prefetch list being inflated ahead: its order, each span's place in it, the next
   * to inflate, one past the furthest place a read reached, and the inflations running.
   */
  #ahead: { list: number[]; position: Map<number, number>; next: number; frontier: number; inflating: number } | undefined;

  constructor(toc: SeekableToc, fetcher: SpanFetcher, options: LazyReaderOptions = {}) {
    this.#toc = toc;
    this.#fetcher = fetcher;
    this.#max = options.inflatedCacheBytes ?? 64 * 1024 * 1024;
    this.#deadline = options.readDeadlineMs;
    this.#window = options.aheadWindow ?? AHEAD_WINDOW;
    this.#wholeExecutableMax = options.wholeExecutableMax ?? WHOLE_EXECUTABLE_MAX;
    this.#wholeScatteredMax = options.wholeScatteredMax ?? WHOLE_SCATTERED_MAX;
    this.#regionSpans = options.regionSpans ?? REGION_SPANS;
    this.#inflater = options.inflater ?? steppedInflater();
  }

  /** Spans in the order reads first needed them. */
  readOrder(): number[] {
    return [...this.#firstReads];
  }

  /** Reads served so far (cached or not): how busy the layer's readers are. */
  reads = 0;
  /** Spans inflated ahead of their reads (the learned prefetch list). */
  inflatedAhead = 0;

  /** Up to `length` bytes of file `node` from `offset` (fewer at the end of the file); the FUSE handler answers EISDIR for anything else. */
  async read(node: LazyNode, offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(Math.max(0, Math.min(length, node.size - offset)));
    return out.subarray(0, await this.readInto(node, offset, out));
  }

  /**
   * Like {@link read}, into `target` (the FUSE request's own buffer: one copy of the bytes
   * fewer per read): fills up to `target.length` bytes and says how many.
   */
  async readInto(node: LazyNode, offset: number, target: Buffer): Promise<number> {
    this.reads++;
    const n = Math.max(0, Math.min(target.length, node.size - offset));
    if (n === 0) return 0;
    const start = node.dataOffset + offset;
    const { first, last } = spansFor(this.#toc.spans, start, n);
    this.#follow(node, offset, n, first, last);
    let fill = 0;
    for (const piece of await this.#pieces(first, last, start, start + n, node.path)) fill += piece.copy(target, fill);
    return fill;
  }

  /**
   * A read of `length` bytes of file `node` at `offset` that was answered elsewhere (a FUSE
   * session's native thread, from spans this reader lent it): counted, and followed as one of
   * its own reads would be (the learned read order, read-ahead, the spans' recent use).
   */
  noteRead(node: LazyNode, offset: number, length: number): void {
    this.reads++;
    const n = Math.max(0, Math.min(length, node.size - offset));
    if (n === 0) return;
    const { first, last } = spansFor(this.#toc.spans, node.dataOffset + offset, n);
    this.#follow(node, offset, n, first, last);
    for (let i = first; i <= last; i++) {
      this.#used(i);
      this.#recent(i);
    }
  }

  /**
   * Remembers where this read of `node` ended. A read that starts where the file's previous read
   * ended and moves on into the next span means the reader walks the file in order (a tar, a
   * copy, a scan): the file's next two spans are fetched ahead. Reads of other files in between,
   * and random access (a JVM in its jimage, whose page faults read around the faulting page), do
   * not trigger it: mvn -v fetched 4.5 MB it never read when any read that moved into the span
   * after the last read's counted. Fetched as this reader's own reads are (not capped like the
   * learned prefetch): it will ask for them next. Not past the file's end: the JVM's walk to the
   * end of `classes.jsa` fetched two spans of `classes_nocoops.jsa` that nothing read (0.2 MB).
   *
   * The first read of an executable file (any x bit, up to wholeExecutableMax) fetches and
   * inflates all of it at once: it is being exec'd or loaded, and a program's start faults in
   * pages from all over its text and data, one span at a time otherwise (`go version` read the
   * 12 spans of its 10.7 MB binary one after the other, each a round trip and an inflation).
   * `mvn -v` fetches no more for it: the JDK's executables are small and read whole anyway, and
   * its shared libraries are mode 644.
   *
   * Any file up to wholeScatteredMax is fetched whole too, once reads have touched
   * SCATTERED_SPANS different spans of it: a library the loader maps, a class-data archive the
   * JVM maps, faulted in a page here and there. A first node's `mvn -v` read all 16 spans of
   * `classes.jsa` that way, each read a round trip and an inflation after the one before. The
   * bound leaves out files read in part: the JVM's `lib/modules` (129 MB), of which it reads
   * some fifteen spans, and `libjvm.so` (24 MB), whose five spans it does not read would have
   * put mvn -v over a fifth of its composite's bytes before its output (20.4%, against 19.2%).
   *
   * Such a larger file read in SCATTERED_SPANS different spans is being faulted in by regions
   * instead: from then on, a read that misses a span fetches the other spans of its aligned
   * block of regionSpans too. A first node's `mvn -v` touches `libjvm.so`'s spans 236-255 in a
   * jumbled order (236, 255, 254, 237…), and `lib/modules` its spans 96-107 (98, 97, 96, 107,
   * 105…), each read waiting for its span's round trip and inflation after the one before:
   * by blocks of 4, 19 of the JDK layer's 51 misses become hits, for 0.8 MB fetched that no
   * read asked for (its read order, replayed).
   */
  #follow(node: LazyNode, offset: number, n: number, first: number, last: number): void {
    const cursor = this.#cursors.get(node.ino);
    const whole = node.size <= this.#wholeScatteredMax;
    // The file's spans, looked up only by the reads that fetch ahead (this runs for every read).
    const ofFile = () => spansFor(this.#toc.spans, node.dataOffset, node.size);
    if (cursor && cursor.end === offset && last === cursor.span + 1) {
      const lastOfFile = ofFile().last;
      this.prefetch([last + 1, last + 2].filter((i) => i <= lastOfFile), 'read').catch(() => undefined);
    }
    let spans = cursor ? cursor.spans : whole || this.#regionSpans > 1 ? new Set<number>() : null;
    let blocks = cursor?.blocks ?? false;
    if (!cursor && node.mode & 0o111 && node.size <= this.#wholeExecutableMax) {
      this.#fetchWhole(node, 'read');
      spans = null;
    }
    if (spans) {
      for (let i = first; i <= last; i++) spans.add(i);
      if (spans.size >= SCATTERED_SPANS) {
        if (whole) this.#fetchWhole(node, 'prefetch');
        else blocks = true;
        spans = null;
      }
    }
    if (blocks) {
      const file = ofFile();
      this.#fetchBlocks(first, last, file.first, file.last);
    }
    // Most recently read last, so the file forgotten first is the one read longest ago.
    this.#cursors.delete(node.ino);
    if (this.#cursors.size >= MAX_CURSORS) this.#cursors.delete(this.#cursors.keys().next().value!);
    this.#cursors.set(node.ino, { end: offset + n, span: last, spans, blocks });
  }

  /**
   * For each of spans first..last that this read misses (neither in memory nor fetched nor on its
   * way): the other spans of its aligned block of regionSpans, within the file's spans
   * firstOfFile..lastOfFile, fetched and inflated as {@link #fetchWhole} does, behind the read's own.
   */
  #fetchBlocks(first: number, last: number, firstOfFile: number, lastOfFile: number): void {
    const here = (i: number) => this.#inflated.has(i) || this.#fetcher.has(i);
    const size = this.#regionSpans;
    const around = new Set<number>();
    for (let i = first; i <= last; i++) {
      if (here(i)) continue;
      const block = i - (i % size);
      for (let k = Math.max(firstOfFile, block); k <= Math.min(lastOfFile, block + size - 1); k++) if ((k < first || k > last) && !here(k)) around.add(k);
    }
    if (around.size > 0) this.#fetchSpans([...around], 'prefetch');
  }

  /**
   * Fetches all of file `node` now, and inflates it in order into the LRU, AHEAD_CONCURRENCY
   * spans at a time (the pool keeps threads for the reads of other files: a binary's dynamic
   * loader and libc come next). The spans join the read order only when a read uses them.
   * At `prefetch` priority, the spans that reads ask for meanwhile go first, each on its own
   * request: fetched whole at read priority, the 24 MB of `libjvm.so` held the read that asked
   * for it, and a read of libstdc++ beside it, ~50 ms.
   */
  #fetchWhole(node: LazyNode, priority: SpanPriority): void {
    this.#fetchSpans(this.spansOf(node), priority);
  }

  /** Fetches `spans` now and inflates them in this order into the LRU, AHEAD_CONCURRENCY at a time (see {@link #fetchWhole}). */
  #fetchSpans(spans: readonly number[], priority: SpanPriority): void {
    this.prefetch(spans, priority).catch(() => undefined);
    let next = 0;
    const inflateNext = async (): Promise<void> => {
      while (next < spans.length) await this.#inflate(spans[next++]!, priority).catch(() => undefined); // a read of it gets the error
    };
    for (let k = 0; k < AHEAD_CONCURRENCY; k++) void inflateNext();
  }

  /** The spans' starts in the layer's tar, with one past the last (for a FUSE session's native reads). */
  spanStarts(): Float64Array {
    const spans = this.#toc.spans;
    const starts = new Float64Array(spans.length + 1);
    spans.forEach((s, i) => (starts[i] = s.u));
    const last = spans[spans.length - 1];
    starts[spans.length] = last ? last.u + last.us : 0;
    return starts;
  }

  /**
   * Tells `listener` of every inflated span in memory now and from now on (its verified bytes),
   * and of every one dropped from memory (null), until the returned function is called.
   */
  watchSpans(listener: (index: number, bytes: Buffer | null) => void): () => void {
    this.#watchers.add(listener);
    for (const [index, bytes] of this.#settled) listener(index, bytes);
    return () => this.#watchers.delete(listener);
  }

  /** The spans that hold the bytes of file `node` (none for an empty file). */
  spansOf(node: LazyNode): number[] {
    if (node.size === 0) return [];
    const { first, last } = spansFor(this.#toc.spans, node.dataOffset, node.size);
    return Array.from({ length: last - first + 1 }, (_, k) => first + k);
  }

  /**
   * All of file `node`'s bytes, as pieces of its inflated spans in order (no copy), fetched and
   * verified as a read's would be, and bounded the same way.
   */
  async contents(node: LazyNode): Promise<Buffer[]> {
    this.reads++;
    if (node.size === 0) return [];
    const { first, last } = spansFor(this.#toc.spans, node.dataOffset, node.size);
    return this.#pieces(first, last, node.dataOffset, node.dataOffset + node.size, node.path);
  }

  /**
   * All of file `node` counts as read from now on, without a byte of it asked for here: its
   * spans join the read order as {@link contents} would have them (a copy made ahead of the
   * file's first open is opened, and the kernel reads the copy).
   */
  countAsRead(node: LazyNode): void {
    this.reads++;
    for (const i of this.spansOf(node)) this.#used(i);
  }

  /**
   * Like {@link contents}, ahead of any read of the file: its spans are fetched at `prefetch`
   * priority (reads that come meanwhile go first), inflated in order AHEAD_CONCURRENCY at a time
   * (the pool keeps threads for reads), and do not join the read order.
   */
  async contentsAhead(node: LazyNode): Promise<Buffer[]> {
    if (node.size === 0) return [];
    const spans = this.spansOf(node);
    const parts: Buffer[] = [];
    let next = 0;
    const inflateNext = async (): Promise<void> => {
      for (let k = next++; k < spans.length; k = next++) parts[k] = await this.#inflate(spans[k]!, 'prefetch');
    };
    await this.#bounded(Promise.all(Array.from({ length: AHEAD_CONCURRENCY }, inflateNext)), node.path);
    return this.#within(parts, spans[0]!, node.dataOffset, node.dataOffset + node.size);
  }

  /**
   * Tar bytes [start, end) as pieces of the inflated spans first..last that hold them (no copy),
   * fetched and verified as reads of `path`, within the read deadline.
   */
  async #pieces(first: number, last: number, start: number, end: number, path: string): Promise<Buffer[]> {
    // The last span only up to the read's end: the read need not wait for the rest of it to be inflated.
    const need = end - this.#toc.spans[last]!.u;
    const parts = await this.#bounded(Promise.all(Array.from({ length: last - first + 1 }, (_, k) => this.#span(first + k, 'read', first + k === last ? need : undefined))), path);
    return this.#within(parts, first, start, end);
  }

  /** Tar bytes [start, end) of `parts`, the inflated spans from `first` on that hold them (no copy). */
  #within(parts: readonly Buffer[], first: number, start: number, end: number): Buffer[] {
    return parts.map((part, k) => {
      const span = this.#toc.spans[first + k]!;
      return part.subarray(Math.max(start - span.u, 0), Math.min(span.us, end - span.u));
    });
  }

  #bounded<T>(work: Promise<T>, path: string): Promise<T> {
    const ms = this.#deadline;
    if (ms === undefined) return work;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HostpullError('LAZY_TIMEOUT', `${path}: no verified data within ${ms} ms (the registry is slow, stalled or unreachable)`)), ms);
    });
    work.catch(() => undefined); // settles after the deadline is reported: not unhandled
    return Promise.race([work, late]).finally(() => clearTimeout(timer));
  }

  /** Fetches spans into the cache (without inflating them) ahead of reads. */
  async prefetch(spans: readonly number[], priority: SpanPriority = 'prefetch'): Promise<void> {
    await Promise.all(spans.filter((i) => i >= 0 && i < this.#toc.spans.length).map((i) => this.#fetcher.span(i, priority)));
  }

  /**
   * The learned prefetch: fetches all of `spans` now (as {@link prefetch}), and inflates them in
   * this order (the order the image's first start read them) a window ahead of the reads. A
   * starting JVM reads its spans one after the other from one thread, and inflating a 1 MiB span
   * when its first read comes (4-5 ms) was most of what it waited for; ahead, it is done on the
   * other core meanwhile. The window bounds the memory held for reads that may not come.
   */
  async prefetchInOrder(spans: readonly number[]): Promise<void> {
    const list = spans.filter((i) => i >= 0 && i < this.#toc.spans.length);
    this.#ahead = { list, position: new Map(list.map((s, k) => [s, k])), next: 0, frontier: 0, inflating: 0 };
    this.#inflateAhead();
    await this.prefetch(list);
  }

  /** Starts inflating the next spans of the learned list, up to AHEAD_WINDOW past the furthest one read. */
  #inflateAhead(): void {
    const a = this.#ahead;
    if (!a) return;
    while (a.next < a.list.length && a.next < a.frontier + this.#window && a.inflating < AHEAD_CONCURRENCY) {
      const index = a.list[a.next++]!;
      if (this.#inflated.has(index)) continue;
      a.inflating++;
      this.inflatedAhead++;
      this.#inflate(index, 'prefetch')
        .catch(() => undefined) // a read of it gets the error
        .finally(() => {
          a.inflating--;
          this.#inflateAhead();
        });
    }
  }

  /** Span `index` for a read: all of it, or at least its first `need` bytes. */
  #span(index: number, priority: SpanPriority, need?: number): Promise<Buffer> {
    this.#used(index);
    return this.#inflate(index, priority, need);
  }

  /** Span `index` is read: kept in the learned order at its first read, and the inflation ahead follows the reads. */
  #used(index: number): void {
    if (!this.#seen.has(index)) {
      this.#seen.add(index);
      this.#firstReads.push(index);
    }
    const a = this.#ahead;
    const at = a?.position.get(index);
    if (a && at !== undefined && at + 1 > a.frontier) {
      a.frontier = at + 1;
      this.#inflateAhead();
    }
  }

  /**
   * The inflated span, from memory or fetched (verified) and inflated, kept in the LRU; with
   * `need`, at least its first `need` bytes, as soon as they are out (see {@link InflatingSpan}).
   */
  #inflate(index: number, priority: SpanPriority, need?: number): Promise<Buffer> {
    const span = this.#recent(index) ?? this.#startInflating(index, priority);
    return need === undefined ? span.whole : span.prefix(need);
  }

  /** Span `index` fetched (verified) and inflated into the LRU, its bytes lent to the watchers once all are out. */
  #startInflating(index: number, priority: SpanPriority): InflatingSpan {
    const span = new InflatingSpan(this.#fetcher.span(index, priority), this.#toc, index, this.#inflater);
    span.whole.then(
      (b) => {
        if (this.#inflated.get(index) !== span) return;
        this.#fetcher.release(index);
        this.#settled.set(index, b);
        this.#inflatedBytes += b.length;
        for (const w of this.#watchers) w(index, b);
        this.#evict();
      },
      () => {
        if (this.#inflated.get(index) === span) this.#inflated.delete(index);
      },
    );
    this.#inflated.set(index, span);
    return span;
  }

  /** Span `index` from memory or on its way there, if it is, made the most recently used (the LRU's order is the map's). */
  #recent(index: number): InflatingSpan | undefined {
    const hit = this.#inflated.get(index);
    if (hit) {
      this.#inflated.delete(index);
      this.#inflated.set(index, hit);
    }
    return hit;
  }

  /** Drops least recently used settled spans until the cache fits (the newest always stays). */
  #evict(): void {
    for (const i of this.#inflated.keys()) {
      if (this.#inflatedBytes <= this.#max || this.#settled.size <= 1) return;
      const bytes = this.#settled.get(i);
      if (bytes === undefined) continue;
      this.#inflated.delete(i);
      this.#settled.delete(i);
      this.#inflatedBytes -= bytes.length;
      for (const w of this.#watchers) w(i, null);
    }
  }
}
