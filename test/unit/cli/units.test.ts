/**
 * One reading of durations and sizes for every flag. Two parsers once disagreed: `gc --min-age 30`
 * meant 30 ms and `serve --cache-ttl 30` meant 30 s. Now a duration needs a unit everywhere (only
 * `0` stands alone) and a size defaults to bytes everywhere.
 */
import type { Command, Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../../src/cli/program.js';
import { parseDuration, parseSize } from '../../../src/util/units.js';
import { runCli } from '../../helpers/cli.js';

/** Every command with the options it declares itself, the root program included. */
function allCommands(cmd: Command, path: string[] = []): Array<{ path: string[]; cmd: Command }> {
  return [{ path, cmd }, ...cmd.commands.flatMap((c) => allCommands(c, [...path, c.name()]))];
}

const program = await buildProgram();
const withOptions = allCommands(program).flatMap(({ path, cmd }) => cmd.options.map((option) => ({ path, option })));
const durationFlags = withOptions.filter((o) => o.option.flags.includes('<duration>'));
const sizeFlags = withOptions.filter((o) => o.option.flags.includes('<size>'));

/** The value a flag gets on the real program (parsing only: no action runs). */
async function parsed(path: string[], option: Option, text: string): Promise<unknown> {
  const p = await buildProgram();
  for (const { cmd } of allCommands(p)) cmd.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  let cmd = p;
  for (const name of path) cmd = cmd.commands.find((c) => c.name() === name)!;
  cmd.parseOptions([option.long!, text]);
  return cmd.getOptionValue(option.attributeName());
}

describe('durations', () => {
  it('read a unit, and refuse a bare number other than 0', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('0')).toBe(0);
    expect(() => parseDuration('30', '--x')).toThrow(/--x "30" has no unit/);
    expect(() => parseDuration('soon', '--x')).toThrow(/--x "soon" is not a duration/);
    expect(() => parseDuration('-1s')).toThrow(/is not a duration/);
  });

  it('every duration flag of every command reads the same text as the same length of time', async () => {
    expect(durationFlags.map((f) => f.option.long)).toEqual(expect.arrayContaining(['--min-age', '--cache-ttl', '--gc-min-age', '--gc-interval', '--stop-timeout', '--registry-retry-budget']));
    for (const { path, option } of durationFlags) {
      expect(await parsed(path, option, '30s'), `${path.join(' ')} ${option.long}`).toBe(30_000);
      expect(await parsed(path, option, '2m'), `${path.join(' ')} ${option.long}`).toBe(120_000);
      await expect(parsed(path, option, '30'), `${path.join(' ')} ${option.long}`).rejects.toThrow(/has no unit/);
      expect(option.description, `${option.long} shows the form in --help`).toContain('30s, 10m, 1h');
    }
  });

  it('`gc --min-age 30` and `serve --cache-ttl 30` are refused alike through the CLI, and mean the same with a unit', async () => {
    const gc = await runCli(['gc', '--min-age', '30', '--no-daemon']);
    const serve = await runCli(['serve', '--cache-ttl', '30']);
    for (const [r, flag] of [
      [gc, '--min-age'],
      [serve, '--cache-ttl'],
    ] as const) {
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${flag} "30" has no unit; a duration is a number with a unit: 500ms, 30s, 10m, 1h`);
    }
    const gcCmd = durationFlags.find((f) => f.option.long === '--min-age')!;
    const serveCmd = durationFlags.find((f) => f.option.long === '--cache-ttl')!;
    expect(await parsed(gcCmd.path, gcCmd.option, '30s')).toBe(await parsed(serveCmd.path, serveCmd.option, '30s'));
  });
});

describe('sizes', () => {
  it('default to bytes, and read binary units', () => {
    expect(parseSize('1234')).toBe(1234);
    expect(parseSize('1k')).toBe(1024);
    expect(parseSize('512M')).toBe(512 * 1024 ** 2);
    expect(parseSize('10GB')).toBe(10 * 1024 ** 3);
    expect(() => parseSize('lots', '--x')).toThrow(/--x: invalid size "lots"/);
  });

  it('every size flag of every command reads the same text as the same number of bytes', async () => {
    expect(sizeFlags.map((f) => f.option.long)).toEqual(expect.arrayContaining(['--max-store-size', '--disk-reserve']));
    for (const { path, option } of sizeFlags) {
      expect(await parsed(path, option, '2G'), option.long).toBe(2 * 1024 ** 3);
      expect(await parsed(path, option, '30'), option.long).toBe(30);
      await expect(parsed(path, option, 'lots'), option.long).rejects.toThrow(/invalid size/);
      expect(option.description, `${option.long} shows the form in --help`).toContain('512M, 10G');
    }
  });
});
