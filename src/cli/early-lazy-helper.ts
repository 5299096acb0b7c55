import type { FuseHelper } from '../lazy/index.js';
import { createLogger, DEFAULT_LOG_LEVEL, isLogFormat, type LogFormat, type LogLevel } from '../log.js';
import { applyV8Flags } from '../util/index.js';
import { v8FlagsFor } from './verb-v8-flags.js';

// The FUSE helper of a lazy `hostpull run`, forked first thing (main.ts), before commander and the
// run's own modules load. Forked from the run's action, the helper was still loading when the
// run's mounts came, and then loaded its HTTP client (undici then) while the run mounted the
// overlay over its views, a mount(2) that waits for the lookups the helper answers. Forked here,
// it loads on the other core while this process loads commander and resolves the image.
// Measured alternated with the build before, 12 runs each (bench/lazy-ab.mjs, medians of the
// first output): `mvn -v` 913 → 880 ms on a first node and 701 → 687 ms on a second,
// `go version` 485 → 467 and 453 → 440 ms.
//
// It is forked only for a command line that reads as `run --lazy` as root with the default log
// level and format, the settings it is started with. The run takes it if its own settings are
// those, else stops it and starts its own. One that no run takes (a line that only looked like a
// lazy run) ends with this process, as every helper does when its parent goes.

type StartHelper = (level: LogLevel, format: LogFormat) => Promise<FuseHelper>;

export interface EarlyHelperOptions {
  env?: NodeJS.ProcessEnv;
  isRoot?: boolean;
  start?: StartHelper;
}

let early: Promise<FuseHelper | undefined> | undefined;

/** Whether the arguments before any `--` name `run` and `--lazy`, and neither help nor a log option (those are commander's to read). */
export function looksLikeLazyRun(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  const own = end < 0 ? args : args.slice(0, end);
  return own.includes('run') && own.includes('--lazy') && !own.some((a) => a === '-h' || a === '--help' || a.startsWith('--log-level') || a.startsWith('--log-format'));
}

/** Forks the helper now for a lazy run as root; does nothing for any other command line. */
export function forkLazyHelperEarly(args: readonly string[], options: EarlyHelperOptions = {}): void {
  const { env = process.env, isRoot = process.getuid?.() === 0, start = startHelper } = options;
  if (early || !isRoot || !looksLikeLazyRun(args)) return;
  // The format commander gives when the line has no --log-format: HOSTPULL_LOG_FORMAT, else text.
  const format = env.HOSTPULL_LOG_FORMAT;
  if (format !== undefined && !isLogFormat(format)) return;
  early = start(DEFAULT_LOG_LEVEL, format ?? 'text').catch(() => undefined);
}

/**
 * The helper forked early, if there is one and it logs as the run does; one that logs otherwise
 * is stopped. Undefined then, and when there is none or its fork failed: the run starts its own,
 * which says why it cannot.
 */
export async function takeEarlyLazyHelper(level: LogLevel, format: LogFormat): Promise<FuseHelper | undefined> {
  const pending = early;
  early = undefined;
  const helper = await pending;
  if (!helper) return undefined;
  if (helper.logLevel === level && helper.logFormat === format) return helper;
  void helper.stop();
  return undefined;
}

async function startHelper(level: LogLevel, format: LogFormat): Promise<FuseHelper> {
  const { FuseHelper } = await import('../lazy/index.js');
  // The V8 flags commander's preAction sets for `run`, which a helper is forked with.
  applyV8Flags(v8FlagsFor('run'));
  return FuseHelper.start(createLogger(level, 'hostpull', format), level);
}
