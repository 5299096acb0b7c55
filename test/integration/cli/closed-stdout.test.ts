/**
 * A CLI whose reader has gone (`hostpull --help | head -1`, `hostpull images | true`) finishes
 * quietly with its own exit status. It once died of an unhandled EPIPE with a Node stack trace.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_ENTRY } from '../../helpers/cli.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

const temps: string[] = [];
afterAll(async () => {
  for (const d of temps) await removeTempDir(d);
});

/** Runs the CLI with its stdout piped into `true`, which exits before the CLI writes: every write meets a closed pipe. */
async function intoClosedPipe(args: string[]): Promise<{ status: number; stderr: string }> {
  const dir = await makeTempDir('closed-stdout');
  temps.push(dir);
  const err = join(dir, 'stderr');
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('bash', ['-c', `"${process.execPath}" "${CLI_ENTRY}" ${quoted} 2>"${err}" | true; exit \${PIPESTATUS[0]}`], { encoding: 'utf8' });
  return { status: r.status ?? -1, stderr: readFileSync(err, 'utf8') };
}

describe('stdout closed by its reader', () => {
  it('--help exits 0 without a word on stderr', async () => {
    expect(await intoClosedPipe(['--help'])).toEqual({ status: 0, stderr: '' });
  });

  it('a verb that prints a table exits 0 and its store is left consistent', async () => {
    const dir = await makeTempDir('closed-stdout-root');
    temps.push(dir);
    expect(await intoClosedPipe(['--root', join(dir, 'root'), 'images', '--no-daemon'])).toEqual({ status: 0, stderr: '' });
    expect(await intoClosedPipe(['--root', join(dir, 'root'), 'stats', '--json', '--no-daemon'])).toEqual({ status: 0, stderr: '' });
  });
});
