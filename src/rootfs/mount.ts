/**
 * The one module that performs mounts planned by mount-plan.ts, and that reads and undoes them.
 * All calls are synchronous syscalls through the native addon (each returns in microseconds to
 * milliseconds; nothing waits on the network), so they take no AbortSignal.
 */
import { readFileSync, realpathSync } from 'node:fs';

import { HostpullError } from '../errors.js';
import { constants, mount, overlayMount, syscallErrno, umount2 } from '../native/index.js';
import type { BindMount, Mount, OverlayMount } from './mount-plan.js';

/**
 * Options that are VFS mount flags rather than filesystem data (the subset of mount(8)'s table
 * that makes sense for a rootfs).
 */
const FLAG_OPTIONS: Readonly<Record<string, number>> = {
  ro: constants.MS_RDONLY,
  nosuid: constants.MS_NOSUID,
  nodev: constants.MS_NODEV,
  noexec: constants.MS_NOEXEC,
  noatime: constants.MS_NOATIME,
  nodiratime: constants.MS_NODIRATIME,
  relatime: constants.MS_RELATIME,
  strictatime: constants.MS_STRICTATIME,
  sync: constants.MS_SYNCHRONOUS,
  dirsync: constants.MS_DIRSYNC,
};

/** The same flags as per-mount attributes of the new mount API (relatime is its default: 0). */
const ATTR_OPTIONS: Readonly<Record<string, number>> = {
  nosuid: constants.MOUNT_ATTR_NOSUID,
  nodev: constants.MOUNT_ATTR_NODEV,
  noexec: constants.MOUNT_ATTR_NOEXEC,
  noatime: constants.MOUNT_ATTR_NOATIME,
  nodiratime: constants.MOUNT_ATTR_NODIRATIME,
  relatime: 0,
  strictatime: constants.MOUNT_ATTR_STRICTATIME,
};

/** Performs a planned mount. */
export function performMount(m: Mount): void {
  if (m.type === 'bind') performBind(m);
  else if (m.mode === 'lowerdir+') performOverlayNewApi(m);
  else performOverlayClassic(m);
}

function performBind(m: BindMount): void {
  let flags = constants.MS_BIND;
  let extra = 0;
  for (const o of m.options) {
    if (o === 'rbind') flags |= constants.MS_REC;
    else if (o === 'bind' || o === 'rw') continue;
    else if (FLAG_OPTIONS[o] !== undefined) extra |= FLAG_OPTIONS[o];
    else throw new HostpullError('INVALID_MOUNT', `bind mount at ${m.target}: unknown option ${o}`);
  }
  mount(m.source, m.target, null, flags, null);
  if (extra === 0) return;
  // MS_BIND ignores every other flag on creation: read-only etc. need a second, remount call.
  try {
    mount(null, m.target, null, constants.MS_BIND | constants.MS_REMOUNT | extra, null);
  } catch (err) {
    umount2(m.target, constants.MNT_DETACH);
    throw err;
  }
}

function performOverlayClassic(m: OverlayMount): void {
  let flags = 0;
  const data: string[] = [];
  for (const o of m.options) {
    const flag = FLAG_OPTIONS[o];
    if (flag !== undefined) flags |= flag;
    else data.push(o);
  }
  mount(m.source, m.target, 'overlay', flags, data.join(','));
}

function performOverlayNewApi(m: OverlayMount): void {
  const lowerdirs: string[] = [];
  const options: string[] = [];
  let upperdir: string | undefined;
  let workdir: string | undefined;
  let readonly = false;
  let mountAttributes = 0;
  for (const o of m.options) {
    if (o.startsWith('lowerdir+=')) lowerdirs.push(o.slice('lowerdir+='.length));
    else if (o.startsWith('upperdir=')) upperdir = o.slice('upperdir='.length);
    else if (o.startsWith('workdir=')) workdir = o.slice('workdir='.length);
    else if (o === 'ro') readonly = true;
    else if (ATTR_OPTIONS[o] !== undefined) mountAttributes |= ATTR_OPTIONS[o];
    else options.push(o);
  }
  overlayMount(m.target, {
    lowerdirs,
    options,
    readonly,
    mountAttributes,
    source: m.source,
    ...(upperdir !== undefined ? { upperdir } : {}),
    ...(workdir !== undefined ? { workdir } : {}),
  });
}

export interface UnmountOptions {
  /** Lazy unmount (MNT_DETACH): detach now, release when no longer busy. Default: false. */
  detach?: boolean;
}

/** Unmounts `target`. */
export function unmount(target: string, opts: UnmountOptions = {}): void {
  umount2(target, opts.detach ? constants.MNT_DETACH : 0);
}

/** One line of /proc/self/mountinfo (proc(5)), with paths unescaped. */
export interface MountInfo {
  id: number;
  parentId: number;
  /** Path inside the mounted filesystem that is the root of this mount. */
  root: string;
  mountPoint: string;
  /** Per-mount options (`rw,relatime`). */
  options: string;
  fsType: string;
  source: string;
  /** Per-superblock options (for overlay: lowerdir=…,upperdir=…). */
  superOptions: string;
}

/** mountinfo escapes space, tab, newline and backslash as `\ooo` octal. */
export function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses the text of /proc/<pid>/mountinfo. */
export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const f = line.split(' ');
    // Optional fields (shared:N, master:N…) end at the "-" separator.
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0) continue;
    out.push({
      id: Number(f[0]),
      parentId: Number(f[1]),
      root: unescapeMountPath(f[3]!),
      mountPoint: unescapeMountPath(f[4]!),
      options: f[5]!,
      fsType: f[sep + 1]!,
      source: unescapeMountPath(f[sep + 2]!),
      superOptions: f[sep + 3] ?? '',
    });
  }
  return out;
}

function canonical(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return dir;
  }
}

/**
 * Mounts at `dir` or below it, in mount order (as /proc/self/mountinfo lists them). `dir` is
 * resolved through symlinks first, because the kernel reports real paths.
 */
export function listMountsUnder(dir: string, mountinfoPath = '/proc/self/mountinfo'): MountInfo[] {
  const root = canonical(dir).replace(/\/+$/, '') || '/';
  const prefix = root === '/' ? '/' : `${root}/`;
  return parseMountInfo(readFileSync(mountinfoPath, 'utf8')).filter(
    (m) => m.mountPoint === root || m.mountPoint.startsWith(prefix),
  );
}

function depth(p: string): number {
  let n = 0;
  for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) === 47) n++;
  return n;
}

/**
 * Unmounts every mount at `dir` or below it, deepest first (and, at one mount point, the most
 * recent first, since mounts can be stacked). Mounts that vanished meanwhile (EINVAL/ENOENT: a
 * concurrent cleanup) are skipped. Returns the mount points unmounted, in order.
 */
export function unmountAllUnder(dir: string, opts: UnmountOptions = {}): string[] {
  const mounts = listMountsUnder(dir).map((m, index) => ({ m, index }));
  mounts.sort((a, b) => depth(b.m.mountPoint) - depth(a.m.mountPoint) || b.index - a.index);
  const done: string[] = [];
  for (const { m } of mounts) {
    try {
      unmount(m.mountPoint, opts);
      done.push(m.mountPoint);
    } catch (err) {
      const errno = syscallErrno(err);
      if (errno === 'EINVAL' || errno === 'ENOENT') continue;
      throw err;
    }
  }
  return done;
}
