import { HostpullError } from '../errors.js';
import { isWithin } from './entry-path.js';

/**
 * What a package layer may do (DESIGN §2 "The trust boundary"): write inside its prefix only,
 * never a device node, never the metadata of `/` or of the prefix's ancestors, and setuid/setgid
 * files or file capabilities only when its catalog entry allows them. A layer without a claim
 * (a base layer, or any layer of an ordinary image) is not restricted by these rules.
 *
 * Plain data: it travels in the composite manifest's layer annotations, in apply options (which
 * may cross a worker boundary) and in error details.
 */
export interface PackageClaim {
  /** The code name the layer was registered under, for messages. */
  code: string;
  /** The directory the package owns, normalised: relative, no leading or trailing slash (`opt/jdk-11.0`). */
  prefix: string;
  /** The catalog entry allows setuid/setgid files and file capabilities (`--allow-setuid`). */
  allowSetuid: boolean;
}

/**
 * `/opt/jdk-11.0/` → `opt/jdk-11.0`. Throws LAYER_PREFIX_INVALID for a prefix that is the root or
 * has empty, `.` or `..` components (a claim must name one real directory).
 */
export function normalisePrefix(prefix: string): string {
  const p = prefix.replace(/^\/+|\/+$/g, '');
  if (p === '' || p.split('/').some((c) => c === '..' || c === '.' || c === '') || p.includes('\0') || p.includes('\n')) {
    throw new HostpullError('LAYER_PREFIX_INVALID', `package prefix ${JSON.stringify(prefix)} is not a clean path below /`);
  }
  return p;
}

/**
 * A directory entry that carries nothing a package could impose on the tree around it: mode 0755,
 * owned by root, no extended attributes. Such a directory may appear above the prefix (every
 * package archive holds `opt/`); any other metadata there would change `/opt` (or `/`) of the
 * whole rootfs, because overlayfs takes a merged directory's attributes from its top-most layer.
 */
export function isNeutralDir(type: string, mode: number, uid: number, gid: number, xattrCount: number): boolean {
  return type === 'dir' && (mode & 0o7777) === 0o755 && uid === 0 && gid === 0 && xattrCount === 0;
}

/** `path` may be written by a package owning `prefix` (normalised paths). */
export function insidePrefix(path: string, prefix: string): boolean {
  return isWithin(path, prefix);
}

/** `path` is `/` or a directory above `prefix` (`''`, `opt` for `opt/jdk-11.0`). */
export function isPrefixAncestor(path: string, prefix: string): boolean {
  return path === '' || (prefix.length > path.length && prefix.startsWith(path) && prefix.charCodeAt(path.length) === 0x2f);
}

/** Permission bits that raise privileges when a file is executed. */
export const SETID_BITS = 0o6000;

/** The xattr that gives an executable file capabilities. */
export const CAPABILITY_XATTR = 'security.capability';
