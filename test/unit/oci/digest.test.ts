import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import { digestAlgorithm, digestHex, digestOf, isDigest, parseDigest, shortDigest } from '../../../src/oci/digest.js';

const HEX64 = 'a'.repeat(64);
const HEX128 = 'b'.repeat(128);

function parseError(value: string): Error & { code?: string; hint?: string } {
  try {
    parseDigest(value);
  } catch (err) {
    expect(isHostpullError(err, 'DIGEST_INVALID')).toBe(true);
    return err as Error;
  }
  throw new Error(`parseDigest(${value}) did not throw`);
}

describe('parseDigest', () => {
  it('accepts sha256 with 64 and sha512 with 128 lowercase hex characters', () => {
    expect(parseDigest(`sha256:${HEX64}`)).toBe(`sha256:${HEX64}`);
    expect(parseDigest(`sha512:${HEX128}`)).toBe(`sha512:${HEX128}`);
    expect(digestAlgorithm(parseDigest(`sha512:${HEX128}`))).toBe('sha512');
    expect(digestHex(parseDigest(`sha256:${HEX64}`))).toBe(HEX64);
  });

  it('refuses uppercase hex (the OCI grammar for registered algorithms is lowercase)', () => {
    expect(isDigest(`sha256:${'A'.repeat(64)}`)).toBe(false);
    expect(parseError(`sha256:${'A'.repeat(64)}`).message).toContain('is not a valid digest');
  });

  it('refuses a hex part of the wrong length for its algorithm', () => {
    for (const bad of [`sha256:${'a'.repeat(63)}`, `sha256:${'a'.repeat(65)}`, `sha256:${HEX128}`, `sha512:${HEX64}`]) {
      expect(isDigest(bad)).toBe(false);
      expect(parseError(bad).message).toContain('is not a valid digest');
    }
  });

  it('refuses non-hex characters, a missing algorithm and a missing separator', () => {
    for (const bad of [`sha256:${'g'.repeat(64)}`, `:${HEX64}`, HEX64, '', 'sha256:']) expect(isDigest(bad)).toBe(false);
  });

  it('names an unknown algorithm in the message', () => {
    const err = parseError(`md5:${'a'.repeat(32)}`);
    expect(err.message).toContain('unsupported algorithm md5');
    expect(err.hint).toContain('sha256 and sha512');
  });

  it('does not take Object.prototype member names for known algorithms', () => {
    expect(isDigest(`constructor:${HEX64}`)).toBe(false);
    expect(parseError(`constructor:${HEX64}`).message).toContain('unsupported algorithm constructor');
  });

  it('puts what was being parsed in the message', () => {
    expect(() => parseDigest('nope', 'config digest')).toThrow(/^config digest "nope"/);
  });

  it('refuses non-strings in isDigest', () => {
    expect(isDigest(42)).toBe(false);
    expect(isDigest(undefined)).toBe(false);
  });
});

describe('digestOf', () => {
  it('hashes bytes and strings with sha256 by default, sha512 on request', () => {
    const data = Buffer.from('hello hostpull');
    expect(digestOf(data)).toBe(`sha256:${createHash('sha256').update(data).digest('hex')}`);
    expect(digestOf('hello hostpull')).toBe(digestOf(data));
    const d512 = digestOf(data, 'sha512');
    expect(d512).toBe(`sha512:${createHash('sha512').update(data).digest('hex')}`);
    expect(isDigest(digestOf(new Uint8Array()))).toBe(true);
    expect(isDigest(d512)).toBe(true);
  });
});

describe('shortDigest', () => {
  it('keeps the algorithm and 12 hex characters', () => {
    expect(shortDigest(`sha256:0123456789abcdef${'0'.repeat(48)}`)).toBe('sha256:0123456789ab…');
    expect(shortDigest(`sha512:${HEX128}`)).toBe(`sha512:${'b'.repeat(12)}…`);
  });

  it('cuts a string without an algorithm to 12 characters', () => {
    expect(shortDigest('0123456789abcdef')).toBe('0123456789ab');
  });
});
