import { isArchiveError, type PackageClaim } from '../archive/index.js';
import { describeError, HostpullError, isHostpullError } from '../errors.js';
import type { LazyCandidate } from '../lazy/index.js';
import { LAYER_DIFF_ID_ANNOTATION, type Descriptor, type Digest, checkManifestAgainstConfig, parseManifest, formatReference, parseReference } from '../oci/index.js';
import { type DeferCandidate, type LayerOutcome, fetchImageConfig, checkStoredLayers, layerClaim, layerClaims, quarantineUnjudged, Puller, type PullerDeps } from '../pull/index.js';
import type { RepositoryRef } from '../registry/index.js';
import type { ManifestLayerRow } from '../store/index.js';
import { Semaphore } from '../util/index.js';
import { identifyAppliedLayers } from './adopt-applied-layer.js';
import { chainIdOf } from './chain-id.js';
import { CRI_IMAGE_REF_LABEL, CRI_LAYER_DIGEST_LABEL, CRI_MANIFEST_DIGEST_LABEL, type Labels } from './labels.js';
import type { LazySnapshotLayers } from './lazy-snapshot-layers.js';

export interface RemoteLayerRequest {
  /** The chainID containerd wants committed (the target label). */
  target: Digest;
  /** chainID of the parent snapshot; undefined for the bottom layer. */
  parentChain: Digest | undefined;
  labels: Labels;
}

export type RemoteLayerResult =
  | {
      handled: true;
      diffId: Digest;
      blobDigest: Digest | null;
      /** `lazy`: the layer is not in the store yet, its FUSE view stands for it until its background completion. */
      outcome: 'fetched' | 'reused' | 'lazy';
      /** Compressed bytes fetched whole for it (0 when reused or lazy). */
      bytes: number;
    }
  | { handled: false; reason: string };

/** The store, registry client and logger, and optionally the daemon's unpack workers (PullerDeps). */
export type RemoteLayersDeps = PullerDeps;

export interface RemoteLayersOptions {
  /** Layers fetched at once, the asked-for one and the ones after it. Default 4. */
  concurrency?: number;
  /** Manifests remembered (an image's layers are asked for one by one). Default 32. */
  cacheSize?: number;
  /** Aborts every fetch (the daemon's stop, once it gives up waiting). */
  signal?: AbortSignal;
  /**
   * Runs a fetch that no call waits for (a layer fetched ahead) as the daemon's own in-flight work,
   * so that its stop waits for it, or aborts it, before closing the store; refusing it (the stop
   * began) just leaves the layer to be asked for. Default: run as is.
   */
  background?: (work: () => Promise<unknown>) => Promise<unknown>;
  /** Serve layers that have a table of contents lazily instead of fetching them whole (`daemon --snapshotter-lazy`). Default: off. */
  lazy?: LazySnapshotLayers;
}

interface RemoteImage {
  repo: RepositoryRef;
  reference: string;
  manifestDigest: Digest;
  layers: ManifestLayerRow[];
  /** The manifest's layer descriptors (their annotations name a layer's TOC). */
  descriptors: Descriptor[];
  /** With lazy layers on: which layers not in the store when first asked can be lazy, by blob digest (chosen once per image). */
  lazyChoice?: Promise<Map<Digest, LazyCandidate>>;
  /** With lazy layers on: the learned prefetch list of the image (fetched once per image). */
  prefetch?: Promise<Map<Digest, number[]>>;
  /** The package claim of each layer (from the composite's annotations); undefined for base layers. */
  claims: Array<PackageClaim | undefined>;
  /** chainID of each layer in manifest order. */
  chains: Digest[];
}

/**
 * Makes a layer that containerd's CRI plugin asks for present in the store, without containerd:
 * already unpacked (under any chain, in any namespace) → reused; else fetched by hostpull from the
 * image's registry with hostpull's own credentials and registry settings. When one layer of an
 * image has to be fetched, the layers after it start too (containerd asks for them one at a time,
 * and would download everything after the first layer it is left with). What cannot be handled
 * comes back with the reason, for the log line and `hostpull stats`. A package layer that breaks
 * its claim (DESIGN §2) is refused with an error, never left to containerd: containerd would
 * apply it without the prefix rules.
 */
export class RemoteLayers {
  readonly #deps: RemoteLayersDeps;
  readonly #puller: Puller;
  readonly #limit: Semaphore;
  readonly #cacheSize: number;
  readonly #signal: AbortSignal | undefined;
  readonly #background: (work: () => Promise<unknown>) => Promise<unknown>;
  readonly #lazy: LazySnapshotLayers | undefined;
  readonly #images = new Map<string, Promise<RemoteImage>>();
  readonly #fetches = new Map<Digest, Promise<LayerOutcome>>();
  /** Layers fetched ahead of containerd's asking, by diffID → bytes: reported as fetched when asked. */
  readonly #fetchedAhead = new Map<Digest, number>();

  constructor(deps: RemoteLayersDeps, options: RemoteLayersOptions = {}) {
    this.#deps = deps;
    this.#puller = new Puller(deps);
    this.#limit = new Semaphore(options.concurrency ?? 4);
    this.#cacheSize = options.cacheSize ?? 32;
    this.#signal = options.signal;
    this.#background = options.background ?? ((work) => work());
    this.#lazy = options.lazy;
  }

  async ensure(req: RemoteLayerRequest): Promise<RemoteLayerResult> {
    const { store } = this.#deps;
    const blob = req.labels[CRI_LAYER_DIGEST_LABEL] as Digest | undefined;
    // 1. Present already: the diffID from the composite's annotation, or the layer of that blob.
    const claimed = req.labels[LAYER_DIFF_ID_ANNOTATION] as Digest | undefined;
    const candidates = [claimed, blob ? store.layers.byBlob(blob)?.diffId : undefined].filter((d): d is Digest => d !== undefined);
    const fits = candidates.find((d) => chainIdOf(req.parentChain, d) === req.target);
    // The claim comes with the labels (containerd passes a layer's containerd.io/snapshot/
    // annotations): a layer already here is held to it from the store's record.
    const claim = layerClaim(req.labels, `layer ${blob ?? req.target}`);
    if (fits && store.layers.get(fits) && this.#judged(fits, claim, blob ?? req.target)) return this.#present(fits, blob ?? null);

    // 2. Fetched by hostpull, from the image containerd is pulling.
    const imageRef = req.labels[CRI_IMAGE_REF_LABEL];
    const manifestDigest = req.labels[CRI_MANIFEST_DIGEST_LABEL] as Digest | undefined;
    if (!imageRef || !manifestDigest || !blob) {
      return {
        handled: false,
        reason: `no ${!imageRef ? CRI_IMAGE_REF_LABEL : !manifestDigest ? CRI_MANIFEST_DIGEST_LABEL : CRI_LAYER_DIGEST_LABEL} label, so hostpull does not know where to fetch the layer (a CRI pull with disable_snapshot_annotations = false sends it)`,
      };
    }
    let image: RemoteImage;
    try {
      image = await this.#image(imageRef, manifestDigest);
    } catch (err) {
      if (refusesLayer(err)) throw err;
      this.#throwIfStopping(err, blob);
      return { handled: false, reason: `resolving ${imageRef}@${manifestDigest} failed: ${describeError(err)}` };
    }
    const index = image.chains.indexOf(req.target);
    const layer = image.layers[index];
    if (!layer || layer.blobDigest !== blob) {
      return { handled: false, reason: `${image.reference} has no layer ${blob} with chainID ${req.target}` };
    }
    if (store.layers.get(layer.diffId) && this.#judged(layer.diffId, image.claims[index], image.reference)) return this.#present(layer.diffId, blob);
    const lazily = this.#lazy ? await this.#lazyChoice(image) : new Map<Digest, LazyCandidate>();
    // Completed meanwhile (by a lazy view's background pull, or another pull).
    if (store.layers.get(layer.diffId) && this.#judged(layer.diffId, image.claims[index], image.reference)) return this.#present(layer.diffId, blob);
    if (await this.#serveLazily(image, layer, lazily.get(layer.blobDigest))) {
      return { handled: true, diffId: layer.diffId, blobDigest: blob, outcome: 'lazy', bytes: 0 };
    }
    // Ahead: the layers after this one that are not here yet and not to be lazy (each fetched once, in order).
    for (const next of image.layers.slice(index + 1)) {
      if (store.layers.get(next.diffId) || lazily.has(next.blobDigest) || this.#lazy?.serves(next.diffId)) continue;
      this.#background(() => this.#fetch(image, next, true)).catch((err: unknown) => this.#deps.logger.debug({ err, digest: next.blobDigest }, 'snapshotter: fetch ahead failed'));
    }
    try {
      const outcome = await this.#fetch(image, layer);
      this.#fetchedAhead.delete(layer.diffId);
      if (this.#lazy) this.#prefetchOnceLast(image, layer);
      return { handled: true, diffId: layer.diffId, blobDigest: blob, outcome: outcome.hit ? 'reused' : 'fetched', bytes: outcome.fetchedBytes };
    } catch (err) {
      if (refusesLayer(err)) throw err;
      this.#throwIfStopping(err, blob);
      return { handled: false, reason: `fetching ${blob} from ${image.reference} failed: ${describeError(err)}` };
    }
  }

  /**
   * A fetch cut short because the daemon is stopping is not "not handled": that answer would make
   * containerd download and apply the layer itself, then Commit it to a snapshotter that is gone,
   * a wasted download and an orphaned active snapshot. UNAVAILABLE fails this pull at once; the
   * kubelet pulls again, through the daemon once it is back.
   */
  #throwIfStopping(err: unknown, blob: Digest): void {
    if (!this.#signal?.aborted) return;
    throw new HostpullError('DAEMON_STOPPING', `the hostpull daemon stopped while fetching layer ${blob}`, { hint: 'pull the image again once the daemon is back', cause: err });
  }

  /**
   * A present layer held to a package claim from the store's record: true when it keeps to it (or
   * there is no claim); throws LAYER_UNSAFE when it breaks it; false when the record cannot tell
   * (the layer is quarantined, to be fetched and unpacked again under the claim).
   */
  #judged(diffId: Digest, claim: PackageClaim | undefined, where: string): boolean {
    const redo = checkStoredLayers(this.#deps.store, [{ diffId, claim }], where);
    return !quarantineUnjudged(this.#deps.store, redo);
  }

  /** A layer that is here: fetched ahead by us (reported once as fetched), else reused. */
  #present(diffId: Digest, blobDigest: Digest | null): RemoteLayerResult {
    const ahead = this.#fetchedAhead.get(diffId);
    if (ahead === undefined) return { handled: true, diffId, blobDigest, outcome: 'reused', bytes: 0 };
    this.#fetchedAhead.delete(diffId);
    return { handled: true, diffId, blobDigest, outcome: 'fetched', bytes: ahead };
  }

  /** The layers (with diffIDs and chainIDs) of the image containerd pulls, from its manifest. */
  #image(imageRef: string, manifestDigest: Digest): Promise<RemoteImage> {
    const ref = parseReference(imageRef);
    const repo: RepositoryRef = { registry: ref.registry, repository: ref.repository };
    const key = `${repo.registry}/${repo.repository}@${manifestDigest}`;
    let p = this.#images.get(key);
    if (!p) {
      p = this.#resolve(repo, manifestDigest);
      this.#images.set(key, p);
      p.catch(() => this.#images.delete(key));
      while (this.#images.size > this.#cacheSize) this.#images.delete(this.#images.keys().next().value!);
    }
    return p;
  }

  async #resolve(repo: RepositoryRef, manifestDigest: Digest): Promise<RemoteImage> {
    const { store, client } = this.#deps;
    const reference = formatReference({ ...repo, digest: manifestDigest });
    const got = await client.getManifest({ ...repo, digest: manifestDigest }, { signal: this.#signal });
    const parsed = parseManifest(got.bytes, got.mediaType, reference);
    if (parsed.kind !== 'manifest') throw new Error(`${reference} is an index, not an image manifest`);
    const manifest = parsed.manifest;
    // A composite names each layer's diffID; any other image needs its config for them.
    let diffIds = manifest.layers.map((d) => d.annotations?.[LAYER_DIFF_ID_ANNOTATION] as Digest | undefined);
    if (diffIds.some((d) => d === undefined)) {
      const { config } = await fetchImageConfig(this.#deps, repo, manifest, this.#signal ? { signal: this.#signal } : {});
      checkManifestAgainstConfig(manifest, config, reference);
      diffIds = config.rootfs.diff_ids;
    }
    const layers: ManifestLayerRow[] = manifest.layers.map((d, position) => ({
      position,
      blobDigest: d.digest,
      diffId: diffIds[position]!,
      mediaType: d.mediaType,
      size: d.size,
    }));
    const chains: Digest[] = [];
    for (const l of layers) chains.push(chainIdOf(chains.at(-1), l.diffId));
    const image = { repo, reference, manifestDigest, layers, descriptors: manifest.layers, claims: layerClaims(manifest, reference), chains };
    // Layers containerd applied earlier without saying which (ctr image pull) may be among these.
    const adopted = await identifyAppliedLayers(store, new Map(layers.map((l) => [l.diffId, l.blobDigest])), this.#deps.logger);
    if (adopted.length > 0) this.#deps.logger.info({ snapshots: adopted.map((s) => s.name), image: reference }, 'snapshotter: layers containerd applied are now store layers');
    return image;
  }

  /**
   * Which layers of the image that are not in the store can be lazy (their TOCs fetched and held
   * to their claims at once, once per image). A layer the unpack would refuse throws its error;
   * anything else that goes wrong only makes every layer whole.
   */
  #lazyChoice(image: RemoteImage): Promise<Map<Digest, LazyCandidate>> {
    image.lazyChoice ??= (async () => {
      const candidates: DeferCandidate[] = [];
      for (const [i, layer] of image.layers.entries()) {
        if (this.#deps.store.layers.get(layer.diffId) || this.#lazy!.serves(layer.diffId)) continue;
        candidates.push({ layer, descriptor: image.descriptors[i]!, claim: image.claims[i] });
      }
      try {
        return await this.#lazy!.choose(image.repo, candidates);
      } catch (err) {
        if (refusesLayer(err)) throw err;
        this.#deps.logger.warn({ image: image.reference, reason: describeError(err) }, 'snapshotter: choosing lazy layers failed; fetching them whole');
        return new Map();
      }
    })();
    const p = image.lazyChoice;
    // A refusal is not remembered: the next ask of the image tries again (and is refused again).
    p.catch(() => (image.lazyChoice = undefined));
    return p;
  }

  /**
   * Serves the layer from a lazy view when it is served so already or was chosen lazy; false when
   * it is to be fetched whole (not chosen, or its view cannot be mounted here: no root, no /dev/fuse).
   */
  async #serveLazily(image: RemoteImage, layer: ManifestLayerRow, cand: LazyCandidate | undefined): Promise<boolean> {
    if (!this.#lazy) return false;
    try {
      if (!(await this.#lazy.resume(layer.diffId))) {
        if (!cand) return false;
        await this.#lazy.start(image.repo, cand);
      }
      this.#prefetchOnceLast(image, layer);
      return true;
    } catch (err) {
      const reason = `its lazy view could not be mounted: ${describeError(err)}`;
      this.#deps.logger.warn({ layer: layer.blobDigest, image: image.reference, reason }, 'snapshotter: layer cannot be lazy; fetching it whole');
      this.#deps.store.lazyLayers.recordArrival({ blobDigest: layer.blobDigest, diffId: layer.diffId, mode: 'whole', reason });
      return false;
    }
  }

  /**
   * Once the last layer of the image that was not here is served lazily (the pull is about to
   * end), fetches the spans the image's first lazy start read (on this node, else on the node
   * that taught the server) into its lazy views, before a container asks. Not earlier: those
   * fetches would slow the rest of the pull (the following layers' TOCs and mounts).
   */
  #prefetchOnceLast(image: RemoteImage, layer: ManifestLayerRow): void {
    const { store, logger } = this.#deps;
    const lazy = this.#lazy!;
    if (image.layers.slice(image.layers.indexOf(layer) + 1).some((l) => !store.layers.get(l.diffId) && !lazy.serves(l.diffId))) return;
    void (async () => {
      image.prefetch ??= lazy.prefetchList(image.repo, image.manifestDigest).catch((err: unknown) => {
        logger.debug({ image: image.reference, err }, 'snapshotter: no prefetch list; reads fetch what they need');
        return new Map<Digest, number[]>();
      });
      const lists = await image.prefetch;
      for (const l of image.layers) {
        const spans = lists.get(l.blobDigest) ?? [];
        if (spans.length === 0 || !lazy.serves(l.diffId)) continue;
        logger.info({ layer: l.blobDigest, image: image.reference, prefetch: spans.length }, 'snapshotter: fetching the spans the first start of this image read');
        await lazy.prefetch(l.blobDigest, spans);
      }
    })();
  }

  /** One fetch per blob at a time in this process (the store's leases cover other processes). */
  #fetch(image: RemoteImage, layer: ManifestLayerRow, ahead = false): Promise<LayerOutcome> {
    let p = this.#fetches.get(layer.blobDigest);
    if (!p) {
      p = this.#limit.run(async () => {
        const claims = [image.claims[image.layers.indexOf(layer)]];
        const [outcome] = await this.#puller.fetchLayers(image.repo, [layer], { concurrency: 1, claims, where: image.reference, ...(this.#signal ? { signal: this.#signal } : {}) });
        await this.#dropBlob(layer.blobDigest);
        if (ahead && !outcome!.hit) this.#fetchedAhead.set(layer.diffId, outcome!.fetchedBytes);
        return outcome!;
      });
      this.#fetches.set(layer.blobDigest, p);
      void p.finally(() => this.#fetches.delete(layer.blobDigest)).catch(() => undefined);
    }
    return p;
  }

  /**
   * A layer fetched for containerd is kept unpacked only: its compressed blob is dropped (unless
   * an image hostpull pulled refers to it), so the node holds one copy of each layer.
   */
  async #dropBlob(digest: Digest): Promise<void> {
    await this.#deps.store.blobs.dropUnlessListed(digest);
  }
}

/**
 * A refusal of the layer itself (an archive rule, or its package claim): never "not handled", or
 * containerd would apply the same layer without those rules.
 */
function refusesLayer(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 8; depth++, e = (e as { cause?: unknown }).cause) {
    if (isArchiveError(e) || isHostpullError(e, 'LAYER_PREFIX_INVALID') || isHostpullError(e, 'MANIFEST_INVALID')) return true;
  }
  return false;
}
