import { join } from 'node:path';
import { digestHex, type Digest } from '../oci/index.js';
import type { StoreLayout } from '../store/index.js';

/**
 * Where lazy layers live in a store root:
 * ```
 * lazy/spans/<blob hex>/<index>     verified compressed spans (span-cache.ts)
 * lazy/mnt/<helper pid>-<start>/<n>  FUSE mount points, grouped by the helper process serving them
 * ```
 * Naming the mount dir after the helper (pid and start time) lets the next start find mounts
 * whose server is gone and remove them (cleanup-lazy-mounts.ts).
 */
export function lazyRoot(layout: StoreLayout): string {
  return join(layout.root, 'lazy');
}

export function spanCacheDir(layout: StoreLayout, blobDigest: Digest): string {
  return join(lazyRoot(layout), 'spans', digestHex(blobDigest));
}

export function lazyMountsDir(layout: StoreLayout): string {
  return join(lazyRoot(layout), 'mnt');
}

export function helperMountDir(layout: StoreLayout, pid: number, start: string): string {
  return join(lazyMountsDir(layout), `${pid}-${start}`);
}

/** The helper pid and start time a mount dir name (`<pid>-<start>`) records, or undefined. */
export function parseHelperDirName(name: string): { pid: number; start: string } | undefined {
  const m = /^(\d+)-(\d+)$/.exec(name);
  return m ? { pid: Number(m[1]), start: m[2]! } : undefined;
}
