import type { Command } from 'commander';
import { hintFor, HostpullError, isHostpullError } from '../errors.js';
import { createLogger, LOG_LEVELS, type LogLevel, type Logger } from '../log.js';
import { parseDuration } from '../daemon/parse-duration.js';
import { parseSize as parseSizeText } from '../gc/parse-size.js';
import { defaultRoot } from '../paths.js';

/** Options every command accepts (declared once on the root program in main.ts). */
export interface GlobalOptions {
  root: string;
  server: string | undefined;
  namespace: string;
  logLevel: LogLevel;
  insecureRegistry: string[];
  /** Registry timeouts and retry budget given on the command line or in the environment (unset: the client's defaults). */
  registry: RegistryTimeouts;
  /** One of them came from a flag (not the environment): a daemon's own settings would not honour it. */
  registryFlagsGiven: boolean;
  /** Bound on a layer's uncompressed size, as a multiple of its compressed size (`--max-expansion-ratio`). */
  maxExpansionRatio: number | undefined;
  /** Bytes an unpack leaves free on the store's filesystem (`--disk-reserve`). */
  diskReserve: number | undefined;
}

export interface RegistryTimeouts {
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  retryBudgetMs?: number;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function globalOptions(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals() as Record<string, unknown>;
  const level = String(o.logLevel ?? 'warn');
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new HostpullError('USAGE', `--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  return {
    root: String(o.root ?? defaultRoot()),
    server: (o.server as string | undefined) ?? process.env.HOSTPULL_SERVER ?? undefined,
    namespace: String(o.namespace ?? process.env.HOSTPULL_NAMESPACE ?? 'hostpull'),
    logLevel: level as LogLevel,
    insecureRegistry: (o.insecureRegistry as string[] | undefined) ?? [],
    registry: registryTimeouts(o),
    registryFlagsGiven: ['registryHeadersTimeout', 'registryIdleTimeout', 'registryRetryBudget'].some((k) => cmd.getOptionValueSourceWithGlobals(k) === 'cli'),
    maxExpansionRatio: o.maxExpansionRatio === undefined ? undefined : positiveNumber(String(o.maxExpansionRatio), '--max-expansion-ratio'),
    diskReserve: o.diskReserve === undefined ? undefined : parseSize(String(o.diskReserve), '--disk-reserve'),
  };
}

function registryTimeouts(o: Record<string, unknown>): RegistryTimeouts {
  const out: RegistryTimeouts = {};
  const take = (flag: string, key: keyof RegistryTimeouts, value: unknown) => {
    if (value === undefined || value === '') return;
    try {
      out[key] = parseDuration(String(value));
    } catch (err) {
      throw usageError(`--${flag}: ${(err as Error).message}`, 'e.g. 500ms, 30s, 2m');
    }
    if (out[key] === 0) throw usageError(`--${flag} must be more than 0`);
  };
  take('registry-headers-timeout', 'headersTimeoutMs', o.registryHeadersTimeout);
  take('registry-idle-timeout', 'bodyTimeoutMs', o.registryIdleTimeout);
  take('registry-retry-budget', 'retryBudgetMs', o.registryRetryBudget);
  return out;
}

/** A number > 0 given to `flag`, or a usage error. */
export function positiveNumber(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw usageError(`${flag} must be a number above 0, not ${JSON.stringify(value)}`);
  return n;
}

/** A whole number > 0 given to `flag`, or a usage error. */
export function positiveInteger(value: string, flag: string): number {
  const n = positiveNumber(value, flag);
  if (!Number.isInteger(n)) throw usageError(`${flag} must be a whole number, not ${JSON.stringify(value)}`);
  return n;
}

function parseSize(value: string, flag: string): number {
  try {
    return parseSizeText(value);
  } catch (err) {
    throw usageError(`${flag}: ${(err as Error).message}`, 'e.g. 512M or 2G');
  }
}

export function loggerFor(opts: GlobalOptions): Logger {
  return createLogger(opts.logLevel);
}

/** Renders an error for a human on stderr: what failed, then what to do. */
export function printError(err: unknown): void {
  process.stderr.write(`hostpull: ${err instanceof Error ? err.message : String(err)}\n`);
  const hint = hintFor(err);
  if (hint) process.stderr.write(`hint: ${hint}\n`);
}

/**
 * Wraps a command action: errors become a message on stderr and exit code 1 (2 for usage
 * errors), so no command prints a stack trace at a user.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void | number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      if (typeof code === 'number') process.exitCode = code;
    } catch (err) {
      printError(err);
      process.exitCode = isHostpullError(err, 'USAGE') ? EXIT_USAGE : EXIT_FAILURE;
    }
  };
}

/** A usage error (exit code 2). */
export function usageError(message: string, hint?: string): HostpullError {
  return new HostpullError('USAGE', message, hint ? { hint } : {});
}

/** Collects a repeatable option (`-e A=1 -e B=2`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
