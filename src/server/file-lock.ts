import { open, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoCode, HostpullError } from '../errors.js';

export interface FileLockOptions {
  /** Give up after this long. Default 10 s. */
  timeoutMs?: number;
  /** A lock file older than this is taken to belong to a crashed process and removed. Default 30 s. */
  staleMs?: number;
  signal?: AbortSignal;
}

/**
 * Runs `fn` while holding `path` as an O_EXCL lock file. This guards read-modify-write of a file
 * shared by several processes (server replicas over one layout directory); it is advisory and
 * only as good as every writer using it. Callers in one process also serialise in memory first,
 * so the file is contended only across processes.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const staleMs = options.staleMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      break;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      const st = await stat(path).catch(() => null);
      // A holder that died leaves its file behind; its age tells us it is not coming back.
      if (st && Date.now() - st.mtimeMs > staleMs) await rm(path, { force: true });
      if (Date.now() > deadline) {
        throw new HostpullError('LOCK_TIMEOUT', `could not lock ${path} within ${timeoutMs} ms`, {
          hint: 'another process (a second server on the same layout, or a publish) holds it; remove the file if no such process is running',
        });
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 100);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(path, { force: true });
  }
}

/** In-process FIFO mutex: callers queue on a promise chain. */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}
