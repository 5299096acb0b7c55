import { HostpullError } from '../errors.js';
import { planOverlay } from '../rootfs/index.js';

/** containerd's Mount as containerd 1.6 uses it: no target (it mounts where it needs the rootfs). */
export interface ContainerdMount {
  type: string;
  source: string;
  options: string[];
}

export interface SnapshotMountInput {
  /** The ancestors' directories, nearest (top-most) first. */
  lowerdirs: readonly string[];
  /** An active snapshot's own upper and work dirs; absent for a view. */
  upper?: { fs: string; work: string };
  /** A view without parent shows its own (empty) fs/. */
  emptyDir?: string;
}

/**
 * The mounts of a snapshot, as data (mount-plan.ts decides the overlay; containerd performs it):
 * - active without parent: its fs/ bound read-write (containerd applies a base layer into it);
 * - view of one layer: that layer's directory bound read-only;
 * - otherwise an overlay whose lowerdirs are the ancestors' layer directories, so one layer
 *   directory serves every chain it is part of.
 * Always the classic `lowerdir=a:b` string: containerd 1.6 mounts with mount(2) (and shortens an
 * over-long option string itself by changing into the lowerdirs' common parent), and its applier
 * writes straight into `upperdir=` when it recognises this form. `index=off` because layer
 * directories are shared by many overlays and an upper may later become a layer directory.
 */
export function snapshotMounts(input: SnapshotMountInput): ContainerdMount[] {
  const { lowerdirs, upper } = input;
  if (lowerdirs.length === 0) {
    if (upper) return [{ type: 'bind', source: upper.fs, options: ['rbind', 'rw'] }];
    if (input.emptyDir === undefined) throw new HostpullError('INVALID_MOUNT', 'a view without parent needs its own directory');
    return [{ type: 'bind', source: input.emptyDir, options: ['rbind', 'ro'] }];
  }
  const plan = planOverlay({
    lowerdirs,
    // containerd 1.6 ignores a mount's target; the planner wants an absolute one.
    target: '/',
    ...(upper ? { upperdir: upper.fs, workdir: upper.work } : { readonly: true }),
    ...(lowerdirs.length > 1 || upper ? { options: ['index=off'] } : {}),
    pageSize: Number.MAX_SAFE_INTEGER,
  });
  if (plan.type === 'bind') return [{ type: 'bind', source: plan.source, options: ['rbind', 'ro'] }];
  if (plan.mode !== 'option-string') {
    throw new HostpullError('INVALID_MOUNT', `a snapshot directory path contains ',' ':' or '\\', which containerd's overlay option string cannot carry: ${[...lowerdirs, upper?.fs].join(' ')}`, {
      hint: 'use a --root whose path has none of these characters',
    });
  }
  return [{ type: 'overlay', source: 'overlay', options: plan.options }];
}
