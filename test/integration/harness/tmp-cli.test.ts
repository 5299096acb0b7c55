import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_ENTRY, CLI_LAUNCHER, REPO_ROOT, runCli, spawnCli } from '../../helpers/cli.js';
import { makeTempDir, mountsBelow, removeTempDir, useTempDir } from '../../helpers/tmp.js';

describe('temp dirs', () => {
  const tmp = useTempDir('harness');
  let fromPreviousTest = '';

  it('removeTempDir unmounts nested mounts first, then removes the tree', async () => {
    const dir = await makeTempDir('harness-mount');
    try {
      await mkdir(join(dir, 'a/b'), { recursive: true });
      const m1 = spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', join(dir, 'a')]);
      expect(m1.status, m1.stderr?.toString()).toBe(0);
      await mkdir(join(dir, 'a/b'));
      const m2 = spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', join(dir, 'a/b')]);
      expect(m2.status, m2.stderr?.toString()).toBe(0);
      await writeFile(join(dir, 'a/b/file'), 'x');
      expect(await mountsBelow(dir)).toEqual([join(dir, 'a/b'), join(dir, 'a')]);
    } finally {
      await removeTempDir(dir);
    }
    expect(await mountsBelow(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });

  it('useTempDir removes dirs made in a test after that test', async () => {
    fromPreviousTest = await tmp();
    await mkdir(join(fromPreviousTest, 'x/y'), { recursive: true });
    expect(existsSync(fromPreviousTest)).toBe(true);
    expect(fromPreviousTest).toMatch(/hostpull-harness-/);
  });

  it('(the previous test\'s dir is gone)', () => {
    expect(fromPreviousTest).not.toBe('');
    expect(existsSync(fromPreviousTest)).toBe(false);
  });
});

describe('cli runner', () => {
  const tmp = useTempDir('cli');

  it('resolves the CLI path from the repository root', () => {
    expect(CLI_ENTRY).toBe(join(REPO_ROOT, 'dist/cli/main.js'));
    expect(CLI_LAUNCHER).toBe(join(REPO_ROOT, 'dist/cli/hostpull'));
    expect(existsSync(join(REPO_ROOT, 'package.json'))).toBe(true);
  });

  it('runs a script with args, env and stdin, and reports its exit code and output', async () => {
    const dir = await tmp();
    const entry = join(dir, 'fake.mjs');
    await writeFile(
      entry,
      `let input = ''; process.stdin.on('data', (d) => (input += d)); process.stdin.on('end', () => {
        process.stdout.write(JSON.stringify({ args: process.argv.slice(2), env: process.env.HP_TEST, input }));
        process.stderr.write('warn');
        process.exit(3);
      });`,
    );
    const r = await runCli(['pull', 'x:y'], { entry, env: { HP_TEST: 'v' }, input: 'hello' });
    expect(r).toMatchObject({ code: 3, signal: null, stderr: 'warn', timedOut: false });
    expect(JSON.parse(r.stdout)).toEqual({ args: ['pull', 'x:y'], env: 'v', input: 'hello' });
  });

  it('kills on timeout, and spawnCli gives a killable child', async () => {
    const dir = await tmp();
    const entry = join(dir, 'hang.mjs');
    await writeFile(entry, `process.stdout.write('ready\\n'); setInterval(() => {}, 1000);`);
    const r = await runCli([], { entry, timeoutMs: 500 });
    expect(r).toMatchObject({ code: null, signal: 'SIGKILL', timedOut: true });

    const child = spawnCli([], { entry });
    await new Promise((resolve) => child.stdout!.once('data', resolve));
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal)));
    child.kill('SIGTERM');
    expect(await exited).toBe('SIGTERM');
  });

  it('says to build first when the entry does not exist', () => {
    expect(() => spawnCli([], { entry: '/nonexistent/main.js' })).toThrow(/does not exist/);
  });
});
