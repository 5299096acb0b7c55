import { createRequire } from 'node:module';
import type { LogFn, Logger as PinoLogger } from 'pino';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What hostpull logs through: pino's interface, the part of it we use. */
export interface Logger {
  readonly level: string;
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

const LEVEL_VALUES: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

/**
 * Structured logs go to stderr (fd 2) so stdout stays clean for command output and `--json`.
 * Created once in the composition root (cli/main.ts, daemon, server) and passed down.
 *
 * pino itself is loaded at the first line logged at an enabled level: loading it cost ~25-30 ms
 * of CPU, and a command at the default level (warn) that goes well logs nothing.
 */
export function createLogger(level: LogLevel = 'warn', name = 'hostpull'): Logger {
  let real: PinoLogger | undefined;
  const pinoLogger = (): PinoLogger => {
    if (!real) {
      const pino = createRequire(import.meta.url)('pino') as typeof import('pino');
      real = pino.pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
    }
    return real;
  };
  const threshold = LEVEL_VALUES[level];
  const at = (l: Exclude<LogLevel, 'silent'>): LogFn =>
    ((...args: Parameters<LogFn>) => {
      if (LEVEL_VALUES[l] >= threshold) pinoLogger()[l](...args);
    }) as LogFn;
  return {
    level,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: (bindings) => pinoLogger().child(bindings),
  };
}

/** A logger that drops everything, for library callers and tests that pass none. */
export function silentLogger(): Logger {
  return createLogger('silent');
}
