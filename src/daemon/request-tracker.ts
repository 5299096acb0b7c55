import { setTimeout as sleep } from 'node:timers/promises';
import { HostpullError } from '../errors.js';

/**
 * What an in-flight request does, for logs, metrics and /v1/health: the HTTP API's, and on the
 * snapshotter socket a containerd call ('snapshot') or a layer fetched ahead of containerd's asking
 * for it ('layer-fetch').
 */
export type RequestKind = 'pull' | 'rootfs' | 'rootfs-remove' | 'gc' | 'query' | 'snapshot' | 'layer-fetch';

export interface TrackedRun {
  /**
   * Whether the daemon may abort the work when it stops and the stop timeout has passed (it then
   * must roll back completely). Work that is cheap and must not be left half-done (removing a
   * rootfs) is waited for instead. Default true.
   */
  abortable?: boolean;
  /** Another reason to stop (the client went away). */
  signal?: AbortSignal;
}

/**
 * Everything the daemon is doing for its clients right now, on every socket it serves, so that a
 * stop is a transaction boundary: no request starts once the stop began, every running one finishes
 * or is aborted and rolls back, and only then is the store closed. An aborted pull leaves its
 * partial downloads in ingest/ (the next pull resumes them with Range); an aborted rootfs is
 * unmounted and removed; an aborted snapshotter call is answered DAEMON_STOPPING (gRPC UNAVAILABLE).
 */
export class RequestTracker {
  readonly #stop = new AbortController();
  readonly #active = new Map<Promise<unknown>, { kind: RequestKind; abortable: boolean }>();
  #draining = false;

  /**
   * Fires when the stop gives up waiting (or, once the drain is over, for whatever still listens):
   * for work that several requests share and none owns, such as a layer fetch that containerd's
   * calls wait for together. Such work must still run inside a tracked request, or the store could
   * close under it.
   */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /** Requests in flight, of one kind or all. */
  count(kind?: RequestKind): number {
    if (kind === undefined) return this.#active.size;
    let n = 0;
    for (const r of this.#active.values()) if (r.kind === kind) n++;
    return n;
  }

  /** Requests in flight by kind (kinds with none are left out), for the stop's log lines. */
  counts(): Partial<Record<RequestKind, number>> {
    const by: Partial<Record<RequestKind, number>> = {};
    for (const r of this.#active.values()) by[r.kind] = (by[r.kind] ?? 0) + 1;
    return by;
  }

  get stopping(): boolean {
    return this.#draining;
  }

  /**
   * Runs fn as one in-flight request, with a signal that fires when the daemon gives up waiting
   * at stop (abortable work only) or `run.signal` fires. Refused with DAEMON_STOPPING once the
   * stop began.
   */
  async run<T>(kind: RequestKind, fn: (signal: AbortSignal) => Promise<T>, run: TrackedRun = {}): Promise<T> {
    if (this.#draining) throw new HostpullError('DAEMON_STOPPING', 'the daemon is stopping and accepts no new requests', { hint: 'retry when it is back' });
    const abortable = run.abortable ?? true;
    const reasons = [...(abortable ? [this.#stop.signal] : []), ...(run.signal ? [run.signal] : [])];
    const signal = reasons.length === 0 ? new AbortController().signal : reasons.length === 1 ? reasons[0]! : AbortSignal.any(reasons);
    const task = fn(signal);
    this.#active.set(task, { kind, abortable });
    try {
      return await task;
    } catch (err) {
      // Whatever part of the work noticed the abort first, the reason is that we stopped.
      if (this.#stop.signal.aborted && abortable) throw stoppedError(kind, err);
      throw err;
    } finally {
      this.#active.delete(task);
    }
  }

  /**
   * Refuses new requests, waits up to `timeoutMs` for the running ones, then aborts what is left
   * and waits for it to unwind (roll back). Returns what had to be aborted, by kind. `signal` has
   * fired when it returns, whether anything was aborted or not.
   */
  async drain(timeoutMs: number): Promise<Partial<Record<RequestKind, number>>> {
    this.#draining = true;
    const stopped = new HostpullError('DAEMON_STOPPING', 'the daemon is stopping');
    // No request joins the set from now on (run() refuses), so one snapshot of it is all of them.
    const all = () => Promise.allSettled([...this.#active.keys()]);
    const timer = new AbortController();
    const finished = this.#active.size === 0 || (await Promise.race([all().then(() => true), sleep(timeoutMs, false, { signal: timer.signal }).catch(() => false)]));
    timer.abort();
    if (finished) {
      this.#stop.abort(stopped);
      return {};
    }
    const aborted: Partial<Record<RequestKind, number>> = {};
    for (const r of this.#active.values()) if (r.abortable) aborted[r.kind] = (aborted[r.kind] ?? 0) + 1;
    this.#stop.abort(stopped);
    // What was aborted rolls back now; what may not be aborted finishes.
    while (this.#active.size > 0) await all();
    return aborted;
  }
}

const WHAT: Record<RequestKind, { noun: string; hint: string }> = {
  pull: { noun: 'pull', hint: 'pull again when the daemon is back: the partial download is resumed' },
  rootfs: { noun: 'rootfs', hint: 'nothing was left behind; ask again when the daemon is back' },
  'rootfs-remove': { noun: 'removal', hint: 'remove it again when the daemon is back' },
  gc: { noun: 'gc', hint: 'run gc again when the daemon is back' },
  query: { noun: 'request', hint: 'ask again when the daemon is back' },
  snapshot: { noun: 'snapshotter call', hint: "containerd's pull fails; the kubelet pulls again, through the daemon once it is back" },
  'layer-fetch': { noun: 'layer fetch', hint: 'the next pull of the image fetches it again, resuming the partial download' },
};

function stoppedError(kind: RequestKind, cause: unknown): HostpullError {
  return new HostpullError('DAEMON_STOPPING', `the daemon stopped before this ${WHAT[kind].noun} finished`, { hint: WHAT[kind].hint, cause });
}
