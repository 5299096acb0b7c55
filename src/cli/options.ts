import { InvalidArgumentError, Option, type Command } from 'commander';
import { isHostpullError } from '../errors.js';
import { DURATION_FORMAT, parseDuration, parseSize, SIZE_FORMAT } from '../util/index.js';

/**
 * Typed options: every duration, size and number a flag (or its environment variable) takes is
 * read here, by one parser each, when commander parses the command line. A value that does not
 * parse is a usage error (exit 2) that says which flag and what form it wants, the same for every
 * flag; `--help` shows the form next to each option.
 */

interface NumberBounds {
  /** Smallest value allowed (inclusive). */
  min?: number;
  /** The value must be more than this. */
  above?: number;
  /** Largest value allowed (inclusive). */
  max?: number;
}

/**
 * Runs a parser of ours inside commander, whose usage errors must be InvalidArgumentError. An
 * empty value (`HOSTPULL_MAX_STORE_SIZE=` in an environment file) means unset.
 */
function commanderParser<T>(parse: (text: string) => T): (text: string) => T | undefined {
  return (text) => {
    if (text.trim() === '') return undefined;
    try {
      return parse(text);
    } catch (err) {
      if (isHostpullError(err, 'USAGE')) throw new InvalidArgumentError(err.message);
      throw err;
    }
  };
}

function checkBounds(n: number, text: string, what: string, bounds: NumberBounds): number {
  const wrong = (range: string) => new InvalidArgumentError(`${what} ${JSON.stringify(text)} is out of range: it must be ${range}`);
  if (bounds.above !== undefined && n <= bounds.above) throw wrong(`more than ${bounds.above}`);
  if ((bounds.min !== undefined && n < bounds.min) || (bounds.max !== undefined && n > bounds.max)) {
    throw wrong(bounds.max === undefined ? `at least ${bounds.min}` : bounds.min === undefined ? `at most ${bounds.max}` : `from ${bounds.min} to ${bounds.max}`);
  }
  return n;
}

function nameOf(flags: string): string {
  return /--[a-z0-9-]+/.exec(flags)?.[0] ?? flags;
}

/**
 * A duration flag (`<duration>`): its value is milliseconds. `defaultText` is the default as the
 * user would write it (`'10m'`); it is parsed like any value.
 */
export function durationOption(flags: string, description: string, options: NumberBounds & { defaultText?: string } = {}): Option {
  const what = nameOf(flags);
  const parse = commanderParser((text: string) => checkBounds(parseDuration(text, what), text, what, options));
  const option = new Option(flags, `${description} [duration: ${DURATION_FORMAT}]`).argParser(parse);
  return options.defaultText === undefined ? option : option.default(parseDuration(options.defaultText), options.defaultText);
}

/** A size flag (`<size>`): its value is bytes. `defaultText` is the default as the user would write it (`'1M'`). */
export function sizeOption(flags: string, description: string, options: { defaultText?: string } = {}): Option {
  const what = nameOf(flags);
  const option = new Option(flags, `${description} [size: ${SIZE_FORMAT}]`).argParser(commanderParser((text: string) => parseSize(text, what)));
  return options.defaultText === undefined ? option : option.default(parseSize(options.defaultText), options.defaultText);
}

/** A number flag; `integer` refuses fractions. */
export function numberOption(flags: string, description: string, options: NumberBounds & { integer?: boolean; defaultValue?: number } = {}): Option {
  const what = nameOf(flags);
  const parse = (text: string): number => {
    const n = text.trim() === '' ? Number.NaN : Number(text);
    if (!Number.isFinite(n) || (options.integer && !Number.isInteger(n))) {
      throw new InvalidArgumentError(`${what} ${JSON.stringify(text)} is not ${options.integer ? 'a whole number' : 'a number'}`);
    }
    return checkBounds(n, text, what, options);
  };
  const option = new Option(flags, description).argParser(parse);
  return options.defaultValue === undefined ? option : option.default(options.defaultValue);
}

/** Values of an environment variable that turn a flag off rather than on. */
const OFF = new Set(['0', 'false', 'no', 'off', '']);

/**
 * commander turns a boolean flag on when its environment variable is set, whatever the value:
 * HOSTPULL_SYNC_FS=0 meant --sync-fs. For the command about to run and the commands above it,
 * a flag that took its value from the environment is off when that value is 0, false, no, off
 * or empty, as an administrator writing `=0` in a unit file means.
 */
export function honourOffValues(action: Command): void {
  for (let cmd: Command | null = action; cmd; cmd = cmd.parent) {
    for (const o of cmd.options) {
      if (!o.envVar || !o.isBoolean() || o.negate) continue;
      const key = o.attributeName();
      if (cmd.getOptionValueSource(key) === 'env' && OFF.has((process.env[o.envVar] ?? '').trim().toLowerCase())) cmd.setOptionValueWithSource(key, false, 'env');
    }
  }
}
