/**
 * Bearer tokens cached per (registry, scope) until they expire. Distribution's token spec says
 * `expires_in` defaults to 60 s when absent; we renew a little early so a token does not expire
 * between our check and the registry's. Concurrent requests for the same key share one fetch.
 */
export interface CachedToken {
  token: string;
  /** Epoch ms after which the token is not used any more. */
  expiresAt: number;
}

const DEFAULT_TOKEN_LIFETIME_S = 60;

/** Lifetime → expiry, renewing early by 10% of the lifetime, at most 30 s. */
export function tokenExpiry(now: number, expiresInS: number | undefined): number {
  const lifetimeMs = (expiresInS !== undefined && Number.isFinite(expiresInS) && expiresInS > 0 ? expiresInS : DEFAULT_TOKEN_LIFETIME_S) * 1000;
  return now + lifetimeMs - Math.min(lifetimeMs * 0.1, 30_000);
}

export function tokenCacheKey(registry: string, scopes: readonly string[]): string {
  return `${registry}\n${[...scopes].sort().join(' ')}`;
}

export class TokenCache {
  readonly #tokens = new Map<string, CachedToken>();
  readonly #inflight = new Map<string, Promise<CachedToken>>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  get(key: string): string | undefined {
    const t = this.#tokens.get(key);
    if (!t) return undefined;
    if (t.expiresAt <= this.#now()) {
      this.#tokens.delete(key);
      return undefined;
    }
    return t.token;
  }

  set(key: string, token: CachedToken): void {
    this.#tokens.set(key, token);
  }

  delete(key: string): void {
    this.#tokens.delete(key);
  }

  /** The cached token, or the result of `fetch` (shared by concurrent callers), cached. */
  async getOrFetch(key: string, fetch: () => Promise<CachedToken>): Promise<string> {
    const cached = this.get(key);
    if (cached !== undefined) return cached;
    let p = this.#inflight.get(key);
    if (!p) {
      p = fetch().then(
        (t) => {
          this.#inflight.delete(key);
          this.#tokens.set(key, t);
          return t;
        },
        (err: unknown) => {
          this.#inflight.delete(key);
          throw err;
        },
      );
      this.#inflight.set(key, p);
    }
    return (await p).token;
  }
}
