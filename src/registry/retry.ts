import { errorText, isHostpullError, isTransientNetworkFailure } from '../errors.js';
import type { Logger } from '../log.js';
import { RegistryError, TEMPORARY_STATUSES } from './errors.js';

/**
 * The one retry policy of every conversation with a registry: which failures are worth another
 * attempt ({@link isRetryable}), how long to wait before it (exponential backoff with full
 * jitter, or the server's `Retry-After`), and when to stop (a budget in time). The transport's
 * request retries and the Range resumes of a blob download share one {@link RetryBudget}, so a
 * registry that is down is waited for once, not once per layer of retries.
 */

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

/**
 * How long a registry may keep failing before we give up: a restart or a short outage (seconds)
 * is waited out, one that is down for good fails the pull after this.
 */
const DEFAULT_RETRY_BUDGET_MS = 60_000;

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

/** Statuses worth retrying for an idempotent request (the registry says: not now). */
export const RETRYABLE_STATUSES: ReadonlySet<number> = TEMPORARY_STATUSES;

/**
 * Whether another attempt can help: a connection that failed, broke or went silent; a status
 * that means "not now" (RegistryError.temporary); a blob body that ended before its declared
 * size (a cut: the bytes received are good, the rest can be asked for with Range). Anything
 * else — a digest mismatch, a 404, a full disk, an abort — fails the same way again.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof RegistryError) return err.temporary;
  if (isHostpullError(err)) {
    if (err.code !== 'SIZE_MISMATCH') return false;
    const { actual, expected } = (err.details ?? {}) as { actual?: unknown; expected?: unknown };
    return typeof actual === 'number' && typeof expected === 'number' && actual < expected;
  }
  return isTransientNetworkFailure(err);
}

/** A retry about to wait: what failed, and where the operation stands against its budget. */
export interface RetryNotice {
  registry: string;
  /** The operation, when its caller named it (`blob sha256:…`); the error may not say. */
  what: string | undefined;
  error: unknown;
  /** The wait before the next attempt. */
  delayMs: number;
  /** 1 for the first retry since the operation last made progress (or began). */
  inARow: number;
  /** How long the registry has been failing this operation, and how long it may. */
  failingForMs: number;
  budgetMs: number;
}

export interface RetryPolicyOptions extends Partial<BackoffOptions> {
  /** How long retries go on after a failure with no progress since. Default {@link DEFAULT_RETRY_BUDGET_MS}. */
  budgetMs?: number;
  /** At most this many retries in a row without progress. Default: as many as the budget allows. */
  maxRetries?: number;
  /** Told of every retry before its wait (the registry client logs them). Default: nobody. */
  onRetry?: (notice: RetryNotice) => void;
  /** Clock, dice and waiting, for tests. */
  now?: () => number;
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** One operation's side of {@link RetryPolicy.begin}. */
export interface RetryBudgetOptions {
  signal?: AbortSignal | undefined;
  /**
   * Names the operation in its notices and in the error that ends it (`blob sha256:…`): a
   * download's body that breaks fails with an error that does not say whose it was.
   */
  what?: string | undefined;
  /** Told of this operation's retries, after the policy's listener (a pull turns them into events). */
  onRetry?: ((notice: RetryNotice) => void) | undefined;
}

/** The retry settings of a registry client; {@link RetryPolicy.begin} starts counting for one operation. */
export class RetryPolicy {
  readonly backoff: BackoffOptions;
  readonly budgetMs: number;
  readonly maxRetries: number;
  readonly now: () => number;
  readonly random: () => number;
  readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly onRetry: ((notice: RetryNotice) => void) | undefined;

  constructor(options: RetryPolicyOptions = {}) {
    this.backoff = {
      baseDelayMs: options.baseDelayMs ?? DEFAULT_BACKOFF.baseDelayMs,
      maxDelayMs: options.maxDelayMs ?? DEFAULT_BACKOFF.maxDelayMs,
      retryAfterCapMs: options.retryAfterCapMs ?? DEFAULT_BACKOFF.retryAfterCapMs,
    };
    this.budgetMs = options.budgetMs ?? DEFAULT_RETRY_BUDGET_MS;
    this.maxRetries = options.maxRetries ?? Number.POSITIVE_INFINITY;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? sleep;
    this.onRetry = options.onRetry;
  }

  /** The retries of one operation against `registry` (a request, or a blob download with its resumes). */
  begin(registry: string, options: RetryBudgetOptions = {}): RetryBudget {
    return new RetryBudget(this, registry, options);
  }
}

/**
 * The retries of one operation. The budget runs from the first failure after the last progress:
 * a download that a flaky registry cuts every few megabytes keeps going as long as bytes keep
 * arriving, and one that gets nothing for `budgetMs` fails.
 */
export class RetryBudget {
  readonly registry: string;
  readonly what: string | undefined;
  readonly #policy: RetryPolicy;
  readonly #signal: AbortSignal | undefined;
  readonly #onRetry: ((notice: RetryNotice) => void) | undefined;
  /** Retries since the last progress (drives the backoff exponent and maxRetries). */
  #inARow = 0;
  #retries = 0;
  #failingSince: number | undefined;
  #spent = false;

  constructor(policy: RetryPolicy, registry: string, options: RetryBudgetOptions = {}) {
    this.#policy = policy;
    this.registry = registry;
    this.what = options.what;
    this.#signal = options.signal;
    this.#onRetry = options.onRetry;
  }

  /** Retries made so far, over the whole operation. */
  get retries(): number {
    return this.#retries;
  }

  /** Bytes arrived since the last failure: the next failure starts a fresh budget and backoff. */
  progressed(): void {
    this.#inARow = 0;
    this.#failingSince = undefined;
  }

  /**
   * After a failed attempt: resolves once the backoff (or the server's `Retry-After`, capped) has
   * passed and another attempt may start. Throws instead when it may not: `err` itself when
   * retrying cannot help (or the operation was aborted), and a REGISTRY_UNAVAILABLE naming the
   * registry and the budget when the budget is spent. No attempt starts after the budget: a delay
   * that would pass it is shortened to end with it.
   */
  async failed(err: unknown, retryAfter?: string | string[]): Promise<void> {
    if (this.#spent || this.#signal?.aborted || !isRetryable(err)) throw err;
    const policy = this.#policy;
    const now = policy.now();
    this.#failingSince ??= now;
    const left = policy.budgetMs - (now - this.#failingSince);
    if (this.#inARow >= policy.maxRetries) {
      this.#spent = true;
      throw err;
    }
    if (left <= 0) {
      this.#spent = true;
      throw this.#exhausted(err, now);
    }
    const delay = Math.min(left, retryDelay(this.#inARow, retryAfter, policy.backoff, now, policy.random));
    this.#inARow++;
    this.#retries++;
    const notice: RetryNotice = { registry: this.registry, what: this.what, error: err, delayMs: delay, inARow: this.#inARow, failingForMs: now - this.#failingSince, budgetMs: policy.budgetMs };
    policy.onRetry?.(notice);
    this.#onRetry?.(notice);
    await policy.sleep(delay, this.#signal);
  }

  #exhausted(err: unknown, now: number): RegistryError {
    const budget = formatMs(this.#policy.budgetMs);
    const why = errorText(err);
    return new RegistryError(
      isHostpullError(err) && err.code === 'TOO_MANY_REQUESTS' ? err.code : 'REGISTRY_UNAVAILABLE',
      `registry ${this.registry} kept failing${this.what ? ` on ${this.what}` : ''} for ${formatMs(now - this.#failingSince!)} (${this.#retries} retries), past the retry budget of ${budget}: ${why}`,
      {
        cause: err,
        temporary: false,
        ...(err instanceof RegistryError && err.status !== undefined ? { status: err.status } : {}),
        hint: `check that registry ${this.registry} is running and reachable; a longer retry budget (--registry-retry-budget, now ${budget}) waits longer for it`,
        details: { registry: this.registry, retryBudgetMs: this.#policy.budgetMs, retries: this.#retries },
      },
    );
  }
}

/**
 * The registry client's retry log: the first retry of a streak (since the operation began or last
 * made progress) at warn, saying how long the registry will be waited for, the others at debug.
 * Without it a pull against a registry that is down says nothing until the budget (60 s by
 * default) is spent; podman and the kubelet report such retries too.
 */
export function logRetries(logger: Logger): (notice: RetryNotice) => void {
  return (n) => {
    const fields = { registry: n.registry, err: errorText(n.error), retryInMs: n.delayMs, inARow: n.inARow };
    if (n.inARow === 1) logger.warn(fields, retryMessage({ registry: n.registry, what: n.what, retryForMs: retryLeftMs(n) }));
    else logger.debug(fields, `registry ${n.registry} failed again${n.what ? ` on ${n.what}` : ''}; retrying`);
  };
}

/** How much longer the operation of a notice will be retried. */
export function retryLeftMs(n: RetryNotice): number {
  return Math.max(0, n.budgetMs - n.failingForMs);
}

/**
 * The sentence for a registry that started failing an operation: the registry client's warning,
 * and (with the error) the line a daemon's client prints for the daemon's retry event.
 */
export function retryMessage(r: { registry: string; what?: string | undefined; error?: string; retryForMs: number }): string {
  return `registry ${r.registry} failed${r.what ? ` on ${r.what}` : ''}${r.error ? ` (${r.error})` : ''}; retrying for up to ${formatMs(r.retryForMs)} (--registry-retry-budget)`;
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
}

/** Resolves after `ms`, or rejects with the signal's reason when aborted. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
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
