import { createRequire } from 'node:module';
import { HostpullError } from '../errors.js';
import type { FuseHandlers } from './fuse-handlers.js';

/** The part of fuse-native's class we use (it ships no types). */
interface FuseNative {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
type FuseNativeClass = new (mnt: string, ops: FuseHandlers, opts: Record<string, unknown>) => FuseNative;

export interface FuseMountOptions {
  /**
   * fuse-native answers an operation with ETIMEDOUT after this long (its default is 15 s, shorter
   * than a span fetch may legitimately take with retries). Set above the fetcher's own bound, it
   * only catches a bug that would otherwise hang a reader.
   */
  opTimeoutMs: number;
}

export interface MountedFuse {
  mountpoint: string;
  unmount(): Promise<void>;
}

/** The mount source in /proc/self/mountinfo (type `fuse.hostpull`): how stale mounts are recognised. */
export const FUSE_FSNAME = 'hostpull-lazy';

/**
 * Mounts `handlers` at `mountpoint` with fuse-native (libfuse2's multi-threaded loop; each request
 * is handed to this process's event loop). Read-only and immutable, so the kernel may cache
 * entries, attributes and pages for long: `kernel_cache`, one-hour entry and attr timeouts.
 * `allow_other` + `default_permissions`: the container's processes read it, with the kernel
 * checking modes as on a real directory. FUSE mounts are nosuid,nodev.
 */
export async function mountFuse(mountpoint: string, handlers: FuseHandlers, options: FuseMountOptions): Promise<MountedFuse> {
  const require = createRequire(import.meta.url);
  const Fuse = require('fuse-native') as FuseNativeClass;
  const fuse = new Fuse(mountpoint, handlers, {
    allowOther: true,
    defaultPermissions: true,
    kernelCache: true,
    entryTimeout: 3600,
    attrTimeout: 3600,
    fsname: FUSE_FSNAME,
    subtype: 'hostpull',
    timeout: options.opTimeoutMs,
  });
  await new Promise<void>((resolve, reject) =>
    fuse.mount((err) =>
      err ? reject(new HostpullError('LAZY_MOUNT_FAILED', `cannot mount the lazy layer at ${mountpoint}: ${err.message}`, { cause: err, hint: 'lazy pulling needs root, /dev/fuse and fusermount (Debian: fuse, libfuse2)' })) : resolve(),
    ),
  );
  let unmounted: Promise<void> | undefined;
  return {
    mountpoint,
    unmount: () =>
      (unmounted ??= new Promise<void>((resolve, reject) =>
        fuse.unmount((err) => (err ? reject(new HostpullError('LAZY_UNMOUNT_FAILED', `cannot unmount ${mountpoint}: ${err.message}`, { cause: err })) : resolve())),
      )),
  };
}
