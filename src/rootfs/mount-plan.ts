/**
 * Decides how a rootfs is mounted, as data (containerd's `Snapshotter.Prepare → []mount.Mount`):
 * nothing here touches the kernel, so the layout decision is testable without root and the result
 * can be handed to {@link performMount} or, later, to containerd.
 */
import { isAbsolute } from 'node:path';

import { HostpullError } from '../errors.js';

/**
 * mount(2) copies its `data` argument as one page and silently truncates the rest. Measured on
 * this machine's 6.18 kernel (x86_64, 4 KiB pages): a 4,095-byte overlay option string mounts,
 * a 4,096-byte one fails (ENOENT/ELOOP on the truncated last path) — the string and its NUL must
 * fit in the page. With ~100-byte layer paths that is about 40 layers; with short per-layer paths
 * (`layers/<12 hex>`, ~40 bytes) about 100.
 */
export const MOUNT_DATA_PAGE_SIZE = 4096;

/** overlayfs's OVL_MAX_STACK: the kernel refuses more lower layers than this. */
export const OVERLAY_MAX_LOWER_LAYERS = 500;

/** How an overlay's parameters reach the kernel. */
export type OverlayMode =
  /** One mount(2) call with `lowerdir=a:b:c,upperdir=…` as data (fits in one page). */
  | 'option-string'
  /** The new mount API, one `lowerdir+` fsconfig call per layer (Linux ≥ 6.8). */
  | 'lowerdir+';

export interface BindMount {
  type: 'bind';
  /** The directory that appears at `target`. */
  source: string;
  target: string;
  /** `bind` (never recursive: a layer dir has no submounts to carry), and `ro` when read-only. */
  options: string[];
}

export interface OverlayMount {
  type: 'overlay';
  source: 'overlay';
  target: string;
  /**
   * In `option-string` mode: `lowerdir=a:b:c`, `upperdir=…`, `workdir=…`, extra options, `ro`.
   * In `lowerdir+` mode: one `lowerdir+=…` per layer (top-most first), then the same others.
   */
  options: string[];
  mode: OverlayMode;
}

export type Mount = BindMount | OverlayMount;

export interface PlanOverlayOptions {
  /** Lower layer directories, top-most first (overlay's order). At least one. */
  lowerdirs: readonly string[];
  /** Writable upper dir; requires `workdir`. Default: none (read-only view). */
  upperdir?: string;
  /** Overlay work dir, on the same filesystem as `upperdir`. Default: none. */
  workdir?: string;
  /** Mount point. */
  target: string;
  /** Mount read-only. Default: false. */
  readonly?: boolean;
  /** Extra overlay options (`index=off`, `userxattr`…). Default: none. */
  options?: readonly string[];
  /** Mount flags for any kind of mount (`nosuid`, `nodev`): a bind mount keeps them too. Default: none. */
  mountFlags?: readonly ('nosuid' | 'nodev' | 'noexec')[];
  /** Size of mount(2)'s data page, see {@link MOUNT_DATA_PAGE_SIZE}. Default: 4096. */
  pageSize?: number;
}

/**
 * `,` separates options and `:` separates lower dirs in the classic string; rather than rely on
 * overlayfs's backslash escaping, such paths go through `lowerdir+`, where each value is one path.
 */
const OPTION_STRING_UNSAFE = /[,:\\]/;

function invalid(message: string, details?: Record<string, unknown>): HostpullError {
  return new HostpullError('INVALID_MOUNT', message, details ? { details } : {});
}

/**
 * Plans the mount of a rootfs made of `lowerdirs` (+ an optional writable upper):
 * - one lower dir, no upper → a read-only bind mount (an overlay would add nothing);
 * - otherwise an overlay, as a classic option string when it fits in one page, else `lowerdir+`.
 */
export function planOverlay(opts: PlanOverlayOptions): Mount {
  const { lowerdirs, upperdir, workdir, target } = opts;
  const readonly = opts.readonly ?? false;
  const extra = opts.options ?? [];
  const flags = opts.mountFlags ?? [];
  const pageSize = opts.pageSize ?? MOUNT_DATA_PAGE_SIZE;

  if (lowerdirs.length === 0) throw invalid(`overlay at ${target}: no lower layer`);
  if (lowerdirs.length > OVERLAY_MAX_LOWER_LAYERS) {
    throw new HostpullError(
      'TOO_MANY_LAYERS',
      `overlay at ${target}: ${lowerdirs.length} lower layers, the kernel allows ${OVERLAY_MAX_LOWER_LAYERS}`,
      { details: { layers: lowerdirs.length, max: OVERLAY_MAX_LOWER_LAYERS } },
    );
  }
  if ((upperdir === undefined) !== (workdir === undefined)) {
    throw invalid(`overlay at ${target}: upperdir and workdir go together`, { upperdir, workdir });
  }
  for (const p of [target, ...lowerdirs, ...(upperdir ? [upperdir] : []), ...(workdir ? [workdir] : [])]) {
    if (!isAbsolute(p)) throw invalid(`mount path ${p} is not absolute`, { path: p });
    if (p.includes('\0')) throw invalid(`mount path ${JSON.stringify(p)} contains NUL`, { path: p });
  }

  if (lowerdirs.length === 1 && upperdir === undefined) {
    return { type: 'bind', source: lowerdirs[0]!, target, options: ['bind', 'ro', ...flags] };
  }

  const tail = [
    ...(upperdir !== undefined ? [`upperdir=${upperdir}`, `workdir=${workdir!}`] : []),
    ...extra,
    ...flags,
    ...(readonly ? ['ro'] : []),
  ];
  const classic = [`lowerdir=${lowerdirs.join(':')}`, ...tail];
  const paths = [...lowerdirs, ...(upperdir ? [upperdir] : []), ...(workdir ? [workdir] : [])];
  // The string plus its NUL terminator must fit in the page.
  const fits = Buffer.byteLength(classic.join(',')) < pageSize;
  if (fits && !paths.some((p) => OPTION_STRING_UNSAFE.test(p))) {
    return { type: 'overlay', source: 'overlay', target, options: classic, mode: 'option-string' };
  }
  return {
    type: 'overlay',
    source: 'overlay',
    target,
    options: [...lowerdirs.map((l) => `lowerdir+=${l}`), ...tail],
    mode: 'lowerdir+',
  };
}
