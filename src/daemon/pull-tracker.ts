import { setTimeout as sleep } from 'node:timers/promises';
import { HostpullError } from '../errors.js';

/**
 * The pulls a daemon runs right now, so a graceful stop can let them finish and abort the rest
 * after a timeout. An aborted pull leaves its partial downloads in ingest/, so the next pull of
 * the same blobs resumes them with Range.
 */
export class PullTracker {
  readonly #stop = new AbortController();
  readonly #active = new Set<Promise<unknown>>();

  get size(): number {
    return this.#active.size;
  }

  get stopping(): boolean {
    return this.#draining;
  }

  #draining = false;

  /** Runs fn with a signal that fires when the daemon gives up waiting at stop (or `signal` fires). */
  async run<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.#draining) throw new HostpullError('DAEMON_STOPPING', 'the daemon is stopping and accepts no new pulls', { hint: 'retry when it is back' });
    const combined = signal ? AbortSignal.any([this.#stop.signal, signal]) : this.#stop.signal;
    const task = fn(combined);
    this.#active.add(task);
    try {
      return await task;
    } catch (err) {
      // Whatever layer of the pull noticed the abort first, the reason is that we stopped.
      if (this.#stop.signal.aborted) throw this.#stop.signal.reason;
      throw err;
    } finally {
      this.#active.delete(task);
    }
  }

  /**
   * Refuses new pulls, waits up to `timeoutMs` for the running ones, then aborts what is left
   * and waits for it to unwind. Returns how many had to be aborted.
   */
  async drain(timeoutMs: number): Promise<number> {
    this.#draining = true;
    const all = () => Promise.allSettled([...this.#active]);
    if (this.#active.size === 0) return 0;
    const timer = new AbortController();
    const finished = await Promise.race([all().then(() => true), sleep(timeoutMs, false, { signal: timer.signal }).catch(() => false)]);
    timer.abort();
    if (finished) return 0;
    const aborted = this.#active.size;
    this.#stop.abort(new HostpullError('DAEMON_STOPPING', 'the daemon stopped before this pull finished', { hint: 'pull again: the partial download is resumed' }));
    await all();
    return aborted;
  }
}
