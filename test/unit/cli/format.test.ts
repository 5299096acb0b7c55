import { describe, expect, it } from 'vitest';
import { formatAge } from '../../../src/cli/format.js';

describe('formatAge', () => {
  const now = 1_000_000_000_000;
  it('says seconds, minutes, hours or days ago, singular for one', () => {
    expect(formatAge(now, now)).toBe('0 seconds ago');
    expect(formatAge(now - 1000, now)).toBe('1 second ago');
    expect(formatAge(now - 59_999, now)).toBe('59 seconds ago');
    expect(formatAge(now - 60_000, now)).toBe('1 minute ago');
    expect(formatAge(now - 3 * 3600_000 - 5, now)).toBe('3 hours ago');
    expect(formatAge(now - 2 * 86_400_000, now)).toBe('2 days ago');
  });
  it('a time in the future (another clock) is 0 seconds ago, not negative', () => {
    expect(formatAge(now + 5000, now)).toBe('0 seconds ago');
  });
});
