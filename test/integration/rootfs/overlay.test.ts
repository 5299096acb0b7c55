// Real overlayfs mounts through the native addon; needs root (CI runs as root).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { HostpullError } from '../../../src/errors.js';
import { constants, lsetxattr, makedev, mknod, mount, overlayMount, syscallErrno } from '../../../src/native/index.js';
import { listMountsUnder, performMount, planOverlay, unmount, unmountAllUnder } from '../../../src/rootfs/index.js';

let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'hostpull-overlay-'));
});

afterEach(() => {
  // Detach whatever a failed test left mounted before deleting, so rm never walks into a mount.
  unmountAllUnder(root, { detach: true });
  rmSync(root, { recursive: true, force: true });
});

/** Creates `<root>/<name>` with the given files (relative path → content). */
function layer(name: string, files: Record<string, string> = {}): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return syscallErrno(err) ?? (err as NodeJS.ErrnoException).code;
  }
  return undefined;
}

describe('overlayMount (new mount API)', () => {
  it('merges three lower dirs and sends writes to the upper dir', () => {
    const a = layer('a', { 'opt/a/file': 'A' });
    const b = layer('b', { 'opt/b/file': 'B' });
    const c = layer('c', { 'opt/c/file': 'C' });
    const upper = layer('upper');
    const work = layer('work');
    const target = layer('mnt');

    overlayMount(target, { lowerdirs: [a, b, c], upperdir: upper, workdir: work, options: ['index=off'] });
    try {
      expect(readdirSync(join(target, 'opt')).sort()).toEqual(['a', 'b', 'c']);
      expect(readFileSync(join(target, 'opt/b/file'), 'utf8')).toBe('B');
      writeFileSync(join(target, 'opt/new'), 'N');
      writeFileSync(join(target, 'opt/a/file'), 'A2');
      expect(readFileSync(join(upper, 'opt/new'), 'utf8')).toBe('N');
      expect(readFileSync(join(upper, 'opt/a/file'), 'utf8')).toBe('A2');
      expect(readFileSync(join(a, 'opt/a/file'), 'utf8')).toBe('A');
      const [info] = listMountsUnder(target);
      expect(info?.fsType).toBe('overlay');
    } finally {
      unmount(target);
    }
    expect(readdirSync(target)).toEqual([]);
  });

  it('mounts a read-only overlay that refuses writes with EROFS', () => {
    const a = layer('a', { 'x': '1' });
    const b = layer('b', { 'y': '2' });
    const upper = layer('upper');
    const work = layer('work');
    const target = layer('mnt');
    overlayMount(target, { lowerdirs: [a, b], upperdir: upper, workdir: work, readonly: true });
    try {
      expect(readdirSync(target).sort()).toEqual(['x', 'y']);
      expect(errnoOf(() => writeFileSync(join(target, 'z'), ''))).toBe('EROFS');
    } finally {
      unmount(target);
    }
  });

  it('names the failing parameter and the kernel reason', () => {
    const a = layer('a');
    const target = layer('mnt');
    let err: unknown;
    try {
      overlayMount(target, { lowerdirs: [a, a], options: ['no_such_option=1'] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HostpullError);
    const e = err as HostpullError;
    expect(e.code).toBe('SYSCALL_FAILED');
    expect(e.message).toContain('no_such_option=1');
    expect(e.message).toContain("Unknown parameter 'no_such_option'");
    expect(e.details).toMatchObject({ errno: 'EINVAL', syscall: 'fsconfig', key: 'no_such_option', value: '1' });
    expect(listMountsUnder(target)).toEqual([]);
  });

  it('takes layer paths beyond the 256-byte fsconfig string limit (passed as O_PATH fds)', () => {
    const long = layer(join('long', ...Array.from({ length: 6 }, () => 'd'.repeat(50))), { 'deep': 'D' });
    expect(long.length).toBeGreaterThan(300);
    const target = layer('mnt');
    overlayMount(target, { lowerdirs: [layer('a', { 'top': 'T' }), long] });
    try {
      expect(readdirSync(target).sort()).toEqual(['deep', 'top']);
    } finally {
      unmount(target);
    }
  });

  it('names a missing lower dir', () => {
    const target = layer('mnt');
    const missing = join(root, 'missing-layer');
    let err: unknown;
    try {
      overlayMount(target, { lowerdirs: [layer('a'), missing] });
    } catch (e) {
      err = e;
    }
    expect((err as HostpullError).details).toMatchObject({ errno: 'ENOENT', key: 'lowerdir+', path: missing });
    expect((err as HostpullError).message).toContain(`lowerdir+=${missing}`);
  });
});

describe('whiteouts and opaque dirs', () => {
  it('hides a lower file behind a whiteout (char 0:0) in a higher layer', () => {
    const base = layer('base', { 'etc/gone': 'old', 'etc/kept': 'k' });
    const top = layer('top');
    mkdirSync(join(top, 'etc'));
    mknod(join(top, 'etc/gone'), constants.S_IFCHR, makedev(0, 0));
    const target = layer('mnt');
    overlayMount(target, { lowerdirs: [top, base] });
    try {
      expect(readdirSync(join(target, 'etc'))).toEqual(['kept']);
      expect(existsSync(join(target, 'etc/gone'))).toBe(false);
    } finally {
      unmount(target);
    }
  });

  it('an opaque directory hides the lower directory contents but keeps its own', () => {
    const base = layer('base', { 'd/lower-only': 'l', 'other': 'o' });
    const top = layer('top', { 'd/top-only': 't' });
    lsetxattr(join(top, 'd'), 'trusted.overlay.opaque', Buffer.from('y'));
    const target = layer('mnt');
    overlayMount(target, { lowerdirs: [top, base] });
    try {
      expect(readdirSync(join(target, 'd'))).toEqual(['top-only']);
      expect(readdirSync(target).sort()).toEqual(['d', 'other']);
    } finally {
      unmount(target);
    }
  });
});

describe('planOverlay + performMount', () => {
  it('mounts 130 layers with ~100-character paths through lowerdir+', () => {
    const layersDir = join(root, 'layers', 'x'.repeat(30));
    const lowerdirs: string[] = [];
    for (let i = 0; i < 130; i++) {
      const dir = join(layersDir, `layer-${String(i).padStart(3, '0')}-${'p'.repeat(100 - layersDir.length - 11)}`);
      mkdirSync(join(dir, 'opt'), { recursive: true });
      writeFileSync(join(dir, 'opt', `f${i}`), String(i));
      lowerdirs.push(dir);
    }
    expect(lowerdirs[0]!.length).toBe(100);
    const target = layer('mnt');
    const m = planOverlay({ lowerdirs, target, readonly: true, options: ['nosuid', 'nodev', 'userxattr'] });
    expect(m.type === 'overlay' && m.mode).toBe('lowerdir+');
    performMount(m);
    try {
      const [info] = listMountsUnder(target);
      expect(info?.options.split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));
      expect(info?.superOptions.split(',')).toContain('userxattr');
      const names = readdirSync(join(target, 'opt'));
      expect(names).toHaveLength(130);
      expect(readFileSync(join(target, 'opt', 'f129'), 'utf8')).toBe('129');
      expect(errnoOf(() => writeFileSync(join(target, 'opt', 'new'), ''))).toBe('EROFS');
    } finally {
      unmount(target);
    }
  });

  it('mounts a small overlay with the classic option string, writable', () => {
    const a = layer('a', { 'a': '1' });
    const b = layer('b', { 'b': '2' });
    const upper = layer('upper');
    const work = layer('work');
    const target = layer('mnt');
    const m = planOverlay({ lowerdirs: [a, b], upperdir: upper, workdir: work, target, options: ['index=off', 'nodev'] });
    expect(m.type === 'overlay' && m.mode).toBe('option-string');
    performMount(m);
    try {
      expect(readdirSync(target).sort()).toEqual(['a', 'b']);
      writeFileSync(join(target, 'c'), '3');
      expect(readFileSync(join(upper, 'c'), 'utf8')).toBe('3');
      const [info] = listMountsUnder(target);
      expect(info?.superOptions).toContain(`lowerdir=${a}:${b}`);
      expect(info?.options.split(',')).toContain('nodev');
      expect(info?.options.split(',')).toContain('rw');
    } finally {
      unmount(target);
    }
  });

  it('bind-mounts a single layer read-only', () => {
    const a = layer('a', { 'only': 'x' });
    const target = layer('mnt');
    const m = planOverlay({ lowerdirs: [a], target, readonly: true });
    expect(m.type).toBe('bind');
    performMount(m);
    try {
      expect(readFileSync(join(target, 'only'), 'utf8')).toBe('x');
      expect(errnoOf(() => writeFileSync(join(target, 'only'), 'y'))).toBe('EROFS');
      expect(listMountsUnder(target)[0]?.options.split(',')).toContain('ro');
    } finally {
      unmount(target);
    }
  });
});

describe('listMountsUnder and unmountAllUnder', () => {
  it('unmounts nested mounts deepest first and leaves nothing mounted', () => {
    const outer = layer('tree');
    mount('tmpfs', outer, 'tmpfs', 0, 'size=1m');
    mkdirSync(join(outer, 'inner with space'));
    mount('tmpfs', join(outer, 'inner with space'), 'tmpfs', 0, 'size=1m');
    mkdirSync(join(outer, 'inner with space/deeper'));
    mount('tmpfs', join(outer, 'inner with space/deeper'), 'tmpfs', 0, 'size=1m');
    // A second mount stacked on the same point.
    mount('tmpfs', join(outer, 'inner with space/deeper'), 'tmpfs', 0, 'size=1m');

    const listed = listMountsUnder(root).map((m) => m.mountPoint);
    expect(listed).toEqual([
      outer,
      join(outer, 'inner with space'),
      join(outer, 'inner with space/deeper'),
      join(outer, 'inner with space/deeper'),
    ]);
    expect(unmountAllUnder(root)).toEqual([
      join(outer, 'inner with space/deeper'),
      join(outer, 'inner with space/deeper'),
      join(outer, 'inner with space'),
      outer,
    ]);
    expect(listMountsUnder(root)).toEqual([]);
    expect(errnoOf(() => unmount(outer))).toBe('EINVAL');
  });

  it('does not list mounts of a sibling directory that shares the prefix', () => {
    const a = layer('dir');
    const sibling = layer('dir-sibling');
    mount('tmpfs', sibling, 'tmpfs', 0, 'size=1m');
    try {
      expect(listMountsUnder(a)).toEqual([]);
      expect(listMountsUnder(sibling)).toHaveLength(1);
    } finally {
      unmount(sibling);
    }
  });
});
