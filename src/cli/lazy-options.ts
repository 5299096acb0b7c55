import { Option, type Command } from 'commander';
import { parseDuration } from '../daemon/parse-duration.js';
import { usageError } from './context.js';

/** The tuning flags of lazy pulling, shared by `run --lazy` and `daemon` (rootfs prepared with `lazy`). */
export interface LazyFlags {
  lazyFetchTimeout: string;
  lazyFetchAttempts: string;
  lazyBackgroundDelay: string;
}

export function addLazyOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--lazy-fetch-timeout <duration>', 'lazy layers: bound on one attempt to fetch a span (a read gets EIO after --lazy-fetch-attempts of them)').default('10s'))
    .addOption(new Option('--lazy-fetch-attempts <n>', 'lazy layers: attempts per span before the read gets EIO').default('3'))
    .addOption(new Option('--lazy-background-delay <duration>', 'lazy layers: wait this long after mounting before completing a layer in the background').default('2s'));
}

export function lazyOptionsFrom(flags: LazyFlags): { fetch: { attemptTimeoutMs: number; attempts: number }; backgroundDelayMs: number } {
  const attempts = Number(flags.lazyFetchAttempts);
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) throw usageError(`--lazy-fetch-attempts ${flags.lazyFetchAttempts}: expected a whole number from 1 to 100`);
  return { fetch: { attemptTimeoutMs: parseDuration(flags.lazyFetchTimeout), attempts }, backgroundDelayMs: parseDuration(flags.lazyBackgroundDelay) };
}
