/**
 * A map whose entries expire after `ttlMs`, with single-flight loading: concurrent `get`s of a
 * missing key share one load, so a burst of pulls of a new composite resolves it once.
 * Size-bounded (oldest inserted first out) so random tags cannot grow memory without limit.
 */
export class TtlCache<V> {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #entries = new Map<string, { value: V; expires: number }>();
  readonly #loading = new Map<string, Promise<V>>();

  constructor(ttlMs: number, maxEntries = 1000) {
    this.#ttlMs = ttlMs;
    this.#maxEntries = maxEntries;
  }

  peek(key: string): V | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (e.expires <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, { value, expires: Date.now() + this.#ttlMs });
    while (this.#entries.size > this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
  }

  /** Returns `[value, hit]`: the cached value, or the (shared) result of `load`. */
  async get(key: string, load: () => Promise<V>): Promise<[V, boolean]> {
    const cached = this.peek(key);
    if (cached !== undefined) return [cached, true];
    let p = this.#loading.get(key);
    if (!p) {
      p = load().then(
        (v) => {
          this.#loading.delete(key);
          this.set(key, v);
          return v;
        },
        (err: unknown) => {
          this.#loading.delete(key);
          throw err;
        },
      );
      this.#loading.set(key, p);
    }
    return [await p, false];
  }

  clear(): void {
    this.#entries.clear();
  }
}
