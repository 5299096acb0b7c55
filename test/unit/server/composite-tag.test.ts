import { describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import { canonicalTag, parseCompositeTag } from '../../../src/server/composite-tag.js';

function errorOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (isHostpullError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected an error');
}

describe('parseCompositeTag', () => {
  it('splits, validates and sorts code names', () => {
    expect(parseCompositeTag('MVN3.8-JDK11.0-GRD7.0')).toEqual(['GRD7.0', 'JDK11.0', 'MVN3.8']);
    expect(parseCompositeTag('JDK11.0')).toEqual(['JDK11.0']);
    expect(parseCompositeTag('a_b.c')).toEqual(['a_b.c']);
  });

  it('gives the same canonical tag whatever the order', () => {
    expect(canonicalTag(parseCompositeTag('GRD7.0-JDK11.0'))).toBe(canonicalTag(parseCompositeTag('JDK11.0-GRD7.0')));
  });

  it.each([
    ['JDK11.0--GRD7.0', /empty code name at position 2/],
    ['-JDK11.0', /empty code name at position 1/],
    ['JDK11.0-', /empty code name at position 2/],
    ['JDK11.0-GR$D', /"GR\$D"/],
    ['JDK11.0-JDK11.0', /JDK11\.0 appears twice/],
    ['', /empty tag/],
    ['.JDK', /starts with '\.'/],
  ])('refuses %j', (tag, message) => {
    const e = errorOf(() => parseCompositeTag(tag));
    expect(e.code).toBe('TAG_INVALID');
    expect(e.message).toMatch(message);
  });

  it('states the 128-character limit', () => {
    const tag = Array.from({ length: 20 }, (_, i) => `CODE${String(i).padStart(3, '0')}`).join('-');
    expect(tag.length).toBeGreaterThan(128);
    const e = errorOf(() => parseCompositeTag(tag));
    expect(e.code).toBe('TAG_INVALID');
    expect(e.message).toContain(`${tag.length} characters long; OCI allows at most 128`);
    expect(parseCompositeTag('A'.repeat(128))).toEqual(['A'.repeat(128)]);
  });
});
