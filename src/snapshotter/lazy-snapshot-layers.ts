import type { LazyCandidate, LazyLayers } from '../lazy/index.js';
import type { Logger } from '../log.js';
import type { Digest } from '../oci/index.js';
import type { DeferCandidate } from '../pull/index.js';
import type { RepositoryRef } from '../registry/index.js';

/** What a lazily served layer needs to be mounted again: where its spans come from and its verified TOC tree. */
interface LazyView {
  repo: RepositoryRef;
  cand: LazyCandidate;
  /** The completion of the mount last seen (LazyLayers starts one per mount of the view). */
  completion: Promise<unknown>;
}

/** The holder name of a snapshot's use of a lazy mount, apart from the rootfs ids of the same LazyLayers. */
const holderOf = (key: string) => `snapshot:${key}`;

/**
 * The snapshotter's side of lazy layers (`daemon --snapshotter-lazy`): the daemon's LazyLayers
 * (one FUSE helper for rootfs and snapshots) seen by diffID, as snapshots name layers.
 *
 * A layer containerd's CRI plugin prepares is *started* here instead of fetched whole: its FUSE
 * view is mounted and its background completion runs, with no holder, so it stays mounted until
 * it is complete. Every active or view snapshot whose mounts name the FUSE dir as a lowerdir then
 * holds the view, from the answer that handed the mounts out until containerd Removes (or Commits)
 * that snapshot: containerd unmounts a snapshot's overlay itself, and Remove is the first thing
 * the snapshotter hears after it did. Once complete, new mounts use layers/<id>, and LazyLayers
 * unmounts the view when its last holder is released.
 */
export class LazySnapshotLayers {
  readonly #lazy: LazyLayers;
  readonly #logger: Logger;
  /** Layers served lazily, by diffID, until their completion is in the store. */
  readonly #views = new Map<Digest, LazyView>();

  constructor(lazy: LazyLayers, logger: Logger) {
    this.#lazy = lazy;
    this.#logger = logger;
  }

  /** Which of an image's layers not in the store can be lazy, by blob digest (LazyLayers.choose: records each layer's arrival, throws the unpack's refusal). */
  choose(repo: RepositoryRef, candidates: DeferCandidate[]): Promise<Map<Digest, LazyCandidate>> {
    return this.#lazy.choose(repo, candidates);
  }

  /** Whether `diffId` is served lazily to snapshots (not complete yet). */
  serves(diffId: Digest): boolean {
    return this.#views.has(diffId);
  }

  /**
   * Mounts the layer's lazy view (or finds it mounted) and lets its background completion run;
   * from now on snapshots standing for it mount it through `dirFor`. Throws when it cannot be
   * mounted (no root, no /dev/fuse): the caller fetches the layer whole.
   */
  async start(repo: RepositoryRef, cand: LazyCandidate): Promise<void> {
    // Held by nobody: LazyLayers keeps an incomplete view mounted, and unmounts it once complete and unused.
    await this.#lazy.mount(repo, cand);
    this.#remember(repo, cand);
  }

  /** Same as start for a layer served already (its view may have been unmounted after a failed completion). */
  async resume(diffId: Digest): Promise<boolean> {
    const v = this.#views.get(diffId);
    if (!v) return false;
    await this.start(v.repo, v.cand);
    return true;
  }

  /**
   * The FUSE mount dir of `diffId`'s lazy view, held for snapshot `key` (mounted again if it was
   * unmounted); undefined when the layer is not served lazily (any more: complete, look in the store).
   */
  async dirFor(diffId: Digest, key: string): Promise<string | undefined> {
    const v = this.#views.get(diffId);
    if (!v) return undefined;
    // LazyLayers adds the holder to a mounted view before it yields: a completion that ends
    // meanwhile sees the holder and leaves the view mounted.
    const mount = await this.#lazy.mount(v.repo, v.cand, holderOf(key));
    this.#remember(v.repo, v.cand);
    return mount.dir;
  }

  /** The spans to fetch first for image `manifestDigest`: what its first lazy start read on this node, else what the server learned (LazyLayers.prefetchFor). */
  prefetchList(repo: RepositoryRef, manifestDigest: Digest): Promise<Map<Digest, number[]>> {
    return this.#lazy.prefetchFor(repo, manifestDigest);
  }

  /** Starts fetching those spans of a mounted view ahead of any read (a failure only costs the head start). */
  prefetch(blobDigest: Digest, spans: readonly number[]): Promise<void> {
    return this.#lazy.prefetch(blobDigest, spans);
  }

  /** Snapshot `key` (removed, or committed by containerd) no longer uses the lazy views its mounts named. */
  release(key: string): Promise<void> {
    return this.#lazy.release(holderOf(key));
  }

  /** Serves the layer lazily until the completion of its current mount puts it in the store. */
  #remember(repo: RepositoryRef, cand: LazyCandidate): void {
    const completion = this.#lazy.completion(cand.blobDigest);
    if (this.#views.get(cand.diffId)?.completion === completion) return;
    const view: LazyView = { repo, cand, completion };
    this.#views.set(cand.diffId, view);
    void completion.then((row) => {
      // Failed: the view stays known, and its next mount starts another completion (watched then).
      if (!row || this.#views.get(cand.diffId) !== view) return;
      this.#views.delete(cand.diffId);
      this.#logger.info({ layer: cand.blobDigest, diffId: cand.diffId }, 'snapshotter: lazy layer complete; new snapshot mounts use its directory');
    });
  }
}
