import { describe, expect, it } from 'vitest';
import { backoffDelay, isRetryableNetworkError, parseRetryAfter, retryDelay } from '../../../src/registry/index.js';

const opts = { baseDelayMs: 100, maxDelayMs: 1000, retryAfterCapMs: 5000 };

describe('backoff', () => {
  it('grows exponentially up to the cap, with full jitter', () => {
    expect(backoffDelay(0, opts, () => 0.999999)).toBe(99);
    expect(backoffDelay(2, opts, () => 0.999999)).toBe(399);
    expect(backoffDelay(10, opts, () => 0.999999)).toBe(999);
    expect(backoffDelay(3, opts, () => 0)).toBe(0);
    expect(backoffDelay(1, opts, () => 0.5)).toBe(100);
  });
});

describe('Retry-After', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('parses seconds and HTTP dates', () => {
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter(['0'], now)).toBe(0);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it('overrides backoff, capped', () => {
    expect(retryDelay(0, '2', opts, now, () => 0)).toBe(2000);
    expect(retryDelay(0, '3600', opts, now, () => 0)).toBe(5000);
    expect(retryDelay(2, undefined, opts, now, () => 0.5)).toBe(200);
  });
});

describe('retryable network errors', () => {
  it('recognises codes, also in undici causes', () => {
    expect(isRetryableNetworkError(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isRetryableNetworkError(new Error('fetch failed', { cause: Object.assign(new Error('s'), { code: 'UND_ERR_SOCKET' }) }))).toBe(true);
    expect(isRetryableNetworkError(Object.assign(new Error('x'), { code: 'ERR_INVALID_URL' }))).toBe(false);
  });
});
