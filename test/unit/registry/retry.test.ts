import { describe, expect, it } from 'vitest';
import { HostpullError, isHostpullError } from '../../../src/errors.js';
import { isTransientNetworkFailure as isRetryableNetworkError } from '../../../src/errors.js';
import { isRetryable, RegistryError } from '../../../src/registry/index.js';
import { backoffDelay, logRetries, parseRetryAfter, retryDelay, RetryPolicy, type RetryNotice } from '../../../src/registry/retry.js';
import type { Logger } from '../../../src/log.js';

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

describe('isRetryable: the one answer for requests and resumes', () => {
  it('retries what can pass, not what fails the same way again', () => {
    const coded = (code: string) => Object.assign(new Error(code), { code });
    for (const code of ['ECONNRESET', 'ECONNREFUSED', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET']) {
      expect(isRetryable(coded(code)), code).toBe(true);
    }
    for (const code of ['ENOSPC', 'UND_ERR_ABORTED', 'ABORT_ERR', 'EACCES']) expect(isRetryable(coded(code)), code).toBe(false);
    expect(isRetryable(new RegistryError('REGISTRY_UNAVAILABLE', 'x', { status: 503, temporary: true }))).toBe(true);
    expect(isRetryable(new RegistryError('BLOB_UNKNOWN', 'x', { status: 404 }))).toBe(false);
    // A body that ended short is resumed; one that ran long or hashed wrong is not.
    expect(isRetryable(new HostpullError('SIZE_MISMATCH', 'short', { details: { expected: 10, actual: 4 } }))).toBe(true);
    expect(isRetryable(new HostpullError('SIZE_MISMATCH', 'long', { details: { expected: 10 } }))).toBe(false);
    expect(isRetryable(new HostpullError('DIGEST_MISMATCH', 'bad'))).toBe(false);
  });
});

/** A policy on a fake clock: every wait is recorded and advances the clock by that much. */
function fakePolicy(opts: { budgetMs: number; maxRetries?: number; onRetry?: (n: RetryNotice) => void }) {
  let now = 0;
  const waits: number[] = [];
  const policy = new RetryPolicy({
    baseDelayMs: 100,
    maxDelayMs: 1000,
    retryAfterCapMs: 5000,
    random: () => 0.999999,
    now: () => now,
    sleep: async (ms) => {
      waits.push(ms);
      now += ms;
    },
    ...opts,
  });
  const reset = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
  return {
    policy,
    waits,
    advance: (ms: number) => (now += ms),
    fail: (budget: ReturnType<RetryPolicy['begin']>, err: unknown = reset, retryAfter?: string) => budget.failed(err, retryAfter),
  };
}

describe('RetryBudget', () => {
  it('backs off exponentially, then fails naming the registry and the budget', async () => {
    const f = fakePolicy({ budgetMs: 1000 });
    const budget = f.policy.begin('reg.example:5000');
    await f.fail(budget);
    await f.fail(budget);
    await f.fail(budget);
    // 100·2^n with the dice at the top.
    expect(f.waits).toEqual([99, 199, 399]);
    // Past the budget: one retry shortened to end with it (1000 - 697), then the budget error.
    await f.fail(budget);
    expect(f.waits[3]).toBe(303);
    const err = await budget.failed(Object.assign(new Error('reset'), { code: 'ECONNRESET' })).catch((e: unknown) => e);
    expect(isHostpullError(err, 'REGISTRY_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toBe('registry reg.example:5000 kept failing for 1.0s (4 retries), past the retry budget of 1.0s: reset');
    expect((err as HostpullError).hint).toMatch(/--registry-retry-budget/);
    expect((err as RegistryError).temporary).toBe(false);
    // Spent is spent: the next layer of retries does not start over.
    const again = await budget.failed(Object.assign(new Error('reset'), { code: 'ECONNRESET' })).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(Error);
  });

  it('progress starts the budget and the backoff again', async () => {
    const f = fakePolicy({ budgetMs: 300 });
    const budget = f.policy.begin('r');
    await f.fail(budget);
    await f.fail(budget);
    f.advance(10_000);
    budget.progressed();
    await f.fail(budget);
    // Back to the first delay, and a fresh 300 ms although 10 s passed since the first failure.
    expect(f.waits).toEqual([99, 199, 99]);
    expect(budget.retries).toBe(3);
  });

  it('does not retry what cannot pass, nor past maxRetries or an abort', async () => {
    const f = fakePolicy({ budgetMs: 10_000, maxRetries: 1 });
    const notFound = new RegistryError('BLOB_UNKNOWN', 'gone', { status: 404 });
    await expect(f.policy.begin('r').failed(notFound)).rejects.toBe(notFound);
    const budget = f.policy.begin('r');
    await f.fail(budget);
    const reset = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
    await expect(budget.failed(reset)).rejects.toBe(reset);
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await expect(f.policy.begin('r', { signal: ac.signal }).failed(reset)).rejects.toBe(reset);
  });

  it("honours Retry-After, capped, and never past the budget", async () => {
    const f = fakePolicy({ budgetMs: 250 });
    const busy = new RegistryError('TOO_MANY_REQUESTS', 'slow down', { status: 429, temporary: true });
    const budget = f.policy.begin('r');
    await f.fail(budget, busy, '3600');
    // Asked for an hour, capped at 5 s, shortened to the 250 ms left in the budget.
    expect(f.waits).toEqual([250]);
    const err = await budget.failed(busy, '1').catch((e: unknown) => e);
    expect(isHostpullError(err, 'TOO_MANY_REQUESTS')).toBe(true);
    expect((err as Error).message).toMatch(/retry budget of 250ms/);
  });
});

describe('retry notices', () => {
  it('tell of each retry before its wait, counting from 1 again after progress', async () => {
    const notices: RetryNotice[] = [];
    // Each notice with the number of waits already made: its own comes after it.
    const told: Array<[number, number]> = [];
    const f = fakePolicy({
      budgetMs: 1000,
      onRetry: (n) => {
        notices.push(n);
        told.push([n.delayMs, f.waits.length]);
      },
    });
    const reset = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
    const budget = f.policy.begin('reg.example:5000');
    await f.fail(budget, reset);
    await f.fail(budget, reset);
    budget.progressed();
    await f.fail(budget, reset);
    expect(told).toEqual([
      [99, 0],
      [199, 1],
      [99, 2],
    ]);
    expect(f.waits).toEqual([99, 199, 99]);
    expect(notices.map((n) => [n.inARow, n.failingForMs])).toEqual([
      [1, 0],
      [2, 99],
      [1, 0],
    ]);
    expect(notices[0]).toMatchObject({ registry: 'reg.example:5000', what: undefined, error: reset, budgetMs: 1000 });
    // A named operation is named in its notices and in the error that ends it; its own listener
    // hears them after the policy's.
    const own: RetryNotice[] = [];
    const named = f.policy.begin('reg.example:5000', { what: 'blob sha256:ab', onRetry: (n) => own.push(n) });
    await f.fail(named, reset);
    expect(notices.at(-1)!.what).toBe('blob sha256:ab');
    expect(own).toEqual([notices.at(-1)]);
    f.advance(5000);
    const spent = await named.failed(reset).catch((e: unknown) => e);
    expect((spent as Error).message).toMatch(/^registry reg\.example:5000 kept failing on blob sha256:ab for /);
    // What is not retried is not announced.
    await expect(f.policy.begin('r').failed(new RegistryError('BLOB_UNKNOWN', 'gone', { status: 404 }))).rejects.toThrow('gone');
    expect(notices).toHaveLength(4);
  });

  it('are logged at warn for the first retry of a streak, with the time left, and at debug after', () => {
    const lines: Array<[string, Record<string, unknown>, string]> = [];
    const at = (level: string) => (fields: Record<string, unknown>, msg: string) => lines.push([level, fields, msg]);
    const logger = { warn: at('warn'), debug: at('debug') } as unknown as Logger;
    const log = logRetries(logger);
    const err = new Error('GET http://reg:5000/v2/: connection failed (ECONNREFUSED)');
    log({ registry: 'reg:5000', what: undefined, error: err, delayMs: 150, inARow: 1, failingForMs: 0, budgetMs: 60_000 });
    log({ registry: 'reg:5000', what: undefined, error: err, delayMs: 350, inARow: 2, failingForMs: 150, budgetMs: 60_000 });
    log({ registry: 'reg:5000', what: 'blob sha256:ab', error: err, delayMs: 90, inARow: 1, failingForMs: 2500, budgetMs: 10_000 });
    expect(lines.map(([level, , msg]) => [level, msg])).toEqual([
      ['warn', 'registry reg:5000 failed; retrying for up to 60s (--registry-retry-budget)'],
      ['debug', 'registry reg:5000 failed again; retrying'],
      ['warn', 'registry reg:5000 failed on blob sha256:ab; retrying for up to 7.5s (--registry-retry-budget)'],
    ]);
    expect(lines[0]![1]).toEqual({ registry: 'reg:5000', err: err.message, retryInMs: 150, inARow: 1 });
  });
});
