/**
 * Runs at most `concurrency` of the given tasks at once and resolves with their results in
 * order; the first failure aborts the shared signal so the others stop early, then rejects.
 */
export async function mapLimit<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number, signal: AbortSignal) => Promise<R>, parent?: AbortSignal): Promise<R[]> {
  // An aborted signal tells no new listener: a parent aborted already would not stop a task.
  parent?.throwIfAborted();
  const controller = new AbortController();
  const onParentAbort = () => controller.abort(parent?.reason);
  parent?.addEventListener('abort', onParentAbort, { once: true });
  const results: R[] = new Array(items.length);
  let next = 0;
  let firstError: unknown;
  const worker = async () => {
    while (next < items.length && !controller.signal.aborted) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i, controller.signal);
      } catch (err) {
        if (firstError === undefined) firstError = err;
        controller.abort(err);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  } finally {
    parent?.removeEventListener('abort', onParentAbort);
  }
  if (firstError !== undefined) throw firstError;
  parent?.throwIfAborted();
  return results;
}
