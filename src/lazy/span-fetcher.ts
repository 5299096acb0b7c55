import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { HostpullError, isHostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import type { TocSpan } from '../oci/seekable-toc.js';
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
  logger: Logger;
  /** Told each fetched (not cached) span, after it was verified and stored. */
  onFetched?: (index: number, bytes: number) => void;
}

interface Pending {
  index: number;
  priority: SpanPriority;
  promise: Promise<Buffer>;
  start: () => void;
  started: boolean;
}

const REFUSED_FOR_MS = 30_000;
/** Failures that are the registry's content, not its health: asking again gives the same answer. */
const CONTENT_FAILURES = new Set(['DIGEST_MISMATCH', 'BLOB_UNKNOWN', 'NAME_UNKNOWN']);

/**
 * Gets the compressed, verified bytes of a layer's spans: from the {@link SpanCache}, else by a
 * Range request checked against the TOC's size and sha256 before anything else sees it. One fetch
 * per span however many wait for it; at most `concurrency` requests at once, readers first.
 * Each attempt is bounded in time; whether and when another follows is the registry's retry
 * policy (a digest mismatch is the registry's content, not a hiccup: never retried); then the
 * span fails with LAZY_FETCH_FAILED. Nothing unverified is ever cached or returned.
 */
export class SpanFetcher {
  readonly #spans: readonly TocSpan[];
  readonly #source: SpanSource;
  readonly #cache: SpanCache;
  readonly #o: Required<Omit<SpanFetcherOptions, 'onFetched'>> & Pick<SpanFetcherOptions, 'onFetched'>;
  readonly #pending = new Map<number, Pending>();
  /** Cache writes in flight: a reader does not wait for them, the completion and a later load of the same span do. */
  readonly #writing = new Map<number, Promise<void>>();
  readonly #abort = new AbortController();
  /**
   * Spans whose bytes did not match the TOC, refused again without asking for REFUSED_FOR_MS:
   * the registry's content does not change between two reads of a file, and the kernel retries
   * a failed read in smaller pieces, which would otherwise fetch the same bad span each time.
   */
  readonly #refused = new Map<number, { err: HostpullError; until: number }>();
  #running = 0;
  #runningBackground = 0;
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
      logger: options.logger,
      onFetched: options.onFetched,
    };
  }

  get spanCount(): number {
    return this.#spans.length;
  }

  /** The verified compressed bytes of span `index`. */
  span(index: number, priority: SpanPriority = 'read'): Promise<Buffer> {
    const pending = this.#pending.get(index);
    if (pending) {
      if (!pending.started && PRIORITIES.indexOf(priority) < PRIORITIES.indexOf(pending.priority)) pending.priority = priority;
      this.#pump();
      return pending.promise;
    }
    let start!: () => void;
    const gate = new Promise<void>((resolve) => (start = resolve));
    const p: Pending = { index, priority, promise: undefined as unknown as Promise<Buffer>, start, started: false };
    p.promise = gate.then(() => this.#load(index)).finally(() => {
      this.#pending.delete(index);
      this.#running--;
      if (p.priority === 'background') this.#runningBackground--;
      this.#pump();
    });
    this.#pending.set(index, p);
    this.#pump();
    return p.promise;
  }

  /** Resolves once these spans, fetched already, are in the cache (the completion reads them from there). */
  async stored(indexes: readonly number[]): Promise<void> {
    await Promise.all(indexes.map((i) => this.#writing.get(i)));
  }

  /** Stops every fetch; waiting readers get LAZY_FETCH_FAILED. */
  close(): void {
    this.#abort.abort(new HostpullError('LAZY_CLOSED', `lazy layer ${this.#source.where} was closed`));
    for (const p of this.#pending.values()) {
      if (!p.started) {
        p.started = true;
        this.#running++;
        if (p.priority === 'background') this.#runningBackground++;
        p.start();
      }
    }
  }

  #pump(): void {
    while (this.#running < this.#o.concurrency) {
      let next: Pending | undefined;
      for (const p of this.#pending.values()) {
        if (p.started) continue;
        if (p.priority === 'background' && this.#runningBackground >= this.#o.backgroundConcurrency) continue;
        if (!next || PRIORITIES.indexOf(p.priority) < PRIORITIES.indexOf(next.priority)) next = p;
      }
      if (!next) return;
      next.started = true;
      this.#running++;
      if (next.priority === 'background') this.#runningBackground++;
      next.start();
    }
  }

  async #load(index: number): Promise<Buffer> {
    const span = this.#spans[index];
    if (!span) throw new HostpullError('LAZY_FETCH_FAILED', `${this.#source.where}: no span ${index} (the layer has ${this.#spans.length})`);
    await this.#writing.get(index);
    const cached = await this.#cache.get(index, span.sha256);
    if (cached) return cached;
    const refused = this.#refused.get(index);
    if (refused && refused.until > Date.now()) throw refused.err;
    const retry = this.#source.retryBudget(this.#abort.signal);
    let lastError: unknown;
    for (;;) {
      this.#abort.signal.throwIfAborted();
      try {
        const bytes = await this.#fetchOnce(index, span, retry);
        // Verified: the reader gets it now, the disk gets it meanwhile (a write on a busy disk
        // held every miss of a starting JVM). A failed write only means fetching it again later.
        const write = this.#cache
          .put(index, bytes)
          .catch((err: unknown) => this.#o.logger.warn({ where: this.#source.where, span: index, err: (err as Error).message }, 'could not keep a verified span in the cache'))
          .finally(() => this.#writing.delete(index));
        this.#writing.set(index, write);
        this.bytesFetched += bytes.length;
        this.spansFetched++;
        this.#o.onFetched?.(index, bytes.length);
        return bytes;
      } catch (err) {
        lastError = err;
        if (this.#abort.signal.aborted) break;
        try {
          await retry.failed(err);
        } catch (final) {
          lastError = final;
          break;
        }
        this.#o.logger.debug({ where: this.#source.where, span: index, retries: retry.retries, err: (err as Error).message }, 'span fetch failed; retrying');
      }
    }
    const why = `${isHostpullError(lastError) ? `${lastError.code}: ` : ''}${lastError instanceof Error ? lastError.message : String(lastError)}`;
    const failure = new HostpullError('LAZY_FETCH_FAILED', `span ${index} (bytes ${span.c}-${span.c + span.cs - 1}) of ${this.#source.where}: ${why}`, {
      cause: lastError,
      hint: 'a read of the lazy layer got EIO; check that the registry is reachable and serves the blob unchanged, then retry',
      details: { span: index },
    });
    // A span that cannot get better (its bytes do not match, the blob is unknown) is not asked for again for a while.
    if (isHostpullError(lastError) && CONTENT_FAILURES.has(lastError.code)) {
      this.#refused.set(index, { err: failure, until: Date.now() + REFUSED_FOR_MS });
    }
    throw failure;
  }

  async #fetchOnce(index: number, span: TocSpan, retry: RetryBudget): Promise<Buffer> {
    const deadline = AbortSignal.timeout(this.#o.attemptTimeoutMs);
    const signal = AbortSignal.any([deadline, this.#abort.signal]);
    const buf = Buffer.allocUnsafe(span.cs);
    let fill = 0;
    try {
      const stream = await this.#source.fetchRange(span.c, span.c + span.cs - 1, signal, retry);
      const onAbort = () => stream.destroy(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const chunk of stream) {
          const c = chunk as Buffer;
          if (fill + c.length > span.cs) {
            stream.destroy();
            throw new HostpullError('SIZE_MISMATCH', `span ${index} of ${this.#source.where}: more than the ${span.cs} bytes asked for`);
          }
          c.copy(buf, fill);
          fill += c.length;
        }
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    } catch (err) {
      if (deadline.aborted) {
        // Temporary: the retry policy may try again (a stall is a hiccup until the budget says otherwise).
        throw new RegistryError('LAZY_TIMEOUT', `span ${index} of ${this.#source.where}: no complete answer within ${this.#o.attemptTimeoutMs} ms (${fill} of ${span.cs} bytes)`, {
          cause: err,
          temporary: true,
        });
      }
      throw err;
    }
    if (fill !== span.cs) {
      // A cut: retryable under the registry's policy (actual < expected).
      throw new HostpullError('SIZE_MISMATCH', `span ${index} of ${this.#source.where}: got ${fill} of ${span.cs} bytes`, { details: { actual: fill, expected: span.cs } });
    }
    const sha = createHash('sha256').update(buf).digest('hex');
    if (sha !== span.sha256) {
      throw new HostpullError('DIGEST_MISMATCH', `span ${index} of ${this.#source.where} has sha256 ${sha}, the table of contents says ${span.sha256}`, {
        hint: 'the registry serves different bytes than were published; the span is not used or cached',
      });
    }
    return buf;
  }
}
