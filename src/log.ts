import { createRequire } from 'node:module';
import type { LogFn, Logger as PinoLogger } from 'pino';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** The level of every command that is not told otherwise (`--log-level`). */
export const DEFAULT_LOG_LEVEL: LogLevel = 'warn';

/**
 * How a log line looks on stderr: `text` for a person at a terminal (`hostpull: warning: … key=value`),
 * `json` (one pino object per line) for a service whose lines a journal or a collector reads.
 */
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export function isLogFormat(v: unknown): v is LogFormat {
  return (LOG_FORMATS as readonly unknown[]).includes(v);
}

/** What hostpull logs through: pino's interface, the part of it we use. */
export interface Logger {
  readonly level: string;
  /** The format of its lines, for a helper process that logs to the same stderr. */
  readonly format: LogFormat;
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
 * Log lines go to stderr (fd 2) so stdout stays clean for command output and `--json`: pino's
 * JSON objects, or (`format` text) the same lines worded for a person. Created once in the
 * composition root (cli/main.ts, daemon, server) and passed down.
 *
 * pino itself is loaded at the first line logged at an enabled level: loading it cost ~25-30 ms
 * of CPU, and a command at the default level (warn) that goes well logs nothing.
 */
export function createLogger(level: LogLevel = DEFAULT_LOG_LEVEL, name = 'hostpull', format: LogFormat = 'json'): Logger {
  let real: PinoLogger | undefined;
  const pinoLogger = (): PinoLogger => {
    if (!real) {
      const pino = createRequire(import.meta.url)('pino') as typeof import('pino');
      // Synchronous writes to fd 2 (which wait out a full pipe's EAGAIN), in order with the
      // CLI's own writes to stderr.
      const stderr = pino.destination({ fd: 2, sync: true });
      // Text is pino's own line, reworded as it is written: its serializers, bindings and levels
      // stay pino's. Progress bars may take it meanwhile (setTextLogWriter).
      const text = {
        write: (line: string): void => {
          if (textWriter) textWriter(textLine(line));
          else stderr.write(textLine(line));
        },
      };
      real = pino.pino({ name, level, base: { pid: process.pid } }, format === 'text' ? text : stderr);
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
    format,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: (bindings) => pinoChild(pinoLogger().child(bindings), format),
  };
}

/** A pino child logger as a Logger (its children too), with the format of the logger it came from. */
function pinoChild(p: PinoLogger, format: LogFormat): Logger {
  return {
    level: p.level,
    format,
    trace: p.trace.bind(p),
    debug: p.debug.bind(p),
    info: p.info.bind(p),
    warn: p.warn.bind(p),
    error: p.error.bind(p),
    fatal: p.fatal.bind(p),
    child: (bindings) => pinoChild(p.child(bindings), format),
  };
}

let textWriter: ((text: string) => void) | undefined;

/**
 * Where text log lines go (each ends in a newline) while something else draws on stderr: progress
 * bars (cli/progress.ts) take them, to write above the bars, rather than have a line written into
 * the middle of a redraw. `undefined` gives them back to stderr. JSON lines are for a collector,
 * not a terminal, and go to stderr always.
 */
export function setTextLogWriter(writer: ((text: string) => void) | undefined): void {
  textWriter = writer;
}

const LEVEL_WORDS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warning', 50: 'error', 60: 'fatal' };
/** Fields every pino line has, or that the text line says otherwise (name and level lead it). */
const NOT_SHOWN = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg']);

/**
 * A pino JSON line as text: `hostpull: warning: <msg> key=value …`, the way the CLI words its
 * errors, then the line's fields as logfmt (a value with a space or a quote is quoted; an error
 * is its message). A line that is not pino's JSON is written as it came.
 */
export function textLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const level = LEVEL_WORDS[o.level as number] ?? String(o.level);
  const fields = Object.entries(o)
    .filter(([k, v]) => !NOT_SHOWN.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${logfmtValue(v)}`);
  const words = [typeof o.msg === 'string' && o.msg !== '' ? o.msg : undefined, ...fields].filter((w) => w !== undefined);
  return `${typeof o.name === 'string' ? o.name : 'hostpull'}: ${level}: ${words.join(' ')}\n`;
}

function logfmtValue(v: unknown): string {
  // pino serializes an Error as { type, message, stack }: the message says it.
  const text = typeof v === 'object' && v !== null && typeof (v as { message?: unknown }).message === 'string' ? (v as { message: string }).message : typeof v === 'string' ? v : JSON.stringify(v);
  return /^[^\s"=\\]+$/.test(text) ? text : JSON.stringify(text);
}

/** A logger that drops everything, for library callers and tests that pass none. */
export function silentLogger(): Logger {
  return createLogger('silent');
}
