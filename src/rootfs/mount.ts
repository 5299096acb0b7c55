/**
 * The one module that performs mounts planned by mount-plan.ts, and that reads and undoes them.
 * All calls are synchronous syscalls through the native addon (each returns in microseconds to
 * milliseconds; nothing waits on the network), so they take no AbortSignal.
 */
import { HostpullError } from '../errors.js';
import { constants, mount, overlayMount, syscallErrno, umount2 } from '../native/index.js';
import type { BindMount, Mount, OverlayMount } from './mount-plan.js';
import { inUnmountOrder, listMountsUnder } from './mountinfo.js';

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

/**
 * Unmounts every mount at `dir` or below it, deepest first (and, at one mount point, the most
 * recent first, since mounts can be stacked). Mounts that vanished meanwhile (EINVAL/ENOENT: a
 * concurrent cleanup) are skipped. Returns the mount points unmounted, in order.
 */
export function unmountAllUnder(dir: string, opts: UnmountOptions = {}): string[] {
  const done: string[] = [];
  for (const m of inUnmountOrder(listMountsUnder(dir))) {
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
