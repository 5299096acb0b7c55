// Real syscalls through the addon (build it with `npm run build:native`); needs root, as CI has.
import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { HostpullError } from '../../../src/errors.js';
import {
  addonConstants,
  constants,
  isNativeAvailable,
  lgetxattr,
  llistxattr,
  lremovexattr,
  lsetxattr,
  makedev,
  mknod,
  syscallErrno,
  umount2,
} from '../../../src/native/index.js';

function thrownBy(fn: () => unknown): HostpullError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HostpullError);
    return err as HostpullError;
  }
  throw new Error('expected a throw');
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hostpull-native-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('native addon', () => {
  it('is built and loads', () => {
    expect(isNativeAvailable()).toBe(true);
  });

  it('exports the same constants as the TS table', () => {
    const fromC = addonConstants();
    for (const [name, value] of Object.entries(constants)) expect([name, fromC[name]]).toEqual([name, value]);
  });

  it('reports errno, syscall and path in a SYSCALL_FAILED error', () => {
    const path = join(dir, 'missing', 'node');
    const err = thrownBy(() => mknod(path, constants.S_IFCHR | 0o600, 0));
    expect(err.code).toBe('SYSCALL_FAILED');
    expect(err.message).toBe(`mknod ${path}: ENOENT (No such file or directory)`);
    expect(err.details).toMatchObject({ errno: 'ENOENT', errnoNumber: 2, syscall: 'mknod', path });
    expect(syscallErrno(err)).toBe('ENOENT');
    expect((err.cause as { code?: string }).code).toBe('ENOENT');
  });

  it('reports EINVAL from umount2 on a directory that is not a mount point', () => {
    const err = thrownBy(() => umount2(dir, 0));
    expect(err.details).toMatchObject({ errno: 'EINVAL', syscall: 'umount2', path: dir });
  });

  it('passes argument type errors through unchanged', () => {
    expect(() => mknod(42 as unknown as string, 0, 0)).toThrow(TypeError);
  });
});

describe('mknod and makedev', () => {
  it('creates an overlay whiteout: a character device 0:0', () => {
    const path = join(dir, 'whiteout');
    mknod(path, constants.S_IFCHR | 0o000, makedev(0, 0));
    const st = lstatSync(path);
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(0);
    expect(syscallErrno(thrownBy(() => mknod(path, constants.S_IFCHR, 0)))).toBe('EEXIST');
  });

  it('creates a device with the number makedev computes (JS matches glibc)', () => {
    const path = join(dir, 'null-like');
    mknod(path, constants.S_IFCHR | 0o666, makedev(1, 3));
    expect(lstatSync(path).rdev).toBe(makedev(1, 3));
    expect(makedev(1, 3)).toBe(259);
  });

  it('computes large device numbers like glibc and the kernel round-trips them', () => {
    // glibc's formula, in BigInt.
    const glibc = (maj: number, min: number): number => {
      const M = BigInt(maj);
      const m = BigInt(min);
      return Number(((M & 0xfffn) << 8n) | ((M & ~0xfffn) << 32n) | (m & 0xffn) | ((m & ~0xffn) << 12n));
    };
    for (const [maj, min] of [[8, 1], [259, 70000], [4095, 0xfffff], [0x12345, 0x123456]] as const) {
      expect(makedev(maj, min)).toBe(glibc(maj, min));
    }
    // The kernel keeps 12-bit majors and 20-bit minors; stat reports them through glibc's encoding.
    for (const [maj, min] of [[259, 70000], [4095, 0xfffff]] as const) {
      const path = join(dir, `dev-${maj}-${min}`);
      mknod(path, constants.S_IFBLK | 0o600, makedev(maj, min));
      expect(lstatSync(path).rdev).toBe(makedev(maj, min));
    }
  });

  it('creates a FIFO', () => {
    const path = join(dir, 'fifo');
    mknod(path, constants.S_IFIFO | 0o644, 0);
    expect(lstatSync(path).isFIFO()).toBe(true);
  });
});

describe('xattrs', () => {
  it('sets, gets, lists and removes a binary user.* value', () => {
    const path = join(dir, 'bin-user');
    writeFileSync(path, 'x');
    const value = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    lsetxattr(path, 'user.blob', value);
    expect(lgetxattr(path, 'user.blob')).toEqual(value);
    expect(llistxattr(path)).toContain('user.blob');
    lremovexattr(path, 'user.blob');
    expect(lgetxattr(path, 'user.blob')).toBeNull();
    expect(llistxattr(path)).not.toContain('user.blob');
  });

  it('round-trips a security.capability v2 value (cap_net_bind_service+ep)', () => {
    const path = join(dir, 'cap');
    writeFileSync(path, '#!/bin/sh\n', { mode: 0o755 });
    // struct vfs_cap_data, little endian: magic VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE,
    // then {permitted, inheritable} for caps 0–31 and 32–63. CAP_NET_BIND_SERVICE = 10.
    const cap = Buffer.alloc(20);
    cap.writeUInt32LE(0x02000001, 0);
    cap.writeUInt32LE(1 << 10, 4);
    lsetxattr(path, 'security.capability', cap);
    expect(lgetxattr(path, 'security.capability')).toEqual(cap);
    expect(llistxattr(path)).toContain('security.capability');
  });

  it('sets trusted.overlay.opaque on a directory', () => {
    const path = join(dir, 'opaque');
    mkdirSync(path);
    lsetxattr(path, 'trusted.overlay.opaque', Buffer.from('y'));
    expect(lgetxattr(path, 'trusted.overlay.opaque')?.toString()).toBe('y');
    expect(llistxattr(path)).toEqual(expect.arrayContaining(['trusted.overlay.opaque']));
  });

  it('stores an empty value', () => {
    const path = join(dir, 'empty-value');
    writeFileSync(path, '');
    lsetxattr(path, 'user.empty', Buffer.alloc(0));
    expect(lgetxattr(path, 'user.empty')).toEqual(Buffer.alloc(0));
  });

  it('acts on a symlink itself, never on its target', () => {
    const target = join(dir, 'link-target');
    const link = join(dir, 'link');
    writeFileSync(target, '');
    symlinkSync(target, link);
    lsetxattr(link, 'trusted.on-link', Buffer.from('1'));
    expect(lgetxattr(link, 'trusted.on-link')?.toString()).toBe('1');
    expect(lgetxattr(target, 'trusted.on-link')).toBeNull();
    // user.* is not allowed on symlinks: the kernel refuses rather than following the link.
    expect(syscallErrno(thrownBy(() => lsetxattr(link, 'user.x', Buffer.from('1'))))).toBe('EPERM');
  });

  it('honours XATTR_CREATE and XATTR_REPLACE and reports errors with the path', () => {
    const path = join(dir, 'flags');
    writeFileSync(path, '');
    expect(syscallErrno(thrownBy(() => lsetxattr(path, 'user.a', Buffer.from('1'), constants.XATTR_REPLACE)))).toBe(
      'ENODATA',
    );
    lsetxattr(path, 'user.a', Buffer.from('1'), constants.XATTR_CREATE);
    const err = thrownBy(() => lsetxattr(path, 'user.a', Buffer.from('2'), constants.XATTR_CREATE));
    expect(err.details).toMatchObject({ errno: 'EEXIST', syscall: 'lsetxattr', path });
    expect(syscallErrno(thrownBy(() => lremovexattr(path, 'user.none')))).toBe('ENODATA');
    expect(syscallErrno(thrownBy(() => llistxattr(join(dir, 'nope'))))).toBe('ENOENT');
  });
});
