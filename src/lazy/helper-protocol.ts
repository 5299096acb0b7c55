import type { PackageClaim } from '../archive/index.js';
import type { ErrorJson } from '../errors.js';

/**
 * Messages between a hostpull process and its FUSE helper (fuse-helper-main.ts), over Node's IPC
 * channel (`fork`, advanced serialization). Requests carry an id; the helper answers each with a
 * `result` of the same id. The helper serves the FUSE mounts and fetches spans; unpacking the
 * completed layer stays in the parent, whose event loop a FUSE request never waits on.
 */

/** Where a lazy layer's bytes come from and how hard to try. */
export interface LazySource {
  registry: string;
  repository: string;
  /** Hosts allowed over plain http besides loopback. */
  insecureRegistries: string[];
}

export interface FetchPolicy {
  /** Attempts per span before EIO. */
  attempts: number;
  /** Bound on one attempt (request to last byte), ms. */
  attemptTimeoutMs: number;
}

export interface MountSpec {
  /**
   * The layer blob digest: names the layer in every later message. A mount of a key served (or
   * being mounted) already shares that view, and counts as one more user of it (see `unmount`).
   */
  key: string;
  /** The layer's diffID and blob size as its manifest gives them: the TOC must describe this layer. */
  diffId: string;
  size: number;
  /** The TOC blob (gzip JSON) as a file of the store, and the digest the manifest names for it. */
  tocFile: string;
  tocDigest: string;
  mountpoint: string;
  /** Where verified spans are kept (shared with the parent, which unpacks from it). */
  cacheDir: string;
  source: LazySource;
  fetch: FetchPolicy;
  /**
   * The package claim the layer is held to (none for a base layer) and the store's expansion
   * bound. The tree is built through the unpack's entry checker under them: a mount that succeeds
   * says the layer can be lazy (the parent takes that verdict and builds no tree of its own), a
   * refusal says why not.
   */
  claim?: PackageClaim | undefined;
  maxExpansionRatio: number;
  /**
   * The layer's learned prefetch list, when the parent has it by the time it asks for the mount:
   * fetched from as soon as the view is mounted, before the container's overlay is (see
   * LazyLayer.prefetchInOrder). Otherwise the `prefetch` request that follows brings it.
   */
  prefetch?: number[];
}

/** A mount's answer: where the layer's view is, and what the parent needs of the tree it did not build. */
export interface MountedView {
  /** The spec's mount point, or that of the view the helper serves for the layer already. */
  mountpoint: string;
  /** Non-directory paths, for the overlap check between the image's layers. */
  ownedPaths: string[];
}

export type HelperRequest =
  | { id: number; type: 'mount'; spec: MountSpec }
  /**
   * Ends one mount request's use of the key's view. Mount requests of a key share its one view
   * and each is matched by one unmount: the view goes with the last. Answers whether no view of
   * the key is served any more (false: another mount request still holds it, at that mount point).
   */
  | { id: number; type: 'unmount'; key: string }
  /**
   * Starts fetching these spans, in order, ahead of the reads (the learned prefetch); answered at
   * once. Sent once the rootfs is mounted: fetching while the kernel mounts the overlay over the
   * layer kept its FUSE lookups waiting (0.15-0.35 s for mvn -v and go version).
   */
  | { id: number; type: 'prefetch'; key: string; indexes: number[] }
  /** Resolves once these spans are verified in the cache (fetched at background priority). */
  | { id: number; type: 'spans'; key: string; indexes: number[] }
  /** The spans reads needed, in first-read order, and the bytes fetched so far. */
  | { id: number; type: 'stats'; key: string };

export interface LayerStats {
  readOrder: number[];
  /** Read operations served so far, whether their spans were cached or not. */
  reads: number;
  bytesFetched: number;
  spansFetched: number;
  readErrors: number;
  /** Files copied whole at their first open, whose reads the kernel then makes itself (FUSE passthrough). */
  filesPassedThrough: number;
}

export type HelperMessage =
  | { type: 'ready'; pid: number }
  | { type: 'result'; id: number; ok: true; value?: unknown }
  | { type: 'result'; id: number; ok: false; error: ErrorJson };

