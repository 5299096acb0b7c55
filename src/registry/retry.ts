/**
 * Retry timing: exponential backoff with full jitter (delay drawn uniformly from
 * [0, min(max, base·2^attempt)], the AWS "full jitter" scheme: spreads clients that failed
 * together), overridden by a server's `Retry-After` when it sends one.
 */
export interface BackoffOptions {
  /** Base delay of the first retry. */
  baseDelayMs: number;
  /** Upper bound of a computed (not server-requested) delay. */
  maxDelayMs: number;
  /** Upper bound of a `Retry-After` we honour: a server asking for an hour is not waited for. */
  retryAfterCapMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseDelayMs: 200, maxDelayMs: 10_000, retryAfterCapMs: 60_000 };

/** Full-jitter delay before retry number `attempt` (0 for the first retry). */
export function backoffDelay(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/**
 * `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Returns ms to wait (≥ 0), or
 * undefined when absent or unparsable.
 */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const date = Date.parse(s);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** The delay before the next attempt: the server's `Retry-After` (capped) if given, else backoff. */
export function retryDelay(
  attempt: number,
  retryAfter: string | string[] | undefined,
  opts: BackoffOptions,
  now: number = Date.now(),
  random: () => number = Math.random,
): number {
  const requested = parseRetryAfter(retryAfter, now);
  if (requested !== undefined) return Math.min(requested, opts.retryAfterCapMs);
  return backoffDelay(attempt, opts, random);
}

/** Statuses worth retrying for an idempotent request. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

const RETRYABLE_ERROR_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** Whether a thrown error is a connection-level failure (undici wraps some in `cause`). */
export function isRetryableNetworkError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE_ERROR_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** Resolves after `ms`, or rejects with the signal's reason when aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
