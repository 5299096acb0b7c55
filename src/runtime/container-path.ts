import { posix } from 'node:path';
import { HostpullError, type ErrorCode } from '../errors.js';
import { resolveInRoot } from './resolve-in-root.js';

function underProc(p: string): boolean {
  return p === '/proc' || p.startsWith('/proc/');
}

/**
 * Validates an in-container absolute path given by an image or a user (WorkingDir, a mount
 * destination) and returns its clean form. Refused: relative paths, NUL, any `..` component
 * (there is no legitimate use, and it hides the real target from checks like the next one), and
 * anything under /proc — lexically *or* after resolving symlinks inside the rootfs. That is the
 * runc CVE-2024-21626 ("Leaky Vessels") pattern: `WorkingDir: /proc/self/fd/7` (or a symlink to it)
 * made runc chdir through a leaked host directory fd, handing the container the host filesystem.
 * runc ≥ 1.1.12 fixed it; we refuse it anyway because an older runc is still common (this machine
 * runs 1.1.5+ds1).
 */
export function checkContainerPath(path: string, what: string, code: ErrorCode, rootfsPath?: string): string {
  const fail = (why: string) => new HostpullError(code, `${what} "${path}" ${why}`, { details: { path } });
  if (path.includes('\0')) throw fail('contains NUL');
  if (!path.startsWith('/')) throw fail('is not an absolute path');
  if (path.split('/').includes('..')) throw fail('contains ".."');
  // Duplicate slashes, "." and a trailing slash are harmless spellings: use the clean form.
  let clean = posix.normalize(path);
  if (clean.length > 1 && clean.endsWith('/')) clean = clean.slice(0, -1);
  if (underProc(clean)) throw fail('is under /proc (CVE-2024-21626)');
  if (rootfsPath !== undefined) {
    const resolved = resolveInRoot(rootfsPath, clean);
    if (underProc(resolved)) throw fail(`resolves to ${resolved} inside the rootfs, under /proc (CVE-2024-21626)`);
  }
  return clean;
}
