import { HostpullError, isHostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { checkManifestAgainstConfig, MAX_CONFIG_BYTES, parseImageConfig, parseManifest, type ImageConfig, type ImageManifest, type Platform } from '../oci/manifest.js';
import { hostPlatform, selectPlatform } from '../oci/platform.js';
import { formatReference, type ImageReference } from '../oci/reference.js';
import type { RegistryClient, RepositoryRef } from '../registry/index.js';
import type { ContentStore } from '../store/content-store.js';
import type { ImageRow, ManifestLayerRow } from '../store/images.js';
import type { PullRecord } from '../store/pulls.js';
import type { ApplyWorkers } from '../unpack/index.js';
import { mapLimit } from '../util/limit.js';
import type { LayerOutcome, PullEvent } from './events.js';
import type { LayerJob } from './fetch-layer.js';

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
}

export interface PullResult extends PullRecord {
  manifestDigest: Digest;
  configDigest: Digest;
  layers: LayerOutcome[];
}

export interface PullerDeps {
  store: ContentStore;
  client: RegistryClient;
  logger: Logger;
  /**
   * Worker threads that unpack big layers, shared by every pull of this Puller (a daemon keeps
   * them warm). Default: a set started for each pull that unpacks something, stopped at its end.
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
    try {
      const resolved = await this.#resolve(ref, unpack, options);
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
      let outcomes: LayerOutcome[];
      if (resolved.upToDate) {
        outcomes = resolved.layers.map((l) => this.#hit(l, unpack));
      } else {
        // The layer machinery (decompression, tar, workers) is loaded only by a pull that fetches
        // or unpacks something: an up-to-date pull stops at the HEAD and needs none of it.
        const workers = this.#deps.workers ?? (unpack ? new (await import('../unpack/index.js')).ApplyWorkers() : undefined);
        try {
          outcomes = await mapLimit(resolved.layers, options.concurrency ?? 4, (l, _i, signal) => this.#layer(repo, l, unpack, workers, signal, options), options.signal);
        } finally {
          if (workers !== this.#deps.workers) await workers?.close();
        }
      }
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
      if (unpack) store.layers.touch(resolved.layers.map((l) => l.diffId));
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
        layerMisses: outcomes.filter((o) => !o.hit).length,
        phases: { resolve: round(tResolved - t0), layers: round(tDone - tResolved), total: round(tDone - t0) },
        layers: outcomes,
      };
      store.pulls.record(record);
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
          error: isHostpullError(err) ? `${err.code}: ${err.message}` : String(err),
        });
      } catch (recordErr) {
        this.#deps.logger.debug({ err: recordErr, reference }, 'could not record the failed pull');
      }
      throw err;
    }
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

  /** True when every piece of the image is in the store (blobs, and unpacked layers if wanted). */
  #complete(image: ImageRow, unpack: boolean): ManifestLayerRow[] | undefined {
    const { store } = this.#deps;
    const layers = store.images.layers(image.manifestDigest);
    if (!store.blobs.has(image.configDigest) || !store.blobs.has(image.manifestDigest)) return undefined;
    for (const l of layers) {
      if (unpack ? !store.layers.get(l.diffId) : !store.blobs.has(l.blobDigest)) return undefined;
    }
    return layers;
  }

  /** The stored image as an up-to-date resolution, when every piece of it is in the store. */
  #upToDate(image: ImageRow | undefined, unpack: boolean): Resolved | undefined {
    const layers = image && this.#complete(image, unpack);
    if (!image || !layers) return undefined;
    return { manifestDigest: image.manifestDigest, indexDigest: image.indexDigest, configDigest: image.configDigest, layers, fetchedBytes: 0, upToDate: true };
  }

  /** The complete stored image with this manifest (or index, for this platform) digest. */
  async #storedByDigest(digest: Digest, unpack: boolean, options: PullOptions): Promise<Resolved | undefined> {
    const image = this.#deps.store.images.byManifest(digest);
    const hit = this.#upToDate(image, unpack);
    return hit && (await this.#samePlatform(image!, digest, options)) ? hit : undefined;
  }

  async #resolve(ref: ImageReference, unpack: boolean, options: PullOptions): Promise<Resolved> {
    const { store, client } = this.#deps;
    const policy = options.policy ?? 'always';
    // A digest names content that cannot move: the store answers whatever the policy.
    const stored = ref.digest
      ? await this.#storedByDigest(ref.digest, unpack, options)
      : policy !== 'always'
        ? this.#upToDate(store.images.get(formatReference(ref)), unpack)
        : undefined;
    if (stored) return stored;
    if (policy === 'never') {
      throw new HostpullError('IMAGE_UNKNOWN', `${formatReference(ref)} is not in the store, and the pull policy is never`, {
        hint: `pull it first (hostpull pull ${formatReference(ref)}), or use --pull missing`,
      });
    }
    let known = ref.digest;
    if (!known) {
      const head = await client.headManifest(ref, { signal: options.signal });
      if (!head) {
        // A HEAD answer has no body, so the registry's diagnostic (for a composite: which code
        // names are unknown) only comes with a GET; that GET throws with it.
        await client.getManifest(ref, { signal: options.signal }).catch((err: unknown) => {
          if (isHostpullError(err) && !err.hint) {
            throw new HostpullError(err.code, err.message, {
              cause: err,
              hint: 'check the tag; for a composite, every code name must be in the server catalog (hostpull catalog ls)',
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
    const first = await client.getManifest(known ? { ...repoRef, digest: known } : ref, { signal: options.signal });
    fetchedBytes += first.bytes.length;
    const parsed = parseManifest(first.bytes, first.mediaType, formatReference(ref));
    let manifestDigest = first.digest;
    let indexDigest: Digest | null = null;
    let manifest: ImageManifest;
    await store.blobs.putBytes(first.digest, first.bytes, first.mediaType);
    if (parsed.kind === 'index') {
      indexDigest = first.digest;
      const chosen = selectPlatform(parsed.index, options.platform ?? hostPlatform(), formatReference(ref));
      const child = await client.getManifest({ ...repoRef, digest: chosen.digest }, { signal: options.signal });
      fetchedBytes += child.bytes.length;
      const childParsed = parseManifest(child.bytes, child.mediaType, `${formatReference(ref)}@${chosen.digest}`);
      if (childParsed.kind !== 'manifest') throw new HostpullError('MANIFEST_INVALID', `${formatReference(ref)}: index entry ${chosen.digest} is not an image manifest`);
      await store.blobs.putBytes(child.digest, child.bytes, child.mediaType);
      manifestDigest = child.digest;
      manifest = childParsed.manifest;
    } else {
      manifest = parsed.manifest;
    }

    const config = await this.#config(repoRef, manifest, options.signal);
    fetchedBytes += config.fetched;
    checkManifestAgainstConfig(manifest, config.config, formatReference(ref));
    const layers: ManifestLayerRow[] = manifest.layers.map((d, position) => ({
      position,
      blobDigest: d.digest,
      diffId: config.config.rootfs.diff_ids[position]!,
      mediaType: d.mediaType,
      size: d.size,
    }));
    return { manifestDigest, indexDigest, configDigest: manifest.config.digest, layers, fetchedBytes, upToDate: false };
  }

  async #config(repo: RepositoryRef, manifest: ImageManifest, signal?: AbortSignal): Promise<{ config: ImageConfig; fetched: number }> {
    const { store, client } = this.#deps;
    const digest = manifest.config.digest;
    if (store.blobs.has(digest)) return { config: parseImageConfig(await store.blobs.readBytes(digest), `config ${digest}`), fetched: 0 };
    if (manifest.config.size > MAX_CONFIG_BYTES) {
      throw new HostpullError('CONFIG_INVALID', `config ${digest} declares ${manifest.config.size} bytes, over the ${MAX_CONFIG_BYTES}-byte limit`);
    }
    const bytes = await client.fetchBlobBytes(repo, digest, MAX_CONFIG_BYTES, { signal });
    if (bytes.length !== manifest.config.size || digestOf(bytes) !== digest) {
      throw new HostpullError('DIGEST_MISMATCH', `config ${digest} from ${repo.registry}/${repo.repository} does not match its descriptor`);
    }
    const config = parseImageConfig(bytes, `config ${digest}`);
    await store.blobs.putBytes(digest, bytes, manifest.config.mediaType);
    return { config, fetched: bytes.length };
  }

  #hit(l: ManifestLayerRow, unpack: boolean): LayerOutcome {
    const layer = unpack ? this.#deps.store.layers.get(l.diffId) : undefined;
    const outcome: LayerOutcome = { digest: l.blobDigest, diffId: l.diffId, size: l.size, hit: true, fetchedBytes: 0, resumedFrom: 0, unpacked: false };
    if (layer) outcome.layerId = layer.id;
    return outcome;
  }

  async #layer(repo: RepositoryRef, l: ManifestLayerRow, unpack: boolean, workers: ApplyWorkers | undefined, signal: AbortSignal, options: PullOptions): Promise<LayerOutcome> {
    const { store } = this.#deps;
    const job: LayerJob = { repo, digest: l.blobDigest, diffId: l.diffId, size: l.size, mediaType: l.mediaType };
    const done = () => {
      if (unpack) return store.layers.get(l.diffId) ? this.#hit(l, true) : undefined;
      return store.blobs.has(l.blobDigest) ? this.#hit(l, false) : undefined;
    };
    // One key per blob for every mode, so a --no-unpack pull and an unpacking pull of the same
    // blob never download it twice; the holder's work decides what is still missing.
    const outcome = await store.leases.run(`blob:${l.blobDigest}`, {
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

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
