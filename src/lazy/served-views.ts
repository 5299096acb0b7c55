/**
 * The FUSE helper's views, one per layer key, shared by every mount request of that key and
 * counted by them: a view is closed when the last request that mounted it is matched by an
 * unmount, not by the first unmount that names its key.
 *
 * Both halves matter because the parent's requests for one key overlap: LazyLayers drops a view
 * it mounted ahead for an image that was refused (its #early entry goes at once, the unmount only
 * once the view is mounted), while a prepare of another image over the same layer, finding no
 * entry, asks to mount it again. Checked, then awaited, then recorded, the two requests mounted
 * two views, the second replacing the first in the map, and the first image's unmount took down
 * the view the second image's container was given (its lowerdir gone) while the other leaked.
 * Independent of FUSE: the helper passes how a view is opened and closed.
 */
interface Entry<V> {
  /** Mount requests answered (or waiting) with this view and not yet matched by a release. */
  users: number;
  opened: Promise<V>;
  /** Once opened. */
  value?: V;
}

export class ServedViews<V> {
  readonly #views = new Map<string, Entry<V>>();
  readonly #close: (view: V) => Promise<void>;

  constructor(close: (view: V) => Promise<void>) {
    this.#close = close;
  }

  /**
   * The view of `key` for one more user: the one open or being opened, else `open()`'s. A failed
   * open fails every request waiting for it, counts none of them, and the next request opens again.
   */
  async acquire(key: string, open: () => Promise<V>): Promise<V> {
    let entry = this.#views.get(key);
    if (!entry) {
      // Recorded before the first await: a request arriving while this one mounts waits for it.
      const e: Entry<V> = { users: 0, opened: open() };
      e.opened.then(
        (v) => void (e.value = v),
        () => void (this.#views.get(key) === e && this.#views.delete(key)),
      );
      this.#views.set(key, e);
      entry = e;
    }
    entry.users++;
    try {
      return await entry.opened;
    } catch (err) {
      entry.users--;
      throw err;
    }
  }

  /**
   * One user of `key` is done with its view: closed once no user is left. Says whether no view of
   * `key` is served any more (false: another user still holds it), so the caller knows whether
   * its mount point may be removed.
   */
  async release(key: string): Promise<boolean> {
    const entry = this.#views.get(key);
    if (!entry) return true;
    if (--entry.users > 0) return false;
    this.#views.delete(key);
    const view = await entry.opened.catch(() => undefined);
    if (view !== undefined) await this.#close(view);
    return true;
  }

  /** The view of `key` once it is open. */
  get(key: string): V | undefined {
    return this.#views.get(key)?.value;
  }

  get size(): number {
    return this.#views.size;
  }

  /** Closes every view whoever holds it (the helper is stopping). */
  async closeAll(): Promise<void> {
    const all = [...this.#views.values()];
    this.#views.clear();
    await Promise.allSettled(
      all.map(async (e) => {
        const view = await e.opened.catch(() => undefined);
        if (view !== undefined) await this.#close(view);
      }),
    );
  }
}
