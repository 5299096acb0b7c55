import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { HostpullError, errnoCode } from '../errors.js';

/** Linux's own limit on symlinks followed while resolving one path (MAXSYMLINKS is 40). */
const MAX_SYMLINKS = 40;

/**
 * Resolves `path` as the container would see it with `root` as `/`, and returns the resulting
 * in-container path (always absolute, no symlink among its existing components). Symlinks are
 * followed *inside* the root: an absolute target restarts at `root`, `..` stops at `root`, so a
 * hostile image's `/etc/passwd -> /host/secret` or `-> ../../../../etc/shadow` can never make us
 * read a host file (the `securejoin` approach of runc/containerd). Components that do not exist
 * are kept lexically. The caller joins the result to `root` and opens it with O_NOFOLLOW.
 */
export function resolveInRoot(root: string, path: string): string {
  const resolved: string[] = [];
  const pending = path.split('/');
  let links = 0;
  let missing = false;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    if (missing) {
      resolved.push(part);
      continue;
    }
    const host = join(root, ...resolved, part);
    let isLink = false;
    try {
      isLink = lstatSync(host).isSymbolicLink();
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      // Below a missing component nothing can be a symlink: keep the rest as written.
      missing = true;
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      throw new HostpullError('PATH_LOOP', `too many symlinks resolving ${path} inside ${root}`);
    }
    const target = readlinkSync(host);
    if (target.startsWith('/')) resolved.length = 0;
    pending.unshift(...target.split('/'));
  }
  return '/' + resolved.join('/');
}

/**
 * Reads a small regular file of the rootfs (like /etc/passwd) without ever leaving the rootfs:
 * resolved by {@link resolveInRoot}, opened with O_NOFOLLOW so a symlink swapped in since cannot
 * redirect us. Returns undefined when it does not exist (an image without /etc/group is fine).
 */
export function readFileInRoot(root: string, path: string, maxBytes = 4 * 1024 * 1024): string | undefined {
  const host = join(root, resolveInRoot(root, path));
  let fd: number;
  try {
    fd = openSync(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (code === 'ELOOP') throw new HostpullError('PATH_LOOP', `${path} in ${root} is a symlink loop`, { cause: err });
    throw err;
  }
  try {
    const st = fstatSync(fd);
    // A FIFO or device named /etc/passwd would block or read the host: only regular files.
    if (!st.isFile()) throw new HostpullError('ROOTFS_INVALID', `${path} in ${root} is not a regular file`);
    if (st.size > maxBytes) throw new HostpullError('ROOTFS_INVALID', `${path} in ${root} is ${st.size} bytes (limit ${maxBytes})`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
