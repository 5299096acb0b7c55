import type { Readable } from 'node:stream';
import { describeError, HostpullError, isHostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { spanSha256, type TocSpan } from '../oci/index.js';
import { RegistryError, type RetryBudget } from '../registry/index.js';
import type { SpanCache } from './span-cache.js';

/** Where span bytes come from: a Range request for bytes [start, end] of the layer blob. */
export interface SpanSource {
  /** Human-readable origin for messages (`127.0.0.1:5000/hostpull@sha256:…`). */
  readonly where: string;
  /**
   * The retries of one span under the registry client's one retry policy (registry/retry.ts):
   * which failures are worth another attempt, the backoff, and how many attempts at most.
   */
  retryBudget(signal: AbortSignal): RetryBudget;
  /** Bytes [start, end]; the request's own retries (a refused connection, a 503) spend `retry`. */
  fetchRange(start: number, end: number, signal: AbortSignal, retry: RetryBudget): Promise<Readable>;
}

/** Who waits for a span: a reader blocked in read(2) first, then a learned prefetch, then the background pull. */
export type SpanPriority = 'read' | 'prefetch' | 'background';
const PRIORITIES: readonly SpanPriority[] = ['read', 'prefetch', 'background'];

export interface SpanFetcherOptions {
  /**
   * Bound on one attempt, from the request to the span's last byte: a registry that stalls is
   * given up on after this, and the source's retry budget decides whether another attempt
   * follows. Default 10 000 ms. A reader waits at most about attempts × attemptTimeoutMs plus
   * the backoff between them.
   */
  attemptTimeoutMs?: number;
  /**
   * Range requests in flight at once (all priorities). Default 8: a starting JVM's misses and the
   * learned prefetch are latency-bound round trips over one host's connection, not bandwidth.
   */
  concurrency?: number;
  /** Of those, at most this many for the background pull, so a reader always finds a free slot. Default 2. */
  backgroundConcurrency?: number;
  /**
   * Of those, at most this many for the learned prefetch. Default 2: its spans are needed in
   * list order, and on a link of limited bandwidth eight requests at once would each get an
   * eighth of it, the first span needed arriving with the eighth; two keep the link busy while
   * the spans come in about the order they are read.
   */
  prefetchConcurrency?: number;
  logger: Logger;
}

interface Pending {
  index: number;
  priority: SpanPriority;
  promise: Promise<Buffer>;
  resolve: (bytes: Buffer) => void;
  reject: (err: unknown) => void;
  /** checking: looking in the cache; queued: waiting for a request slot; started: being fetched. */
  state: 'checking' | 'queued' | 'started';
}

/**
 * Adjacent spans waiting at the same time are fetched by one Range request of at most this many
 * bytes, each span verified and handed over as soon as its last byte arrived: the learned prefetch
 * of mvn -v lists runs of up to 20 adjacent JDK spans, and the completion asks for all of them.
 */
const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
const REFUSED_FOR_MS = 30_000;
/**
 * Verified spans fetched ahead of their reads (a learned prefetch, the rest of a file fetched
 * whole) are kept in memory until they are inflated (see {@link SpanFetcher.release}), oldest
 * dropped first beyond this: the reads they were fetched for come after their cache write has
 * ended, and would otherwise open, read and hash each span again. A second node's `mvn -v`
 * fetches ~30 MB of them.
 */
const MAX_PREFETCHED_BYTES = 48 * 1024 * 1024;
/**
 * Verified spans fetched ahead of their reads wait with their cache write until this layer has no
 * request in flight (see #store in {@link SpanFetcher}), up to this many bytes; beyond it the
 * oldest is written at once, so a layer that never goes quiet holds no more than this for its disk.
 */
const MAX_UNWRITTEN_BYTES = 64 * 1024 * 1024;
/** Failures that are the registry's content, not its health: asking again gives the same answer. */
const CONTENT_FAILURES = new Set(['DIGEST_MISMATCH', 'BLOB_UNKNOWN', 'NAME_UNKNOWN']);

/**
 * Gets the compressed, verified bytes of a layer's spans: from the {@link SpanCache}, else by a
 * Range request checked against the TOC's size and sha256 before anything else sees it. One fetch
 * per span however many wait for it, adjacent spans waiting together in one request (at most
 * MAX_REQUEST_BYTES); at most `concurrency` requests at once, readers first.
 * Each attempt is bounded in time; whether and when another follows is the registry's retry
 * policy (a digest mismatch is the registry's content, not a hiccup: never retried); then the
 * span fails with LAZY_FETCH_FAILED. Nothing unverified is ever cached or returned.
 */
export class SpanFetcher {
  readonly #spans: readonly TocSpan[];
  readonly #source: SpanSource;
  readonly #cache: SpanCache;
  readonly #o: Required<SpanFetcherOptions>;
  readonly #pending = new Map<number, Pending>();
  /**
   * Verified spans whose cache write is in flight: a reader gets the bytes without waiting for
   * the disk; the completion waits for the write (it reads the spans from the cache).
   */
  readonly #writing = new Map<number, { bytes: Buffer; done: Promise<void> }>();
  /** Of those, the writes that wait for this layer's fetches to go quiet: each one's start, and its bytes. */
  readonly #unwritten = new Map<number, { write: () => void; skip: () => void; bytes: number }>();
  #unwrittenBytes = 0;
  /** The writes of #unwritten are being started one after another. */
  #writingUnwritten = false;
  /** Verified spans a prefetch brought in, oldest first, up to MAX_PREFETCHED_BYTES (see there). */
  readonly #prefetched = new Map<number, Buffer>();
  #prefetchedBytes = 0;
  /**
   * The spans asked for in the current synchronous turn (a read over several spans, a prefetch
   * list): requests start once all of their cache lookups are in, so the missing ones among them
   * can share requests however long the disk takes to answer each lookup.
   */
  #batch: { checking: number } | undefined;
  readonly #abort = new AbortController();
  /**
   * Spans whose bytes did not match the TOC, refused again without asking for REFUSED_FOR_MS:
   * the registry's content does not change between two reads of a file, and the kernel retries
   * a failed read in smaller pieces, which would otherwise fetch the same bad span each time.
   */
  readonly #refused = new Map<number, { err: HostpullError; until: number }>();
  #running = 0;
  #runningBackground = 0;
  #runningPrefetch = 0;
  #pumpSoon: NodeJS.Immediate | undefined;
  bytesFetched = 0;
  spansFetched = 0;

  constructor(spans: readonly TocSpan[], source: SpanSource, cache: SpanCache, options: SpanFetcherOptions) {
    this.#spans = spans;
    this.#source = source;
    this.#cache = cache;
    this.#o = {
      attemptTimeoutMs: options.attemptTimeoutMs ?? 10_000,
      concurrency: options.concurrency ?? 8,
      backgroundConcurrency: options.backgroundConcurrency ?? 2,
      prefetchConcurrency: options.prefetchConcurrency ?? 2,
      logger: options.logger,
    };
  }

  /** The verified compressed bytes of span `index`. */
  span(index: number, priority: SpanPriority = 'read'): Promise<Buffer> {
    const pending = this.#pending.get(index);
    if (pending) {
      if (pending.state !== 'started' && PRIORITIES.indexOf(priority) < PRIORITIES.indexOf(pending.priority)) pending.priority = priority;
      this.#pump();
      return pending.promise;
    }
    let resolve!: (bytes: Buffer) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<Buffer>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const p: Pending = { index, priority, promise, resolve, reject, state: 'checking' };
    this.#pending.set(index, p);
    const batch = this.#joinBatch();
    void this.#check(p).finally(() => {
      if (--batch.checking > 0) return;
      this.#pumpSoon ??= setImmediate(() => {
        this.#pumpSoon = undefined;
        this.#pump();
      });
    });
    return promise;
  }

  #joinBatch(): { checking: number } {
    let batch = this.#batch;
    if (!batch) {
      const b = { checking: 0 };
      this.#batch = batch = b;
      queueMicrotask(() => {
        if (this.#batch === b) this.#batch = undefined;
      });
    }
    batch.checking++;
    return batch;
  }

  /** Those of `indexes` that wait for a request go at read priority from now on (a reader waits for them). Asks for nothing else. */
  hurry(indexes: readonly number[]): void {
    for (const i of indexes) {
      const p = this.#pending.get(i);
      if (p && p.state !== 'started') p.priority = 'read';
    }
    this.#pump();
  }

  /** Span `index` is on its way or here: being fetched, queued, kept in memory, or cached. Asks nothing. */
  has(index: number): boolean {
    return this.#pending.has(index) || this.#writing.has(index) || this.#prefetched.has(index) || this.#cache.has(index);
  }

  /**
   * Span `index` is in memory in another form now (inflated): its compressed bytes need not be
   * kept for it. A later read of it that finds it gone from memory asks the cache.
   */
  release(index: number): void {
    const bytes = this.#prefetched.get(index);
    if (!bytes) return;
    this.#prefetched.delete(index);
    this.#prefetchedBytes -= bytes.length;
  }

  /** Resolves once these spans, fetched already, are in the cache (the completion reads them from there). */
  async stored(indexes: readonly number[]): Promise<void> {
    for (const i of indexes) this.#startWrite(i);
    await Promise.all(indexes.map((i) => this.#writing.get(i)?.done));
  }

  /** Stops every fetch; waiting readers get the reason (LAZY_CLOSED). */
  close(): void {
    this.#abort.abort(new HostpullError('LAZY_CLOSED', `lazy layer ${this.#source.where} was closed`));
    this.#prefetched.clear();
    this.#prefetchedBytes = 0;
    // Spans not on the disk yet stay off it: they are fetched again if a later start needs them.
    for (const w of this.#unwritten.values()) w.skip();
    this.#unwritten.clear();
    this.#unwrittenBytes = 0;
    for (const p of this.#pending.values()) if (p.state !== 'started') this.#settle(p, this.#abort.signal.reason);
  }

  #settle(p: Pending, result: Buffer | unknown): void {
    if (this.#pending.get(p.index) !== p) return;
    this.#pending.delete(p.index);
    if (Buffer.isBuffer(result)) p.resolve(result);
    else p.reject(result);
  }

  /** From the cache when it is there (checked again against the TOC), else queued for a request. */
  async #check(p: Pending): Promise<void> {
    try {
      const span = this.#spans[p.index];
      if (!span) throw new HostpullError('LAZY_FETCH_FAILED', `${this.#source.where}: no span ${p.index} (the layer has ${this.#spans.length})`);
      const here = this.#writing.get(p.index)?.bytes ?? this.#prefetched.get(p.index);
      if (here) return this.#settle(p, here);
      const cached = await this.#cache.get(p.index, span.sha256);
      if (cached) return this.#settle(p, cached);
      const refused = this.#refused.get(p.index);
      if (refused && refused.until > Date.now()) throw refused.err;
      this.#abort.signal.throwIfAborted();
      p.state = 'queued';
    } catch (err) {
      this.#settle(p, err);
    }
  }

  #pump(): void {
    while (this.#running < this.#o.concurrency) {
      let next: Pending | undefined;
      for (const p of this.#pending.values()) {
        if (p.state !== 'queued') continue;
        if (p.priority === 'background' && this.#runningBackground >= this.#o.backgroundConcurrency) continue;
        if (p.priority === 'prefetch' && this.#runningPrefetch >= this.#o.prefetchConcurrency) continue;
        if (!next || PRIORITIES.indexOf(p.priority) < PRIORITIES.indexOf(next.priority)) next = p;
      }
      if (!next) {
        if (this.#running === 0) this.#writeUnwritten();
        return;
      }
      const group = this.#adjacent(next);
      for (const g of group) g.state = 'started';
      const { priority } = next;
      this.#running++;
      if (priority === 'background') this.#runningBackground++;
      if (priority === 'prefetch') this.#runningPrefetch++;
      void this.#fetchGroup(group).finally(() => {
        this.#running--;
        if (priority === 'background') this.#runningBackground--;
        if (priority === 'prefetch') this.#runningPrefetch--;
        this.#pump();
      });
    }
  }

  /**
   * `p` and the queued spans of its priority next to it, up to MAX_REQUEST_BYTES, in order: a read's
   * request carries only spans that reads wait for, not a prefetch's that would come first or
   * hold its connection.
   */
  #adjacent(p: Pending): Pending[] {
    const queued = (i: number) => {
      const q = this.#pending.get(i);
      return q?.state === 'queued' && q.priority === p.priority ? q : undefined;
    };
    const group = [p];
    let bytes = this.#spans[p.index]!.cs;
    for (let i = p.index + 1, q = queued(i); q && bytes + this.#spans[i]!.cs <= MAX_REQUEST_BYTES; q = queued(++i)) {
      group.push(q);
      bytes += this.#spans[i]!.cs;
    }
    for (let i = p.index - 1, q = queued(i); q && bytes + this.#spans[i]!.cs <= MAX_REQUEST_BYTES; q = queued(--i)) {
      group.unshift(q);
      bytes += this.#spans[i]!.cs;
    }
    return group;
  }

  /** Fetches a run of adjacent spans under one retry budget, until each is handed over or has failed. */
  async #fetchGroup(group: Pending[]): Promise<void> {
    const retry = this.#source.retryBudget(this.#abort.signal);
    let left = group;
    let lastError: unknown;
    for (;;) {
      try {
        this.#abort.signal.throwIfAborted();
        await this.#fetchOnce(left, retry);
        return;
      } catch (err) {
        lastError = err;
        const before = left.length;
        left = left.filter((p) => this.#pending.get(p.index) === p);
        if (left.length === 0) return;
        if (left.length < before) retry.progressed();
        if (this.#abort.signal.aborted) break;
        try {
          await retry.failed(err);
        } catch (final) {
          lastError = final;
          break;
        }
        this.#o.logger.debug({ where: this.#source.where, spans: left.map((p) => p.index), retries: retry.retries, err: (err as Error).message }, 'span fetch failed; retrying');
      }
    }
    for (const p of left) this.#fail(p, lastError);
  }

  /** Settles a span with LAZY_FETCH_FAILED for `cause`; a content failure is remembered for a while. */
  #fail(p: Pending, cause: unknown): void {
    const span = this.#spans[p.index]!;
    const why = describeError(cause);
    const failure = new HostpullError('LAZY_FETCH_FAILED', `span ${p.index} (bytes ${span.c}-${span.c + span.cs - 1}) of ${this.#source.where}: ${why}`, {
      cause,
      hint: 'a read of the lazy layer got EIO; check that the registry is reachable and serves the blob unchanged, then retry',
      details: { span: p.index },
    });
    // A span that cannot get better (its bytes do not match, the blob is unknown) is not asked for again for a while.
    if (isHostpullError(cause) && CONTENT_FAILURES.has(cause.code)) this.#refused.set(p.index, { err: failure, until: Date.now() + REFUSED_FOR_MS });
    this.#settle(p, failure);
  }

  /** A span's bytes arrived: verified against the TOC, then handed over (and cached meanwhile), or failed. */
  #arrived(p: Pending, bytes: Buffer): void {
    const span = this.#spans[p.index]!;
    const sha = spanSha256(bytes);
    if (sha !== span.sha256) {
      const mismatch = new HostpullError('DIGEST_MISMATCH', `span ${p.index} of ${this.#source.where} has sha256 ${sha}, the table of contents says ${span.sha256}`, {
        hint: 'the registry serves different bytes than were published; the span is not used or cached',
      });
      return this.#fail(p, mismatch);
    }
    // Verified: the reader gets it now, the disk gets it meanwhile (a write on a busy disk held
    // every miss of a starting JVM), or once this layer's fetches are done for a span fetched
    // ahead of its reads. A failed write only means fetching it again later.
    this.#store(p.index, bytes, p.priority === 'prefetch');
    if (p.priority === 'prefetch') this.#keepPrefetched(p.index, bytes);
    this.bytesFetched += bytes.length;
    this.spansFetched++;
    this.#settle(p, bytes);
  }

  /**
   * Writes a verified span to the cache, now or (`later`) once this layer has no request in
   * flight. Why later: a second node's learned prefetch of `mvn -v` brings ~75 spans in the
   * first 0.3 s, while runc sets the container up over the lazy views. Each span's write was
   * four jobs on the libuv pool (open, write, close, rename) queued before the inflations the
   * reads wait for, and four turns of the event loop that answers runc's lookups: held back,
   * the first output came ~40 ms sooner (lab, alternated). Until written, the bytes are served
   * from memory (#writing), and {@link stored} writes whatever it is asked for at once.
   */
  #store(index: number, bytes: Buffer, later: boolean): void {
    const put = () =>
      this.#cache
        .put(index, bytes)
        .catch((err: unknown) => this.#o.logger.warn({ where: this.#source.where, span: index, err: (err as Error).message }, 'could not keep a verified span in the cache'));
    let done: Promise<void>;
    if (later) {
      done = new Promise<void>((resolve) => {
        this.#unwritten.set(index, { write: () => resolve(put()), skip: () => resolve(), bytes: bytes.length });
      });
      this.#unwrittenBytes += bytes.length;
      for (const i of this.#unwritten.keys()) {
        if (this.#unwrittenBytes <= MAX_UNWRITTEN_BYTES) break;
        this.#startWrite(i);
      }
    } else {
      done = put();
    }
    this.#writing.set(index, { bytes, done: done.finally(() => this.#writing.delete(index)) });
  }

  /** Starts span `index`'s cache write if it waits for the layer to go quiet. */
  #startWrite(index: number): void {
    const w = this.#unwritten.get(index);
    if (!w) return;
    this.#unwritten.delete(index);
    this.#unwrittenBytes -= w.bytes;
    w.write();
  }

  /**
   * The layer has no request in flight: its waiting writes go to the disk one after another,
   * so the pool keeps threads for inflations (a read that comes meanwhile still finds one).
   */
  #writeUnwritten(): void {
    if (this.#writingUnwritten || this.#unwritten.size === 0) return;
    this.#writingUnwritten = true;
    void (async () => {
      try {
        while (this.#unwritten.size > 0) {
          const index = this.#unwritten.keys().next().value!;
          this.#startWrite(index);
          await this.#writing.get(index)?.done;
        }
      } finally {
        this.#writingUnwritten = false;
      }
    })();
  }

  /** Keeps a prefetched span's verified bytes, dropping the oldest kept beyond MAX_PREFETCHED_BYTES. */
  #keepPrefetched(index: number, bytes: Buffer): void {
    this.#prefetched.set(index, bytes);
    this.#prefetchedBytes += bytes.length;
    for (const [i, b] of this.#prefetched) {
      if (this.#prefetchedBytes <= MAX_PREFETCHED_BYTES) break;
      this.#prefetched.delete(i);
      this.#prefetchedBytes -= b.length;
    }
  }

  /** One Range request for a run of adjacent spans; each is settled as soon as its last byte is in. */
  async #fetchOnce(group: readonly Pending[], retry: RetryBudget): Promise<void> {
    const first = this.#spans[group[0]!.index]!;
    const last = this.#spans[group[group.length - 1]!.index]!;
    const what = group.length === 1 ? `span ${group[0]!.index}` : `spans ${group[0]!.index}-${group[group.length - 1]!.index}`;
    const total = last.c + last.cs - first.c;
    const deadline = AbortSignal.timeout(this.#o.attemptTimeoutMs);
    const signal = AbortSignal.any([deadline, this.#abort.signal]);
    let k = 0;
    let buf = Buffer.allocUnsafe(first.cs);
    let fill = 0;
    let got = 0;
    try {
      const stream = await this.#source.fetchRange(first.c, last.c + last.cs - 1, signal, retry);
      const onAbort = () => stream.destroy(signal.reason as Error);
      // Closed (or out of time) while the answer's headers were on their way: an aborted signal
      // tells no new listener, and the spans would be handed over and cached after the close.
      if (signal.aborted) onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const chunk of stream) {
          const c = chunk as Buffer;
          if (got + c.length > total) {
            stream.destroy();
            throw new HostpullError('SIZE_MISMATCH', `${what} of ${this.#source.where}: more than the ${total} bytes asked for`);
          }
          got += c.length;
          for (let off = 0; off < c.length; ) {
            const span = this.#spans[group[k]!.index]!;
            const take = Math.min(span.cs - fill, c.length - off);
            c.copy(buf, fill, off, off + take);
            fill += take;
            off += take;
            if (fill === span.cs) {
              this.#arrived(group[k]!, buf);
              if (++k < group.length) buf = Buffer.allocUnsafe(this.#spans[group[k]!.index]!.cs);
              fill = 0;
            }
          }
        }
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    } catch (err) {
      if (deadline.aborted) {
        // Temporary: the retry policy may try again (a stall is a hiccup until the budget says otherwise).
        throw new RegistryError('LAZY_TIMEOUT', `${what} of ${this.#source.where}: no complete answer within ${this.#o.attemptTimeoutMs} ms (${got} of ${total} bytes)`, {
          cause: err,
          temporary: true,
        });
      }
      throw err;
    }
    if (got !== total) {
      // A cut: retryable under the registry's policy (actual < expected); the spans that arrived whole are kept.
      throw new HostpullError('SIZE_MISMATCH', `${what} of ${this.#source.where}: got ${got} of ${total} bytes`, { details: { actual: got, expected: total } });
    }
  }
}
