/**
 * SpanCache when its directory is removed under it (pruneSpanCaches() at a `hostpull run`'s
 * start, or another process's clear()) while a helper still uses it: later spans are stored
 * again, and the spans that went with the directory are misses, not claimed by the index.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SpanCache } from '../../../src/lazy/span-cache.js';
import { spanSha256 } from '../../../src/oci/index.js';
import { useTempDir } from '../../helpers/tmp.js';

describe('SpanCache', () => {
  const tmp = useTempDir('span-cache');

  it.each([{ soleWriter: true }, { soleWriter: false }])('a directory removed under a live cache is made again by the next put, and what it held is a miss (%o)', async (options) => {
    const dir = join(await tmp(), 'spans', 'abc');
    const cache = new SpanCache(dir, options);
    const zero = Buffer.from('span zero');
    const one = Buffer.from('span one');
    await cache.put(0, zero);
    expect(await cache.get(0, spanSha256(zero))).toEqual(zero);
    if (options.soleWriter) expect(cache.has(0)).toBe(true);

    await rm(dir, { recursive: true, force: true });
    await cache.put(1, one);
    await cache.put(2, one);
    expect((await readdir(dir)).sort()).toEqual(['1', '2']);
    expect(await cache.get(1, spanSha256(one))).toEqual(one);
    // Span 0 went with the directory: neither listed nor read.
    expect(cache.has(0)).toBe(false);
    expect(await cache.get(0, spanSha256(zero))).toBeUndefined();
    if (options.soleWriter) expect([cache.has(1), cache.has(2)]).toEqual([true, true]);
  });

  it("a span whose file alone vanished is a miss, and the sole writer's index stops listing it", async () => {
    const dir = join(await tmp(), 'spans', 'def');
    const cache = new SpanCache(dir, { soleWriter: true });
    const bytes = Buffer.from('span bytes');
    await cache.put(3, bytes);
    expect(cache.has(3)).toBe(true);
    await rm(join(dir, '3'));
    expect(await cache.get(3, spanSha256(bytes))).toBeUndefined();
    expect(cache.has(3)).toBe(false);
  });
});
