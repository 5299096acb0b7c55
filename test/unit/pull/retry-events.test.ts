import { describe, expect, it } from 'vitest';
import { retryLine } from '../../../src/cli/pull-and-print.js';
import { retryEvents, type PullEvent } from '../../../src/pull/events.js';
import type { RetryNotice } from '../../../src/registry/index.js';

const notice = (over: Partial<RetryNotice>): RetryNotice => ({
  registry: 'reg:5000',
  what: 'blob sha256:ab',
  error: new Error('other side closed'),
  delayMs: 120,
  inARow: 1,
  failingForMs: 0,
  budgetMs: 60_000,
  ...over,
});

describe("a pull's retries as events", () => {
  it('the first retry of each streak is an event with the time left; the rest say nothing new', () => {
    const events: PullEvent[] = [];
    const listen = retryEvents((e) => events.push(e));
    listen(notice({}));
    listen(notice({ inARow: 2, failingForMs: 120 }));
    listen(notice({ what: undefined, error: 'refused', failingForMs: 2500, budgetMs: 10_000 }));
    expect(events).toEqual([
      { type: 'retry', registry: 'reg:5000', what: 'blob sha256:ab', error: 'other side closed', retryForMs: 60_000 },
      { type: 'retry', registry: 'reg:5000', error: 'refused', retryForMs: 7500 },
    ]);
  });

  it('reads as one line in the terminal of a daemon client', () => {
    expect(retryLine({ type: 'retry', registry: 'reg:5000', what: 'blob sha256:ab', error: 'other side closed', retryForMs: 60_000 })).toBe(
      'hostpull: registry reg:5000 failed on blob sha256:ab (other side closed); retrying for up to 60s (--registry-retry-budget)',
    );
    expect(retryLine({ type: 'retry', registry: 'reg:5000', error: 'refused', retryForMs: 900 })).toBe('hostpull: registry reg:5000 failed (refused); retrying for up to 900ms (--registry-retry-budget)');
  });
});
