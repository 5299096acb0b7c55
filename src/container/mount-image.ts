import { realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { errnoCode, HostpullError } from '../errors.js';
import { formatReference, type ImageReference } from '../oci/index.js';
import { Puller, type PullResult } from '../pull/index.js';
import { listMountsUnder, performMount, unmount, createMountDirs, planImageRootfs, type RootfsPlan } from '../rootfs/index.js';
import type { ContentStore } from '../store/index.js';
import type { HostDeps } from './prepare-container.js';

export interface MountImageResult {
  mountPoint: string;
  plan: RootfsPlan;
  pull: PullResult;
  /** Time from "image complete in the store" to "rootfs mounted", in ms. */
  mountMs: number;
}

/** `hostpull mount REF DIR`: a read-only view of the image's rootfs at DIR (pulled first if needed). */
export async function mountImage(
  deps: HostDeps,
  ref: ImageReference,
  dir: string,
  options: {
    allowOverlap?: boolean;
    signal?: AbortSignal;
    /** Whether the caller lacks root; a rootless mount is refused (see below). Default: `process.getuid() !== 0`. */
    rootless?: boolean;
    /**
     * Let setuid files and device nodes of the image work in the view. Default false: the view is
     * mounted nosuid,nodev, so whoever can reach DIR cannot become root through an image's file.
     */
    allowSuidDev?: boolean;
  } = {},
): Promise<MountImageResult> {
  const { store } = deps;
  // Without root an overlay can only be mounted inside a private user+mount namespace, and the
  // mount dies with the last process in it: a view that outlives this command is impossible.
  if (options.rootless ?? process.getuid?.() !== 0) {
    throw new HostpullError('ROOTLESS_MOUNT_UNSUPPORTED', `hostpull mount needs root: without it, ${resolve(dir)} could only be mounted in a private namespace that ends with this command`, {
      hint: `use \`hostpull run ${formatReference(ref)} -- CMD\` to work inside the image without root, or run \`hostpull mount ${formatReference(ref)} ${dir}\` as root`,
    });
  }
  const pull = await new Puller(deps).pull(ref, { unpack: true, ...(options.signal ? { signal: options.signal } : {}) });
  const t0 = performance.now();
  const image = store.images.get(pull.reference)!;
  // The kernel lists a mount under its real path: a DIR through a symlink is checked and recorded
  // as that path, so `umount` and a second `mount` of the same directory find it.
  const target = await canonicalPath(dir);
  if (listMountsUnder(target).some((m) => m.mountPoint === target)) {
    throw new HostpullError('ALREADY_MOUNTED', `${target} is already a mount point`, { hint: `unmount it first: \`hostpull umount ${dir}\`` });
  }
  const plan = await planImageRootfs(store, image, {
    target,
    allowOverlap: options.allowOverlap ?? false,
    ...(options.allowSuidDev ? {} : { mountFlags: ['nosuid', 'nodev'] as const }),
  });
  await createMountDirs({ target });
  // No owner pid: the view outlives this command and stays protected from GC until umount.
  store.mounts.record(mountRecordId(target), plan.layers.map((l) => l.diffId));
  try {
    performMount(plan.mount);
  } catch (err) {
    store.mounts.release(mountRecordId(target));
    throw err;
  }
  return { mountPoint: target, plan, pull, mountMs: performance.now() - t0 };
}

/** The mount table row of a view made by `hostpull mount`, keyed by its mount point's real path. */
function mountRecordId(target: string): string {
  return `view:${target}`;
}

/**
 * `dir` made absolute with every symlink in its existing part resolved, as the kernel reports a
 * mount there; a missing tail (the mount point `mount` is about to create) is kept as written.
 */
async function canonicalPath(dir: string): Promise<string> {
  let head = resolve(dir);
  const tail: string[] = [];
  for (;;) {
    try {
      return join(await realpath(head), ...tail);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' || head === dirname(head)) throw err;
      tail.unshift(basename(head));
      head = dirname(head);
    }
  }
}

/**
 * `hostpull umount DIR`: unmounts a view made by `hostpull mount` and releases its hold on its
 * layers. Anything else is refused, a mount point hostpull did not make included, so no other
 * mount is taken down by mistake. A view already unmounted behind hostpull's back (umount(8), a
 * reboot) has its record released all the same: nothing else would ever release it.
 */
export async function unmountImage(store: ContentStore, dir: string): Promise<string> {
  const target = await canonicalPath(dir);
  const mounted = listMountsUnder(target).some((m) => m.mountPoint === target);
  if (!store.mounts.has(mountRecordId(target))) {
    throw new HostpullError(
      'NOT_MOUNTED',
      mounted ? `${target} is a mount point, but not a view made by \`hostpull mount\`` : `${target} is not a mount point made by \`hostpull mount\``,
      mounted ? { hint: 'it was made by something else: use umount(8) if you mean to take it down' } : {},
    );
  }
  if (mounted) unmount(target);
  store.mounts.release(mountRecordId(target));
  return target;
}
