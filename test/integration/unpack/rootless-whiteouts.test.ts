import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lgetxattr } from '../../../src/native/index.js';

// An unprivileged apply: opaque dirs get user.overlay.opaque=y, whiteouts are char 0:0 where the
// kernel lets an unprivileged user create them (Linux ≥ 5.8), else overlayfs's xattr whiteouts
// (zero-size file + user.overlay.whiteout, parent user.overlay.opaque=x). Proven here through a
// real `userxattr` overlay mount.

const NOBODY = 65534;
let dir: string;
let mnt: string | undefined;
let mounted = false;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hp-unpack-rootless-'));
  chownSync(dir, NOBODY, NOBODY);
});
afterAll(() => {
  if (mounted && mnt) spawnSync('umount', [mnt]);
  rmSync(dir, { recursive: true, force: true });
});

describe('rootless whiteouts', () => {
  it('an unprivileged apply writes xattr whiteouts that a userxattr overlay honours', () => {
    const layer = join(dir, 'layer');
    mkdirSync(layer);
    chownSync(layer, NOBODY, NOBODY);
    const root = resolve(import.meta.dirname, '../../..');
    const child = spawnSync(
      'setpriv',
      [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', process.execPath, join(root, 'node_modules/vite-node/vite-node.mjs'), join(import.meta.dirname, 'rootless-child.ts'), layer],
      { cwd: root, env: { ...process.env, HOME: dir }, encoding: 'utf8', timeout: 30_000 },
    );
    expect(child.status, child.stderr).toBe(0);
    const result = JSON.parse(child.stdout.slice(child.stdout.indexOf('{'))) as { whiteouts: string[]; ownedPaths: string[] };
    expect(result.whiteouts).toEqual(['d/.wh..wh..opq', 'etc/.wh.gone']);
    expect(result.ownedPaths).toEqual(['d/new', 'etc/kept']);

    // Linux ≥ 5.8 lets unprivileged users mknod a 0:0 whiteout; elsewhere the xattr form is used.
    const gone = lstatSync(join(layer, 'etc/gone'));
    if (gone.isCharacterDevice()) {
      expect(gone.rdev).toBe(0);
    } else {
      expect([gone.isFile(), gone.size]).toEqual([true, 0]);
      expect(lgetxattr(join(layer, 'etc/gone'), 'user.overlay.whiteout')).not.toBeNull();
      expect(lgetxattr(join(layer, 'etc'), 'user.overlay.opaque')?.toString()).toBe('x');
    }
    expect(lgetxattr(join(layer, 'd'), 'user.overlay.opaque')?.toString()).toBe('y');
    // No chown to the archive's ids in a rootless store.
    expect(lstatSync(join(layer, 'etc/kept')).uid).toBe(NOBODY);

    const lower = join(dir, 'lower');
    mkdirSync(join(lower, 'etc'), { recursive: true });
    mkdirSync(join(lower, 'd'));
    writeFileSync(join(lower, 'etc/gone'), 'lower');
    writeFileSync(join(lower, 'etc/other'), 'lower');
    writeFileSync(join(lower, 'd/old'), 'lower');
    mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${layer}:${lower},userxattr`, mnt], { encoding: 'utf8' });
    expect(m.status, m.stderr).toBe(0);
    mounted = true;
    expect(readdirSync(join(mnt, 'etc')).sort()).toEqual(['kept', 'other']);
    expect(existsSync(join(mnt, 'etc/gone'))).toBe(false);
    expect(readdirSync(join(mnt, 'd'))).toEqual(['new']);
    expect(readFileSync(join(mnt, 'etc/kept'), 'utf8')).toBe('upper');
  });
});
