/**
 * Mounts as data and their execution: the overlay plan, the overlap check, mounting, and the
 * mountinfo reader that tells what is mounted where.
 */
export { type Mount, planOverlay } from './mount-plan.js';
export { performMount, unmount, unmountAllUnder } from './mount.js';
export { inUnmountOrder, listMountsUnder } from './mountinfo.js';
export { createMountDirs, planImageRootfs, type RootfsPlan } from './prepare-rootfs.js';
