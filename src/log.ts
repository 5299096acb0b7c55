import { pino, type Logger } from 'pino';

export type { Logger };
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Structured logs go to stderr (fd 2) so stdout stays clean for command output and `--json`.
 * Created once in the composition root (cli/main.ts, daemon, server) and passed down.
 */
export function createLogger(level: LogLevel = 'warn', name = 'hostpull'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}

/** A logger that drops everything, for library callers and tests that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
