/**
 * A Map that forgets its oldest entries past `max` (insertion order; a `set` of an existing key
 * makes it the newest): for look-aside tables keyed by what clients ask for.
 */
export class BoundedMap<K, V> {
  readonly #max: number;
  readonly #map = new Map<K, V>();

  constructor(max: number) {
    this.#max = Math.max(1, max);
  }

  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    while (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value!);
  }

  get size(): number {
    return this.#map.size;
  }
}

/** At most `count` takes per `windowMs` (a fixed window, restarted by the first take after it ends). */
export class WindowBudget {
  readonly #count: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  #windowStart = 0;
  #taken = 0;

  constructor(count: number, windowMs: number, now: () => number = Date.now) {
    this.#count = count;
    this.#windowMs = windowMs;
    this.#now = now;
  }

  take(): boolean {
    const now = this.#now();
    if (now - this.#windowStart >= this.#windowMs) {
      this.#windowStart = now;
      this.#taken = 0;
    }
    if (this.#taken >= this.#count) return false;
    this.#taken++;
    return true;
  }
}
