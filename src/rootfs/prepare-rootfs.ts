import { mkdir } from 'node:fs/promises';
import { HostpullError } from '../errors.js';
import { packageLayerNames, parseManifest, type Digest } from '../oci/index.js';
import type { ContentStore, ImageRow, LayerRow } from '../store/index.js';
import { assertNoConflicts, lowerdirsTopFirst, type LayerPaths } from './conflicts.js';
import { planOverlay, type Mount } from './mount-plan.js';

export interface PrepareRootfsOptions {
  /** Mount point (created if missing). */
  target: string;
  /** Writable upper and work dirs (a container); absent: a read-only view. */
  writable?: { upperdir: string; workdir: string };
  /** Skip the overlap check between package layers and stack them in manifest order. Default false. */
  allowOverlap?: boolean;
  /**
   * The mount is made by an unprivileged user, in a user namespace: the overlay gets `userxattr`,
   * so it reads whiteouts and opaque dirs from the `user.overlay.*` xattrs that a rootless unpack
   * writes (and needs no `trusted.*`, which only real root may set). Default false.
   */
  rootless?: boolean;
  /**
   * Layers not unpacked yet that are mounted lazily (src/lazy), by diffID: their FUSE mount is
   * the lowerdir, and their paths for the overlap check come from their TOC. Default: none.
   */
  lazy?: ReadonlyMap<Digest, { dir: string; ownedPaths: readonly string[] }>;
  /**
   * Mount flags of the rootfs (`nosuid`, `nodev`): a view outside any container (`hostpull mount`)
   * gets both, so that neither its setuid files nor its device nodes work from the host.
   * Default: none (a container's rootfs, where the runtime decides).
   */
  mountFlags?: readonly ('nosuid' | 'nodev')[];
}

export interface RootfsPlan {
  mount: Mount;
  /** The image's unpacked layers, in manifest order (lazy ones left out: they are not in the store yet). */
  layers: LayerRow[];
}

/**
 * Decides the mount of an image's rootfs from what the store holds, without mounting: every
 * layer must be unpacked; for a composite, no two package layers may write the same path (each
 * package owns its prefix, which is what lets the layers be stacked in any order).
 */
export async function planImageRootfs(store: ContentStore, image: ImageRow, options: PrepareRootfsOptions): Promise<RootfsPlan> {
  const rows = store.images.layers(image.manifestDigest);
  const lowers = rows.map((l) => {
    const lazy = options.lazy?.get(l.diffId);
    if (lazy) return { diffId: l.diffId, dir: lazy.dir, ownedPaths: () => lazy.ownedPaths, row: undefined };
    const layer = store.layers.get(l.diffId);
    if (!layer) {
      throw new HostpullError('LAYER_MISSING', `layer ${l.diffId} of ${image.reference} is not unpacked in ${store.layout.root}`, {
        hint: `pull the image again: \`hostpull pull ${image.reference}\``,
      });
    }
    return { diffId: l.diffId, dir: store.layers.dir(layer), ownedPaths: () => store.layers.ownedPaths(layer.diffId), row: layer };
  });
  if (!options.allowOverlap) {
    const parsed = parseManifest(await store.blobs.readBytes(image.manifestDigest));
    const names = parsed.kind === 'manifest' ? packageLayerNames(parsed.manifest.annotations, lowers.length) : undefined;
    if (names) {
      const packages: LayerPaths[] = [];
      lowers.forEach((layer, i) => {
        const name = names[i];
        if (name !== undefined) packages.push({ name, paths: [...layer.ownedPaths()] });
      });
      assertNoConflicts(packages);
    }
  }
  // overlay lists the top-most layer first. Package layers are disjoint, so for a composite this
  // order changes nothing in the tree; for an ordinary image (or --allow-overlap) it is the
  // manifest's stacking order.
  const lowerdirs = lowerdirsTopFirst(lowers.map((l) => l.dir));
  const mount = planOverlay({
    lowerdirs,
    target: options.target,
    ...(options.rootless ? { options: ['userxattr'] } : {}),
    ...(options.mountFlags ? { mountFlags: options.mountFlags } : {}),
    ...(options.writable ? { upperdir: options.writable.upperdir, workdir: options.writable.workdir } : { readonly: true }),
  });
  return { mount, layers: lowers.flatMap((l) => (l.row ? [l.row] : [])) };
}

/** Creates the mount point and any upper/work dirs a plan needs. */
export async function createMountDirs(options: PrepareRootfsOptions): Promise<void> {
  await mkdir(options.target, { recursive: true, mode: 0o755 });
  if (options.writable) {
    await mkdir(options.writable.upperdir, { recursive: true, mode: 0o755 });
    await mkdir(options.writable.workdir, { recursive: true, mode: 0o700 });
  }
}
