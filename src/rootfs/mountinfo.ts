import { readFileSync, realpathSync } from 'node:fs';

/**
 * The one reader of /proc/<pid>/mountinfo (proc(5)): which mounts there are, and in which order
 * mounts below a directory must be undone. rootfs/mount.ts unmounts through it, and so do the
 * demo and the test helpers.
 */

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
  return parseMountInfo(readFileSync(mountinfoPath, 'utf8')).filter((m) => m.mountPoint === root || m.mountPoint.startsWith(prefix));
}

function depth(p: string): number {
  let n = 0;
  for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) === 47) n++;
  return n;
}

/**
 * The order to unmount `mounts` (as {@link listMountsUnder} lists them) in: deepest first, and,
 * at one mount point, the most recent first, since mounts can be stacked (a point mounted twice
 * is listed, and unmounted, twice).
 */
export function inUnmountOrder(mounts: readonly MountInfo[]): MountInfo[] {
  return mounts
    .map((m, index) => ({ m, index }))
    .sort((a, b) => depth(b.m.mountPoint) - depth(a.m.mountPoint) || b.index - a.index)
    .map((x) => x.m);
}
