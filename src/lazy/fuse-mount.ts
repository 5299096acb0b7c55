import type { Logger } from '../log.js';
import type { FuseHandlers } from './fuse-handlers.js';
import { FuseSession } from './fuse-session.js';

export interface FuseMountOptions {
  /**
   * A request not answered within this long gets ETIMEDOUT. Set above the fetcher's own bound
   * (a span fetch may legitimately take that long with retries), it only catches a bug that
   * would otherwise hang a reader.
   */
  opTimeoutMs: number;
  /** Where a request that could not be served is reported. */
  logger?: Logger;
}

export interface MountedFuse {
  mountpoint: string;
  /** Detaches the mount (idempotent); processes still using it are served until they let go. */
  unmount(): Promise<void>;
  /** Settles when the kernel ends the connection: unmounted and no longer used. */
  ended: Promise<void>;
}

/** The mount source in /proc/self/mountinfo (type `fuse.hostpull`): how stale mounts are recognised. */
export const FUSE_FSNAME = 'hostpull-lazy';

/**
 * Reads up to 1 MiB (256 pages) per request, a span's size: a program reading a file in large
 * pieces (a copy, a checksum) crosses to the helper an eighth as often as at FUSE's default 128 KiB.
 */
const MAX_PAGES = 256;

/**
 * Mounts `handlers` at `mountpoint` with hostpull's own FUSE server (fuse-session.ts).
 * Read-only and immutable, so the kernel may keep entries, attributes, missing names, listings
 * and pages for an hour. `allow_other` + `default_permissions`: the container's processes read
 * it, with the kernel checking modes as on a real directory. Read-only, nosuid, nodev.
 */
export async function mountFuse(mountpoint: string, handlers: FuseHandlers, options: FuseMountOptions): Promise<MountedFuse> {
  const session = FuseSession.mount(mountpoint, handlers, {
    fsname: FUSE_FSNAME,
    subtype: 'hostpull',
    cacheSeconds: 3600,
    opTimeoutMs: options.opTimeoutMs,
    maxPages: MAX_PAGES,
    onError: (err) => options.logger?.warn({ mountpoint, err: err.message }, 'lazy view: a FUSE request failed'),
  });
  return { mountpoint, unmount: () => session.unmount(), ended: session.ended };
}
