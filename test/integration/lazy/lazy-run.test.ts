/**
 * `hostpull run --lazy` through real parts: CNCF registry, `hostpull serve`, FUSE (fuse-native),
 * kernel overlayfs and runc.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.js';
import { startLazyEnv, type LazyEnv } from './lazy-env.js';

const exec = promisify(execFile);
let env: LazyEnv;

beforeAll(async () => {
  env = await startLazyEnv({ 'TOOLA1.0': 3 * 1024 * 1024, 'TOOLB1.0': 1024 * 1024 });
}, 240_000);

afterAll(async () => {
  await env?.close();
});

describe('hostpull run --lazy', () => {
  it('runs a composite of seekable packages before its layers arrived', async () => {
    const root = join(env.work, 'node1');
    const r = await runCli(['--root', root, '--server', env.serverHost, 'run', '--lazy', 'TOOLA1.0-TOOLB1.0', '--', '/bin/sh', '-c', 'toola; toolb']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('toola says hi\ntoola small file\ntoolb says hi\ntoolb small file\n');
    const stats = await runCli(['--root', root, 'stats', '--json', '--no-daemon']);
    console.log(stats.stdout);
    const { stdout } = await exec('sh', ['-c', `grep -c hostpull-lazy /proc/self/mountinfo || true`]);
    expect(stdout.trim()).toBe('0');
  }, 120_000);
});
