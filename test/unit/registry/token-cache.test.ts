import { describe, expect, it } from 'vitest';
import { TokenCache, tokenCacheKey, tokenExpiry } from '../../../src/registry/auth/token-cache.js';

describe('TokenCache', () => {
  it('keeps a token until shortly before it expires, 60 s by default', async () => {
    let now = 1_000_000;
    const cache = new TokenCache(() => now);
    const key = tokenCacheKey('127.0.0.1:5000', ['repository:a:pull']);
    let fetches = 0;
    const fetch = async () => ({ token: `t${++fetches}`, expiresAt: tokenExpiry(now, undefined) });
    expect(await cache.getOrFetch(key, fetch)).toBe('t1');
    now += 50_000;
    expect(await cache.getOrFetch(key, fetch)).toBe('t1');
    now += 5_000; // 55 s: inside the early-renewal margin of a 60 s token
    expect(await cache.getOrFetch(key, fetch)).toBe('t2');
    expect(tokenExpiry(0, 300)).toBe(270_000);
  });

  it('keys by registry and scope set, and shares one fetch between concurrent callers', async () => {
    const cache = new TokenCache();
    expect(tokenCacheKey('r', ['b', 'a'])).toBe(tokenCacheKey('r', ['a', 'b']));
    expect(tokenCacheKey('r', ['a'])).not.toBe(tokenCacheKey('s', ['a']));
    let fetches = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const fetch = async () => {
      fetches++;
      await gate;
      return { token: 'shared', expiresAt: Date.now() + 60_000 };
    };
    const both = Promise.all([cache.getOrFetch('k', fetch), cache.getOrFetch('k', fetch)]);
    release();
    expect(await both).toEqual(['shared', 'shared']);
    expect(fetches).toBe(1);
  });

  it('does not cache a failed fetch', async () => {
    const cache = new TokenCache();
    await expect(cache.getOrFetch('k', () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(await cache.getOrFetch('k', async () => ({ token: 'ok', expiresAt: Date.now() + 1000 }))).toBe('ok');
  });
});
