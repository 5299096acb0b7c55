import { exitCodeOf, printError } from './context.js';

/**
 * A verb over several containers (`stop a b c`, `kill`, `rm`), as podman does it: each is acted
 * on, all at once (stopping one that ignores SIGTERM must not hold the others back by its
 * timeout), and one that fails does not keep the rest from being done. Each success prints its
 * line, in the order named; each failure prints its error. The exit code is that of the first
 * failure, 0 when none failed.
 */
export async function eachContainer<T>(ids: readonly string[], act: (id: string) => Promise<T>, line: (done: T) => string): Promise<number> {
  // A container named twice is acted on once (two removals of one container at once race).
  const outcomes = await Promise.allSettled([...new Set(ids)].map((id) => act(id)));
  let exit = 0;
  for (const o of outcomes) {
    if (o.status === 'fulfilled') {
      process.stdout.write(`${line(o.value)}\n`);
      continue;
    }
    printError(o.reason);
    if (exit === 0) exit = exitCodeOf(o.reason);
  }
  return exit;
}
