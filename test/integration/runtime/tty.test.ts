import { spawn, spawnSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makeBusyboxRootfs } from './busybox-rootfs.js';

// runc's foreground run with process.terminal opens our controlling terminal (/dev/tty), which a
// test runner does not have: util-linux `script` gives the fixture a real pty to run under.
let dir: string;
let rootfs: string;
const id = `hp-tty-${process.pid}`;

beforeAll(async () => {
  ({ dir, rootfs } = await makeBusyboxRootfs('hostpull-tty-'));
});
afterAll(async () => {
  spawnSync('runc', [`--root=${join(dir, 'state')}`, 'delete', '--force', id], { stdio: 'ignore' });
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('runs a terminal container on a real pty: tty, TERM, window size and exit code', async () => {
  const viteNode = resolve('node_modules/.bin/vite-node');
  const fixture = resolve('test/integration/runtime/tty-fixture.ts');
  const cmd = `stty cols 91 rows 27; ${viteNode} ${fixture} ${rootfs} ${join(dir, 'bundle')} ${join(dir, 'state')} ${id}`;
  const child = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
  child.stderr.on('data', (b: Buffer) => (out += b.toString('utf8')));
  const code = await new Promise<number | null>((res) => child.on('close', res));
  expect(out, out).toMatch(/tty=\/dev\/pts\/\d+ xterm size=27 91/);
  const result = /RESULT (\{.*\})/.exec(out);
  expect(result?.[1] && JSON.parse(result[1])).toEqual({ exitCode: 5 });
  expect(code).toBe(0);
});
