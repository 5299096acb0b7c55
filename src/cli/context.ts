import type { Command } from 'commander';
import { errorRow, errorText, hintFor, HostpullError, isHostpullError } from '../errors.js';
import { createLogger, DEFAULT_LOG_LEVEL, LOG_LEVELS, type LogFormat, type LogLevel, type Logger } from '../log.js';
import { DEFAULT_NAMESPACE, defaultRoot } from '../defaults.js';
import { interruptSignal, signalExitCode } from './interrupt.js';

/** Options every command accepts (declared once on the root program in main.ts). */
export interface GlobalOptions {
  root: string;
  server: string | undefined;
  namespace: string;
  logLevel: LogLevel;
  /** `--log-format`; unset, each command has its own default (see loggerFor). */
  logFormat: LogFormat | undefined;
  insecureRegistry: string[];
  /** Registry timeouts and retry budget given on the command line or in the environment (unset: the client's defaults). */
  registry: RegistryTimeouts;
  /** One of them came from a flag (not the environment): a daemon's own settings would not honour it. */
  registryFlagsGiven: boolean;
  /** Bound on a layer's uncompressed size, as a multiple of its compressed size (`--max-expansion-ratio`). */
  maxExpansionRatio: number | undefined;
  /** Bytes an unpack leaves free on the store's filesystem (`--disk-reserve`). */
  diskReserve: number | undefined;
  /** Flush each unpacked layer to disk before recording it (`--sync-fs`). */
  syncFs: boolean;
}

export interface RegistryTimeouts {
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  retryBudgetMs?: number;
}

/** Exit code of a command that failed without a HostpullError to say otherwise. */
export const EXIT_FAILURE = 1;
/** Exit code of a command line commander refuses: the same as a USAGE error's. */
export const EXIT_USAGE = errorRow('USAGE').exit;

export function globalOptions(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals() as Record<string, unknown>;
  const level = String(o.logLevel ?? DEFAULT_LOG_LEVEL);
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new HostpullError('USAGE', `--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  return {
    root: String(o.root ?? defaultRoot()),
    server: (o.server as string | undefined) ?? process.env.HOSTPULL_SERVER ?? undefined,
    namespace: String(o.namespace ?? process.env.HOSTPULL_NAMESPACE ?? DEFAULT_NAMESPACE),
    logLevel: level as LogLevel,
    logFormat: o.logFormat as LogFormat | undefined,
    insecureRegistry: (o.insecureRegistry as string[] | undefined) ?? [],
    registry: registryTimeouts(o),
    registryFlagsGiven: ['registryHeadersTimeout', 'registryIdleTimeout', 'registryRetryBudget'].some((k) => cmd.getOptionValueSourceWithGlobals(k) === 'cli'),
    maxExpansionRatio: o.maxExpansionRatio as number | undefined,
    diskReserve: o.diskReserve as number | undefined,
    syncFs: o.syncFs === true,
  };
}

/** Values commander already parsed (cli/options.ts): milliseconds; unset flags stay unset. */
function registryTimeouts(o: Record<string, unknown>): RegistryTimeouts {
  const out: RegistryTimeouts = {};
  if (typeof o.registryHeadersTimeout === 'number') out.headersTimeoutMs = o.registryHeadersTimeout;
  if (typeof o.registryIdleTimeout === 'number') out.bodyTimeoutMs = o.registryIdleTimeout;
  if (typeof o.registryRetryBudget === 'number') out.retryBudgetMs = o.registryRetryBudget;
  return out;
}

/**
 * The command's logger. Its lines are text unless `--log-format` says otherwise, or the command
 * runs as a service (`daemon`, `serve`: `defaultFormat` {@link serviceLogFormat}).
 */
export function loggerFor(opts: GlobalOptions, defaultFormat: LogFormat = 'text'): Logger {
  return createLogger(opts.logLevel, 'hostpull', opts.logFormat ?? defaultFormat);
}

/**
 * A service's lines are JSON where a journal or a log collector reads them (systemd gives it no
 * terminal), and text for a person who started it in a terminal, as `hostpull run` writes them.
 */
export function serviceLogFormat(): LogFormat {
  return process.stderr.isTTY ? 'text' : 'json';
}

/** An error as the CLI shows it: `hostpull: message` and its hint, on stderr. */
export function printError(err: unknown): void {
  process.stderr.write(`hostpull: ${errorText(err)}\n`);
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
      process.exitCode = exitCodeOf(err);
    }
  };
}

/** The exit code of a command that failed with `err`: its code's, or 128+signal when Ctrl-C or a kill ended it (130, 143). */
export function exitCodeOf(err: unknown): number {
  const sig = interruptSignal(err);
  return sig ? signalExitCode(sig) : isHostpullError(err) ? errorRow(err.code).exit : EXIT_FAILURE;
}

/** A usage error (exit code 2). */
export function usageError(message: string, hint?: string): HostpullError {
  return new HostpullError('USAGE', message, hint ? { hint } : {});
}

/** Collects a repeatable option (`-e A=1 -e B=2`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `-t`: a usage error unless stdin is a terminal, checked before anything is pulled or looked up. */
export function checkTtyFlag(tty: boolean | undefined): void {
  if (tty && process.stdin.isTTY !== true) throw usageError('-t: stdin is not a terminal', 'run without -t, or from an interactive terminal');
}
