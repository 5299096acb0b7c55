import { describeError, HostpullError, isHostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { type Digest, checkManifestAgainstConfig, parseManifest, type ImageManifest, type Platform, type Descriptor, hostPlatform, selectPlatform, formatReference, type ImageReference } from '../oci/index.js';
import type { RegistryReader, RegistryRequestOptions, RepositoryRef } from '../registry/index.js';
import type { ContentStore, ImageRow, ManifestLayerRow, PullHold, PullRecord } from '../store/index.js';
import { mapLimit } from '../util/index.js';
import type { ApplyWorkers } from '../unpack/index.js';
import type { PackageClaim } from '../archive/index.js';
import { retryEvents, type LayerOutcome, type PullEvent } from './events.js';
import { fetchImageConfig } from './fetch-config.js';
import type { LayerJob } from './fetch-layer.js';
import { checkStoredLayers, layerClaims, quarantineUnjudged } from './layer-claims.js';
import { unpacksInWorker } from './unpack-placement.js';

/**
 * When to ask the registry, as podman's `--pull`: `always` HEADs the tag (a composite moves when
 * a package tag does); `missing` uses the image stored under this reference, if complete, without
 * a request; `never` also fails instead of pulling.
 */
export type PullPolicy = 'always' | 'missing' | 'never';

export interface PullOptions {
  /** Layers fetched at once. Default 4. */
  concurrency?: number;
  /** Default `always`. A reference with a digest is looked up in the store first whatever this says. */
  policy?: PullPolicy;
  /** Unpack layers into layers/<id> (default true); false only stores the blobs. */
  unpack?: boolean;
  /**
   * Keep each layer's compressed blob after it is unpacked and verified. Default: the Puller's
   * `keepBlobs`, else false (one copy of each layer on disk: the unpacked one).
   */
  keepBlobs?: boolean;
  /** Platform to pick from an index. Default: this host's. */
  platform?: Platform;
  signal?: AbortSignal;
  onEvent?: (event: PullEvent) => void;
  /**
   * Called once the manifest is known and some layer is not yet in the store, with those layers,
   * their descriptors and package claims; the layers whose blob digest it returns are not
   * fetched: the caller takes them over (lazy pulling mounts them from their TOC and completes
   * them itself, held to the same claim), and their outcomes say `deferred`. Default: nothing deferred.
   */
  defer?: (layers: DeferCandidate[], image: { manifestDigest: Digest }) => Promise<ReadonlySet<Digest>>;
  /**
   * Called once the image manifest is fetched, before its config, with the manifest's digest and
   * layer descriptors: a caller that will want more of the image's blobs than its layers (a lazy
   * run, their tables of contents) starts fetching them now, a round trip sooner than `defer`
   * could. Not called when the store has the image already. Default: none.
   */
  onManifest?: (image: { manifestDigest: Digest; layers: readonly Descriptor[] }) => void;
  /**
   * Record an up-to-date pull (nothing fetched) in the pull log. Default true: `hostpull pull`
   * asked for a pull. Preparing a rootfs passes false: using an image already stored is not a
   * pull, and counting it as one made /metrics report every rootfs as a pull and its layers as
   * bytes "reused". Pulls that fetch something, and failed ones, are always recorded.
   */
  recordUpToDate?: boolean;
}

/** A layer of the image being pulled that is not in the store yet. */
export interface DeferCandidate {
  layer: ManifestLayerRow;
  descriptor: Descriptor;
  /** The package claim it is held to (undefined for a base layer). */
  claim: PackageClaim | undefined;
}

export interface FetchLayersOptions extends PullOptions {
  /** The package claim of each layer (aligned with the layers; undefined for a base layer). Default: none. */
  claims?: ReadonlyArray<PackageClaim | undefined>;
  /** Names the image in messages. Default: the repository. */
  where?: string;
  /** Layers (by blob digest) the caller took over (see PullOptions.defer): not fetched, their outcome says `deferred`. Default: none. */
  deferred?: ReadonlySet<Digest>;
}

export interface PullResult extends PullRecord {
  manifestDigest: Digest;
  configDigest: Digest;
  layers: LayerOutcome[];
}

export interface PullerDeps {
  store: ContentStore;
  client: RegistryReader;
  logger: Logger;
  /**
   * Worker threads that unpack big layers, shared by every pull of this Puller (a daemon keeps
   * them warm). Default: a set started for each fetchLayers() that unpacks, stopped at its end.
   */
  workers?: ApplyWorkers;
  /** Default of PullOptions.keepBlobs (a daemon started with --keep-blobs). Default false. */
  keepBlobs?: boolean;
}

interface Resolved {
  manifestDigest: Digest;
  indexDigest: Digest | null;
  configDigest: Digest;
  layers: ManifestLayerRow[];
  /** The package claim of each layer (aligned with `layers`); undefined for base layers. */
  claims: Array<PackageClaim | undefined>;
  /** The manifest's layer descriptors (annotations included), when it was fetched. */
  descriptors?: Descriptor[];
  fetchedBytes: number;
  upToDate: boolean;
}

/**
 * `hostpull pull`: HEAD the manifest first and stop there if its digest is already complete in
 * the store; otherwise fetch manifest and config, then every layer the store has not seen,
 * with bounded concurrency, unpacking each while it downloads.
 */
export class Puller {
  readonly #deps: PullerDeps;

  constructor(deps: PullerDeps) {
    this.#deps = deps;
  }

  async pull(ref: ImageReference, options: PullOptions = {}): Promise<PullResult> {
    const { store } = this.#deps;
    const reference = formatReference(ref);
    const startedAt = Date.now();
    const t0 = performance.now();
    const unpack = options.unpack ?? true;
    let manifestDigest: Digest | null = null;
    // Until the image row below names them, nothing else keeps this pull's manifest, config and
    // layers from GC: a layer committed early in a long pull, or one found present but listed
    // by no image, would be removed under a budget or a short --min-age (pull-holds.ts).
    const hold = store.pullHolds.begin();
    try {
      const resolved = await this.#resolve(ref, unpack, options, hold);
      manifestDigest = resolved.manifestDigest;
      const tResolved = performance.now();
      options.onEvent?.({
        type: 'resolved',
        reference,
        manifestDigest: resolved.manifestDigest,
        upToDate: resolved.upToDate,
        layers: resolved.layers.map((l) => ({ digest: l.blobDigest, size: l.size })),
      });
      const repo: RepositoryRef = { registry: ref.registry, repository: ref.repository };
      const deferred = await this.#deferred(resolved, unpack, options);
      const outcomes = resolved.upToDate
        ? resolved.layers.map((l) => this.#hit(l, unpack))
        : await this.fetchLayers(repo, resolved.layers, { ...options, unpack, claims: resolved.claims, where: reference, deferred });
      const image: ImageRow = {
        reference,
        registry: ref.registry,
        repository: ref.repository,
        tag: ref.tag ?? null,
        manifestDigest: resolved.manifestDigest,
        indexDigest: resolved.indexDigest,
        configDigest: resolved.configDigest,
        resolvedAt: Date.now(),
      };
      store.images.put(image, resolved.layers);
      store.blobs.touch([resolved.manifestDigest, resolved.configDigest, ...resolved.layers.map((l) => l.blobDigest)]);
      if (unpack) store.layers.touch(resolved.layers.filter((l) => !deferred.has(l.blobDigest)).map((l) => l.diffId));
      const tDone = performance.now();
      const record: PullResult = {
        reference,
        manifestDigest: resolved.manifestDigest,
        configDigest: resolved.configDigest,
        startedAt,
        finishedAt: Date.now(),
        ok: true,
        upToDate: resolved.upToDate,
        bytesFetched: resolved.fetchedBytes + outcomes.reduce((n, o) => n + o.fetchedBytes, 0),
        bytesReused: outcomes.filter((o) => o.hit).reduce((n, o) => n + o.size, 0),
        layerHits: outcomes.filter((o) => o.hit).length,
        // A deferred layer is a miss too: the node did not have it. Its bytes come later, through
        // lazy pulling, and count as fetched there (ContentStore.pullStats).
        layerMisses: outcomes.filter((o) => !o.hit).length,
        phases: { resolve: round(tResolved - t0), layers: round(tDone - tResolved), total: round(tDone - t0) },
        layers: outcomes,
      };
      if (!resolved.upToDate || options.recordUpToDate !== false) store.pulls.record(record);
      return record;
    } catch (err) {
      const finishedAt = Date.now();
      // Best effort: on a full disk this insert fails too, and the pull's own error must win.
      try {
        store.pulls.record({
          reference,
          manifestDigest,
          startedAt,
          finishedAt,
          ok: false,
          upToDate: false,
          bytesFetched: 0,
          bytesReused: 0,
          layerHits: 0,
          layerMisses: 0,
          phases: { resolve: 0, layers: 0, total: round(performance.now() - t0) },
          error: describeError(err),
        });
      } catch (recordErr) {
        this.#deps.logger.debug({ err: recordErr, reference }, 'could not record the failed pull');
      }
      throw err;
    } finally {
      hold.release();
    }
  }

  /** The layers options.defer takes over: only missing ones, only when the image was fetched. */
  async #deferred(resolved: Resolved, unpack: boolean, options: PullOptions): Promise<ReadonlySet<Digest>> {
    if (!options.defer || !unpack || resolved.upToDate || !resolved.descriptors) return new Set();
    const { store } = this.#deps;
    const missing = resolved.layers
      .map((layer, i) => ({ layer, descriptor: resolved.descriptors![layer.position]!, claim: resolved.claims[i] }))
      .filter((c) => !store.layers.get(c.layer.diffId));
    return missing.length > 0 ? options.defer(missing, { manifestDigest: resolved.manifestDigest }) : new Set();
  }

  /**
   * Makes these layers of an image present in the store, fetching (and unpacking, unless `unpack`
   * is false) only what is missing, single-flight with every other pull on this root: the part of
   * a pull that follows resolving. The containerd snapshotter calls it with layers it learnt from
   * containerd's labels and the manifest, without recording an image.
   */
  async fetchLayers(repo: RepositoryRef, layers: readonly ManifestLayerRow[], options: FetchLayersOptions = {}): Promise<LayerOutcome[]> {
    const unpack = options.unpack ?? true;
    const claims = options.claims ?? [];
    const where = options.where ?? `${repo.registry}/${repo.repository}`;
    // Layers already here are held to this image's claims from the store's record (LAYER_UNSAFE
    // if one breaks its claim); those that cannot be judged that way are unpacked again.
    if (unpack) this.#checkStored({ layers, claims }, where);
    const deferred = options.deferred ?? new Set<Digest>();
    // The layer machinery (decompression, tar, workers) is loaded only when a layer is fetched
    // or unpacked: an up-to-date pull stops at the HEAD and needs none of it.
    const fetching = layers.some((l) => !deferred.has(l.blobDigest));
    const workers = this.#deps.workers ?? (unpack && fetching ? new (await import('../unpack/index.js')).ApplyWorkers() : undefined);
    // The workers the big missing layers will need start now, while this thread loads the fetch
    // machinery, takes the leases and waits for the first bytes, instead of at the first byte.
    if (unpack) workers?.warm(layers.filter((l) => !deferred.has(l.blobDigest) && unpacksInWorker(l.size) && !this.#deps.store.layers.get(l.diffId)).length);
    let outcomes: LayerOutcome[];
    try {
      outcomes = await mapLimit(
        layers,
        options.concurrency ?? 4,
        (l, i, signal) => (deferred.has(l.blobDigest) ? Promise.resolve(deferredOutcome(l)) : this.#layer(repo, l, claims[i], unpack, workers, signal, options)),
        options.signal,
      );
    } finally {
      if (workers !== this.#deps.workers) await workers?.close();
    }
    // Again once they are in: a layer another process unpacked meanwhile is held to them too.
    if (unpack) this.#checkStored({ layers, claims }, where);
    return outcomes;
  }

  /**
   * When HEAD named an index, the stored image is only the answer if it is the index's manifest
   * for the platform asked for now: the same tag pulled earlier for another platform is not.
   */
  async #samePlatform(image: ImageRow, known: Digest, options: PullOptions): Promise<boolean> {
    if (image.indexDigest !== known) return true;
    try {
      const parsed = parseManifest(await this.#deps.store.blobs.readBytes(known), undefined, `index ${known}`);
      return parsed.kind === 'index' && selectPlatform(parsed.index, options.platform ?? hostPlatform()).digest === image.manifestDigest;
    } catch {
      // Unreadable or without this platform: resolve from the registry, which reports properly.
      return false;
    }
  }

  /**
   * The stored layers of a resolution held to its claims (LAYER_UNSAFE when one breaks its claim);
   * layers that cannot be judged from the store's record are quarantined to be unpacked again.
   * Returns false when it quarantined any.
   */
  #checkStored(resolved: { layers: readonly ManifestLayerRow[]; claims: ReadonlyArray<PackageClaim | undefined> }, where: string): boolean {
    const { store } = this.#deps;
    const redo = checkStoredLayers(store, resolved.layers.map((l, i) => ({ diffId: l.diffId, claim: resolved.claims[i] })), where);
    return !quarantineUnjudged(store, redo);
  }

  /**
   * The stored image as an up-to-date resolution, when every piece of it is in the store and
   * intact: manifest and config still hash to their digests (a corrupt one is quarantined and
   * the image fetched again, never reported up to date), every layer is unpacked (its directory
   * present) and held to the image's claims.
   */
  async #upToDate(image: ImageRow | undefined, unpack: boolean): Promise<Resolved | undefined> {
    if (!image) return undefined;
    const { store } = this.#deps;
    if (!store.blobs.has(image.configDigest) || !store.blobs.has(image.manifestDigest)) return undefined;
    let manifest: ImageManifest;
    try {
      const parsed = parseManifest(await store.blobs.readBytes(image.manifestDigest), undefined, image.reference);
      await store.blobs.readBytes(image.configDigest);
      if (parsed.kind !== 'manifest') return undefined;
      manifest = parsed.manifest;
    } catch (err) {
      if (!isHostpullError(err, 'STORE_CORRUPT')) throw err;
      this.#deps.logger.warn({ reference: image.reference, err: err.message }, 'stored image is corrupt; fetching it again');
      return undefined;
    }
    const layers = store.images.layers(image.manifestDigest);
    for (const l of layers) {
      if (unpack ? !store.layers.get(l.diffId) : !store.blobs.has(l.blobDigest)) return undefined;
    }
    const claims = layerClaims(manifest, image.reference);
    if (unpack && !this.#checkStored({ layers, claims }, image.reference)) return undefined;
    return { manifestDigest: image.manifestDigest, indexDigest: image.indexDigest, configDigest: image.configDigest, layers, claims, fetchedBytes: 0, upToDate: true };
  }

  /** The complete stored image with this manifest (or index, for this platform) digest. */
  async #storedByDigest(digest: Digest, unpack: boolean, options: PullOptions): Promise<Resolved | undefined> {
    const image = this.#deps.store.images.byManifest(digest);
    const hit = await this.#upToDate(image, unpack);
    return hit && (await this.#samePlatform(image!, digest, options)) ? hit : undefined;
  }

  /** `hold` is given every digest of the image before the pull relies on the store having it. */
  async #resolve(ref: ImageReference, unpack: boolean, options: PullOptions, hold: PullHold): Promise<Resolved> {
    const { store, client } = this.#deps;
    const request = requestOptions(options);
    const policy = options.policy ?? 'always';
    // A digest names content that cannot move: the store answers whatever the policy.
    const stored = ref.digest
      ? await this.#storedByDigest(ref.digest, unpack, options)
      : policy !== 'always'
        ? await this.#upToDate(store.images.get(formatReference(ref)), unpack)
        : undefined;
    if (stored) return stored;
    if (policy === 'never') {
      throw new HostpullError('IMAGE_UNKNOWN', `${formatReference(ref)} is not in the store, and the pull policy is never`, {
        hint: `pull it first (\`hostpull pull ${formatReference(ref)}\`), or use --pull missing`,
      });
    }
    let known = ref.digest;
    // HEAD only asks whether a stored tag moved. A tag this store has not got is fetched with one
    // GET (that answer names its digest too): HEAD then GET was a round trip more, and a
    // composite the server synthesised twice.
    const storedTag = !known && store.images.get(formatReference(ref)) !== undefined;
    if (!known && storedTag) {
      const head = await client.headManifest(ref, request);
      if (!head) {
        // A HEAD answer has no body, so the registry's diagnostic (for a composite: which code
        // names are unknown) only comes with a GET; that GET throws with it.
        await client.getManifest(ref, request).catch((err: unknown) => {
          if (isHostpullError(err) && !err.hint) {
            throw new HostpullError(err.code, err.message, {
              cause: err,
              hint: 'check the tag; for a composite, every code name must be in the server catalog (`hostpull catalog ls`)',
            });
          }
          throw err;
        });
        throw new HostpullError('MANIFEST_UNKNOWN', `${formatReference(ref)}: HEAD says there is no such manifest, GET says there is`, {
          hint: 'the registry answers inconsistently; try again',
        });
      }
      known = head.digest;
      const hit = await this.#storedByDigest(known, unpack, options);
      if (hit) return hit;
    }

    let fetchedBytes = 0;
    const repoRef = { registry: ref.registry, repository: ref.repository };
    // GET by digest when HEAD told us one: the tag may move between the two requests.
    const first = await client.getManifest(known ? { ...repoRef, digest: known } : ref, request).catch((err: unknown) => {
      // Without a HEAD first, this GET is the one that tells a missing tag; for a composite its
      // body says which code names the server does not know.
      if (!known && isHostpullError(err) && !err.hint && (err.code === 'MANIFEST_UNKNOWN' || err.code === 'NAME_UNKNOWN')) {
        throw new HostpullError(err.code, err.message, { cause: err, hint: 'check the tag; for a composite, every code name must be in the server catalog (`hostpull catalog ls`)' });
      }
      throw err;
    });
    fetchedBytes += first.bytes.length;
    if (!known) {
      // The same content stored under another name is complete here already (the manifest's
      // bytes were fetched to learn that: counted).
      const hit = await this.#storedByDigest(first.digest, unpack, options);
      if (hit) return { ...hit, fetchedBytes };
    }
    const parsed = parseManifest(first.bytes, first.mediaType, formatReference(ref));
    let manifestDigest = first.digest;
    let indexDigest: Digest | null = null;
    let manifest: ImageManifest;
    hold.add([first.digest]);
    await store.blobs.putBytes(first.digest, first.bytes, first.mediaType);
    if (parsed.kind === 'index') {
      indexDigest = first.digest;
      const chosen = selectPlatform(parsed.index, options.platform ?? hostPlatform(), formatReference(ref));
      const child = await client.getManifest({ ...repoRef, digest: chosen.digest }, request);
      fetchedBytes += child.bytes.length;
      const childParsed = parseManifest(child.bytes, child.mediaType, `${formatReference(ref)}@${chosen.digest}`);
      if (childParsed.kind !== 'manifest') throw new HostpullError('MANIFEST_INVALID', `${formatReference(ref)}: index entry ${chosen.digest} is not an image manifest`);
      hold.add([child.digest]);
      await store.blobs.putBytes(child.digest, child.bytes, child.mediaType);
      manifestDigest = child.digest;
      manifest = childParsed.manifest;
    } else {
      manifest = parsed.manifest;
    }

    options.onManifest?.({ manifestDigest, layers: manifest.layers });
    hold.add([manifest.config.digest, ...manifest.layers.map((d) => d.digest)]);
    const config = await fetchImageConfig(this.#deps, repoRef, manifest, request);
    fetchedBytes += config.fetched;
    checkManifestAgainstConfig(manifest, config.config, formatReference(ref));
    const layers: ManifestLayerRow[] = manifest.layers.map((d, position) => ({
      position,
      blobDigest: d.digest,
      diffId: config.config.rootfs.diff_ids[position]!,
      mediaType: d.mediaType,
      size: d.size,
    }));
    // The layers by diffID too: one the store has may have come from another blob of the same content.
    hold.add(layers.map((l) => l.diffId));
    return { manifestDigest, indexDigest, configDigest: manifest.config.digest, layers, claims: layerClaims(manifest, formatReference(ref)), descriptors: manifest.layers, fetchedBytes, upToDate: false };
  }

  #hit(l: ManifestLayerRow, unpack: boolean): LayerOutcome {
    const layer = unpack ? this.#deps.store.layers.get(l.diffId) : undefined;
    const outcome: LayerOutcome = { digest: l.blobDigest, diffId: l.diffId, size: l.size, hit: true, fetchedBytes: 0, resumedFrom: 0, unpacked: false };
    if (layer) outcome.layerId = layer.id;
    return outcome;
  }

  async #layer(
    repo: RepositoryRef,
    l: ManifestLayerRow,
    claim: PackageClaim | undefined,
    unpack: boolean,
    workers: ApplyWorkers | undefined,
    signal: AbortSignal,
    options: PullOptions,
  ): Promise<LayerOutcome> {
    const { store } = this.#deps;
    const job: LayerJob = { repo, digest: l.blobDigest, diffId: l.diffId, size: l.size, mediaType: l.mediaType, claim };
    const done = () => {
      if (unpack) return store.layers.get(l.diffId) ? this.#hit(l, true) : undefined;
      return store.blobs.has(l.blobDigest) ? this.#hit(l, false) : undefined;
    };
    // One key per blob for every mode, so a --no-unpack pull and an unpacking pull of the same
    // blob never download it twice; the holder's work decides what is still missing.
    const outcome = await store.leases.forBlob(l.blobDigest, {
      done,
      signal,
      work: async () => {
        const { fetchLayer } = await import('./fetch-layer.js');
        const keepBlob = options.keepBlobs ?? this.#deps.keepBlobs ?? false;
        const r = await fetchLayer({ ...this.#deps, workers, onEvent: options.onEvent }, job, { unpack, keepBlob, signal });
        const o: LayerOutcome = {
          digest: l.blobDigest,
          diffId: l.diffId,
          size: l.size,
          hit: r.fetchedBytes === 0,
          fetchedBytes: r.fetchedBytes,
          resumedFrom: r.resumedFrom,
          unpacked: r.unpacked,
        };
        if (r.layer) o.layerId = r.layer.id;
        return o;
      },
    });
    options.onEvent?.({ type: 'layer-done', digest: l.blobDigest, hit: outcome.hit, fetchedBytes: outcome.fetchedBytes });
    return outcome;
  }
}

function deferredOutcome(l: ManifestLayerRow): LayerOutcome {
  return { digest: l.blobDigest, diffId: l.diffId, size: l.size, hit: false, fetchedBytes: 0, resumedFrom: 0, unpacked: false, deferred: true };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** The registry requests' side of a pull's options: its signal, and its retries as events. */
function requestOptions(options: PullOptions): RegistryRequestOptions {
  return { ...(options.signal ? { signal: options.signal } : {}), ...(options.onEvent ? { onRetry: retryEvents(options.onEvent) } : {}) };
}
