import type { Command } from 'commander';
import { durationOption, numberOption } from './options.js';

/** The tuning flags of lazy pulling, shared by `run --lazy` and `daemon` (rootfs prepared with `lazy`), as parsed. */
export interface LazyFlags {
  /** Milliseconds. */
  lazyFetchTimeout: number;
  lazyFetchAttempts: number;
  /** Milliseconds. */
  lazyBackgroundDelay: number;
}

export function addLazyOptions(cmd: Command): Command {
  return cmd
    .addOption(durationOption('--lazy-fetch-timeout <duration>', 'lazy layers: bound on one attempt to fetch a span (a read gets EIO after --lazy-fetch-attempts of them)', { above: 0, defaultText: '10s' }))
    .addOption(numberOption('--lazy-fetch-attempts <n>', 'lazy layers: attempts per span before the read gets EIO', { integer: true, min: 1, max: 100, defaultValue: 3 }))
    .addOption(durationOption('--lazy-background-delay <duration>', 'lazy layers: wait this long after mounting before completing a layer in the background', { defaultText: '2s' }));
}

export function lazyOptionsFrom(flags: LazyFlags): { fetch: { attemptTimeoutMs: number; attempts: number }; backgroundDelayMs: number } {
  return { fetch: { attemptTimeoutMs: flags.lazyFetchTimeout, attempts: flags.lazyFetchAttempts }, backgroundDelayMs: flags.lazyBackgroundDelay };
}
