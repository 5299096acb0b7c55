import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileInRoot, resolveInRoot } from '../../../src/runtime/resolve-in-root.js';

let dir: string;
let root: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hostpull-resolve-'));
  root = join(dir, 'root');
  await mkdir(join(root, 'etc'), { recursive: true });
  await mkdir(join(root, 'usr', 'lib'), { recursive: true });
  await writeFile(join(dir, 'secret'), 'host secret\n');
  await writeFile(join(root, 'usr', 'lib', 'os-release'), 'inside\n');
  await symlink('../usr/lib/os-release', join(root, 'etc', 'os-release'));
  await symlink('/usr/lib', join(root, 'lib'));
  await symlink(join(dir, 'secret'), join(root, 'etc', 'abs-escape'));
  await symlink('../../../../../../../../../../' + join(dir, 'secret'), join(root, 'etc', 'rel-escape'));
  await symlink('loop-b', join(root, 'etc', 'loop-a'));
  await symlink('loop-a', join(root, 'etc', 'loop-b'));
  execFileSync('mkfifo', [join(root, 'etc', 'fifo')]);
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('resolveInRoot', () => {
  it('follows relative and absolute symlinks inside the root', () => {
    expect(resolveInRoot(root, '/etc/os-release')).toBe('/usr/lib/os-release');
    expect(resolveInRoot(root, '/lib/os-release')).toBe('/usr/lib/os-release');
    expect(resolveInRoot(root, '/../../etc/./os-release')).toBe('/usr/lib/os-release');
    expect(resolveInRoot(root, '/missing/../x/y')).toBe('/x/y');
  });
  it('keeps escaping symlinks inside the root', () => {
    expect(resolveInRoot(root, '/etc/abs-escape')).toBe(join(dir, 'secret'));
    expect(resolveInRoot(root, '/etc/rel-escape')).toBe(join(dir, 'secret'));
  });
  it('refuses symlink loops', () => {
    expect(() => resolveInRoot(root, '/etc/loop-a')).toThrow(expect.objectContaining({ code: 'PATH_LOOP' }));
  });
});

describe('readFileInRoot', () => {
  it('reads through in-root symlinks and never the host file', () => {
    expect(readFileInRoot(root, '/etc/os-release')).toBe('inside\n');
    expect(readFileInRoot(root, '/etc/abs-escape')).toBeUndefined();
    expect(readFileInRoot(root, '/etc/rel-escape')).toBeUndefined();
    expect(readFileInRoot(root, '/etc/nothing')).toBeUndefined();
  });
  it('refuses a non-regular file instead of blocking on it', () => {
    expect(() => readFileInRoot(root, '/etc/fifo')).toThrow(expect.objectContaining({ code: 'ROOTFS_INVALID' }));
  });
});
