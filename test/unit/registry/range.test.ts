import { describe, expect, it } from 'vitest';
import { registryOrigin } from '../../../src/registry/index.js';
import { decideRangeResponse, parseContentRange } from '../../../src/registry/range.js';
import { isLoopbackHost } from '../../../src/registry/scheme.js';
import { redactUrl } from '../../../src/registry/redact.js';

describe('range decision', () => {
  it('accepts a 206 that starts at the asked offset', () => {
    expect(decideRangeResponse(206, 100, 'bytes 100-999/1000', 900)).toEqual({ kind: 'resume', offset: 100, totalSize: 1000 });
    expect(decideRangeResponse(206, 100, 'bytes 100-999/*', 900)).toEqual({ kind: 'resume', offset: 100 });
    // A closed range (a lazy layer's span): the 206 must end where it was asked to.
    expect(decideRangeResponse(206, 100, 'bytes 100-199/1000', 100, 199)).toEqual({ kind: 'resume', offset: 100, totalSize: 1000 });
    expect(decideRangeResponse(206, 100, 'bytes 100-999/1000', 900, 199).kind).toBe('error');
  });
  it('restarts on 200 (Range ignored)', () => {
    expect(decideRangeResponse(200, 100, undefined, 1000)).toEqual({ kind: 'restart', totalSize: 1000 });
  });
  it('refuses a 206 at another offset, a partial tail, or no Content-Range', () => {
    expect(decideRangeResponse(206, 100, 'bytes 0-999/1000', 1000).kind).toBe('error');
    expect(decideRangeResponse(206, 100, 'bytes 100-499/1000', 400).kind).toBe('error');
    expect(decideRangeResponse(206, 100, undefined, 900).kind).toBe('error');
    expect(decideRangeResponse(416, 100, 'bytes */50', 0).kind).toBe('error');
  });
  it('parses Content-Range', () => {
    expect(parseContentRange('bytes 5-9/10')).toEqual({ first: 5, last: 9, total: 10 });
    expect(parseContentRange('bytes */10')).toBeUndefined();
  });
});

describe('scheme and redaction', () => {
  it('speaks http only to loopback and listed hosts', () => {
    expect(isLoopbackHost('127.1.2.3')).toBe(true);
    expect(isLoopbackHost('::1')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('10.0.0.1')).toBe(false);
    expect(registryOrigin('127.0.0.1:5000', [])).toBe('http://127.0.0.1:5000');
    expect(registryOrigin('[::1]:5000', [])).toBe('http://[::1]:5000');
    expect(registryOrigin('reg.example', [])).toBe('https://reg.example');
    expect(registryOrigin('reg.example:5000', ['reg.example:5000'])).toBe('http://reg.example:5000');
    expect(() => registryOrigin('http://reg.example', [])).toThrow(expect.objectContaining({ code: 'INSECURE_REGISTRY' }));
  });
  it('strips credentials from URLs', () => {
    const s = redactUrl('https://user:pw@s3.example/b?X-Amz-Signature=abc&partNumber=1&token=t');
    expect(s).not.toContain('pw');
    expect(s).not.toContain('abc');
    expect(s).toContain('partNumber=1');
  });
});
