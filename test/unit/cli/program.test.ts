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
