import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../../src/cli/program.js';
import { REPO_ROOT, runCli } from '../../helpers/cli.js';

const argv = (...args: string[]) => ['node', 'hostpull', ...args];
const verbs = async (...args: string[]) => (await buildProgram(argv(...args))).commands.map((c) => c.name());

describe('buildProgram: which verbs a command line loads', () => {
  it('loads none for --version or -V alone, also after a global option', async () => {
    expect(await verbs('--version')).toEqual([]);
    expect(await verbs('-V')).toEqual([]);
    expect(await verbs('--root', '/tmp/x', '--version')).toEqual([]);
  });

  it('loads every verb for help, with or without --version, and only the named one for a verb', async () => {
    const all = await verbs();
    expect(all).toContain('pull');
    expect(all).toContain('daemon');
    expect(await verbs('--help')).toEqual(all);
    expect(await verbs('--version', '--help')).toEqual(all);
    expect(await verbs('images', '--version')).toEqual(['images']);
  });
});

describe('hostpull --version', () => {
  it("prints the package's version and exits 0", async () => {
    const { version } = JSON.parse(readFileSync(`${REPO_ROOT}/package.json`, 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag]);
      expect(r.stdout.trim()).toBe(version);
      expect(r.code).toBe(0);
    }
  });
});

describe('boolean flags from the environment', () => {
  it('are on for any value but 0, false, no, off or empty, which leave them off', async () => {
    const { Command, Option } = await import('commander');
    const { honourOffValues } = await import('../../../src/cli/options.js');
    const seen = async (value: string | undefined, args: string[] = []) => {
      const saved = process.env['HOSTPULL_TEST_FLAG'];
      if (value === undefined) delete process.env['HOSTPULL_TEST_FLAG'];
      else process.env['HOSTPULL_TEST_FLAG'] = value;
      try {
        let got: unknown;
        const program = new Command().exitOverride().addOption(new Option('--flag').env('HOSTPULL_TEST_FLAG'));
        program.hook('preAction', (_p, action) => honourOffValues(action));
        program.command('verb').action((_o, cmd: InstanceType<typeof Command>) => (got = cmd.optsWithGlobals()['flag'] ?? false));
        await program.parseAsync(['verb', ...args], { from: 'user' });
        return got;
      } finally {
        if (saved === undefined) delete process.env['HOSTPULL_TEST_FLAG'];
        else process.env['HOSTPULL_TEST_FLAG'] = saved;
      }
    };
    expect(await seen(undefined)).toBe(false);
    for (const on of ['1', 'true', 'yes']) expect(await seen(on), on).toBe(true);
    for (const off of ['0', 'false', 'FALSE', 'no', 'off', '']) expect(await seen(off), off).toBe(false);
    // The flag on the command line wins over the environment.
    expect(await seen('0', ['--flag'])).toBe(true);
  });
});
