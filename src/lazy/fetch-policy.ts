import { DEFAULT_BACKOFF, type RegistryClientOptions } from '../registry/index.js';
import type { FetchPolicy } from './helper-protocol.js';

/**
 * The longest a lazy read waits before EIO under a fetch policy: every attempt to its bound, and
 * the longest full-jitter backoff of the registry's retry policy between them (200 ms, 400 ms…).
 * A read is held to it even when its spans queue behind others (LazyReader), and the FUSE
 * operation timeout is set above it, so the kernel never gives up on a read we still serve.
 */
export function readDeadlineMs(p: FetchPolicy): number {
  let backoff = 0;
  for (let i = 0; i < p.attempts - 1; i++) backoff += Math.min(DEFAULT_BACKOFF.maxDelayMs, DEFAULT_BACKOFF.baseDelayMs * 2 ** i);
  return p.attempts * p.attemptTimeoutMs + backoff + 500;
}

/**
 * The registry client of the FUSE helper: the one retry policy (registry/retry.ts) with at most
 * `attempts` attempts per span and a budget no longer than a read may wait, and transport
 * timeouts no longer than one attempt.
 */
export function spanClientOptions(p: FetchPolicy): Pick<RegistryClientOptions, 'retries' | 'retryBudgetMs' | 'headersTimeoutMs' | 'bodyTimeoutMs'> {
  return { retries: p.attempts - 1, retryBudgetMs: readDeadlineMs(p), headersTimeoutMs: p.attemptTimeoutMs, bodyTimeoutMs: p.attemptTimeoutMs };
}
