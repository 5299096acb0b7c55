import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { isArchiveError, LAYER_LIMIT_DEFAULTS, type PackageClaim } from '../archive/index.js';
import { describeError, HostpullError, isHostpullError } from '../errors.js';
import { processStartTime } from '../util/index.js';
import type { Logger, LogLevel } from '../log.js';
import type { Descriptor, Digest } from '../oci/index.js';
import { layerCompression } from '../oci/index.js';
import { MAX_TOC_BLOB_BYTES, parseTocBlob, TOC_ANNOTATION, TOC_MEDIA_TYPE } from '../oci/index.js';
import type { DeferCandidate } from '../pull/index.js';
import type { RegistryClient, RepositoryRef } from '../registry/index.js';
import type { ContentStore } from '../store/index.js';
import type { LayerRow } from '../store/index.js';
import { removeHelperMounts } from './cleanup-lazy-mounts.js';
import { completeLayer } from './complete-layer.js';
import { FuseHelper } from './fuse-helper.js';
import type { FetchPolicy } from './helper-protocol.js';
import { helperMountDir, spanCacheDir } from './lazy-paths.js';
import { fetchPrefetchList, publishPrefetchList } from './prefetch-exchange.js';
import { LazyTree, parseLayerToc } from './lazy-tree.js';
import { SpanCache } from './span-cache.js';

export interface LazyLayersOptions {
  store: ContentStore;
  /** Fetches TOC blobs and talks to the server's prefetch API (the pull's client). */
  client: RegistryClient;
  logger: Logger;
  /** The helper's log level (its lines go to this process's stderr). Default: the logger's. */
  logLevel?: LogLevel;
  /** Hosts the helper may reach over plain http besides loopback. Default []. */
  insecureRegistries?: string[];
  /** Per-span retry bound: the longest a reader waits before EIO (see SpanFetcher). Default 3 × 10 s. */
  fetch?: Partial<FetchPolicy>;
  /**
   * The background pull of a layer starts at least this long after mounting it, and then once
   * its reads have needed no new span for a second (at most 30 s after mounting): a starting
   * container gets the link to itself first (a JVM starting over the lazy JDK reads for several
   * seconds). Readers still go first afterwards (see SpanFetcher's backgroundConcurrency).
   * Default 2000 ms.
   */
  backgroundDelayMs?: number;
  /**
   * A helper started already (FuseHelper.start), which these layers then own: `hostpull run
   * --lazy` starts it before loading the rest of itself, so the two load their modules at once.
   * Default: started at prestart() or the first mount.
   */
  helper?: FuseHelper;
}

/** The TOC a layer descriptor names (composite manifests carry it as an annotation), if any. */
function tocDigestOf(c: Pick<DeferCandidate, 'descriptor'>): Digest | undefined {
  return c.descriptor.annotations?.[TOC_ANNOTATION] as Digest | undefined;
}

/** A layer's reads are taken as settled once they needed no new span for this long. */
const READS_IDLE_MS = 1000;
/**
 * A view mounted ahead (see choose) that no mount() took over within this long is unmounted, and
 * a TOC fetched ahead (fetchTocsAhead) that choose() did not take is dropped.
 */
const EARLY_MOUNT_TTL_MS = 60_000;
/** The background pull starts at the latest this long after mounting, busy reads or not. */
const BACKGROUND_MAX_WAIT_MS = 30_000;

/** A layer that can be shown lazily, as the helper that mounted its view judged it from its verified TOC. */
export interface LazyCandidate {
  blobDigest: Digest;
  diffId: Digest;
  /** Blob size and media type, as the manifest gives them. */
  size: number;
  mediaType: string;
  /** The package claim it is held to, as an unpack would hold it (none for a base layer). */
  claim: PackageClaim | undefined;
  tocDigest: Digest;
  /** Non-directory paths of its tree, for the overlap check between the image's layers. */
  ownedPaths: string[];
}

/** A TOC's verdict, from whichever process judged it: the layer cannot be lazy, or the image is refused (an archive error). */
function isTocVerdict(err: unknown): boolean {
  return isArchiveError(err) || isHostpullError(err, 'LAZY_REFUSED') || isHostpullError(err, 'TOC_INVALID') || isHostpullError(err, 'DIGEST_MISMATCH');
}

/**
 * What choose() makes of a candidate: why it is pulled whole, known before its TOC is looked at
 * (recorded quietly), or the judging of its TOC: its tree's paths, or the error that says why not.
 */
type Verdict = string | Promise<string[]>;

/** A layer's learned prefetch list as choose() has it: if it is here now, and once it comes (undefined: none). */
interface LearnedList {
  now(): number[] | undefined;
  later: Promise<number[] | undefined>;
}

/** A view the helper mounted: its mount point, and the paths of the tree it built. */
interface View {
  dir: string;
  ownedPaths: string[];
}

/** A verdict under one claim holds under the other: the same prefix and the same leave for setuid files (the code only names it). */
function sameClaim(a: PackageClaim | undefined, b: PackageClaim | undefined): boolean {
  if (!a || !b) return a === b;
  return a.prefix === b.prefix && a.allowSetuid === b.allowSetuid;
}

/** A lazy layer as a rootfs uses it. */
export interface LazyMount {
  blobDigest: Digest;
  diffId: Digest;
  /** The FUSE mount point: the layer's overlay lowerdir. */
  dir: string;
  /** Non-directory paths, for the overlap check between package layers. */
  ownedPaths: string[];
}

interface LayerState {
  cand: LazyCandidate;
  dir: string;
  /** The helper serving the view. */
  helper: FuseHelper;
  holders: Set<string>;
  /** Settles when the background pull is done: the unpacked layer, or undefined if it failed. */
  completed: Promise<LayerRow | undefined>;
  done: boolean;
  unmounted: boolean;
}

/**
 * Lazy layers of one hostpull process (a `run`, the daemon): decides which layers of an image can
 * be lazy, mounts them through one FUSE helper process, completes each in the background (unpacked
 * into layers/<id> as a whole pull would), and unmounts a layer once it is complete and no rootfs
 * holds it. This is the API a containerd snapshotter would use too: `choose`, `mount` with a
 * holder name, `completion`, `release`.
 */
export class LazyLayers {
  readonly #o: LazyLayersOptions;
  readonly #layers = new Map<Digest, LayerState>();
  readonly #mounting = new Map<Digest, Promise<LayerState>>();
  /** Views the helper mounts for choose(), until mount() takes them over, with the claim each was judged under. */
  readonly #early = new Map<Digest, { claim: PackageClaim | undefined; view: Promise<View> }>();
  /** TOC blobs fetched ahead of choose() ({@link fetchTocsAhead}), until choose() takes each or it is dropped (failed, or EARLY_MOUNT_TTL_MS). */
  readonly #tocFetches = new Map<Digest, Promise<Buffer>>();
  readonly #abort = new AbortController();
  #helper: FuseHelper | undefined;
  #helperDir: string | undefined;
  /** Removals of the mount dirs of helpers that exited (#helperGone), awaited by close(). */
  readonly #goneDirs = new Set<Promise<void>>();
  #nextMount = 0;

  constructor(options: LazyLayersOptions) {
    this.#o = options;
    if (options.helper) this.#adopt(options.helper);
  }

  get #fetch(): FetchPolicy {
    return { attempts: this.#o.fetch?.attempts ?? 3, attemptTimeoutMs: this.#o.fetch?.attemptTimeoutMs ?? 10_000 };
  }

  /**
   * Starts fetching the TOCs of the image's gzip layers that this node has not unpacked (the
   * puller's `onManifest`), while the pull fetches the image's config: choose() then finds them
   * here or in the store, a round trip sooner than when it asked for them itself. Says whether
   * any layer may be lazy (its TOC is on its way, or in the store already). choose() waits for a
   * fetch under way, and its failure is the layer's reason; one that failed before choose() asks
   * is asked for again.
   */
  fetchTocsAhead(repo: RepositoryRef, layers: readonly Descriptor[]): boolean {
    let any = false;
    for (const descriptor of layers) {
      const tocDigest = tocDigestOf({ descriptor });
      if (!tocDigest || layerCompression(descriptor.mediaType) !== 'gzip' || this.#o.store.layers.byBlob(descriptor.digest)) continue;
      any = true;
      if (this.#o.store.blobs.has(tocDigest) || this.#tocFetches.has(tocDigest)) continue;
      const fetching = this.#fetchToc(repo, tocDigest);
      this.#tocFetches.set(tocDigest, fetching);
      // A TOC choose() never takes (the pull failed on the config) is dropped after a while.
      const drop = () => this.#tocFetches.get(tocDigest) === fetching && this.#tocFetches.delete(tocDigest);
      fetching.then(() => setTimeout(drop, EARLY_MOUNT_TTL_MS).unref(), drop);
    }
    return any;
  }

  /**
   * Which of the layers a pull has not got yet can be lazy (the puller's `defer`): gzip layers
   * whose manifest descriptor names a TOC that is fetched, verified and fits the layer. Every
   * layer gets an arrival record: lazy, or whole with the reason.
   *
   * Each TOC is held to the layer's package claim through the unpack's entry checker (LazyTree):
   * a layer an unpack would refuse throws that same error here (LAYER_UNSAFE…), before any layer
   * of the image is used or a byte of it fetched, rather than being pulled whole to be refused.
   *
   * `learned` is the image's learned prefetch list (prefetchFor), when the caller asked for it:
   * each view mounted ahead fetches from its layer's list as soon as both are there (the list
   * goes with the mount when it is in by then), 10-20 ms before the rootfs is mounted; prefetch()
   * then asks for nothing more. The mount never waits for the list. Only a layer judged fit
   * fetches so: were another layer of the image refused, what it fetched is verified bytes of a
   * fit layer, and its view is dropped with the rest.
   */
  async choose(repo: RepositoryRef, candidates: DeferCandidate[], why?: string, learned?: Promise<ReadonlyMap<Digest, number[]>>): Promise<Map<Digest, LazyCandidate>> {
    let learnedNow: ReadonlyMap<Digest, number[]> | undefined;
    const lists = learned?.then(
      (l) => (learnedNow = l),
      () => undefined,
    );
    const listOf = (d: Digest): LearnedList => ({ now: () => learnedNow?.get(d), later: lists?.then((l) => l?.get(d)) ?? Promise.resolve(undefined) });
    // The TOCs are fetched together (one round trip of waiting, not one per layer), judged in
    // layer order. The judge is the helper: it mounts each view as soon as its TOC is stored, and
    // builds the tree through the entry checker under the layer's claim on the way; the mount
    // succeeding is the verdict. This process builds no tree of its own: Go 1.19's 13,620 entries
    // cost each process 70-100 ms of CPU, on the two cores the runtime probe also wants, and the
    // container waited for the slower of the two. A layer judged not lazy is unmounted again below.
    const mountedAhead: Digest[] = [];
    const verdicts = candidates.map((c): Verdict => {
      const tocDigest = tocDigestOf(c);
      if (why) return why;
      if (!tocDigest) return 'no table of contents (published without one, or not a package layer)';
      const p =
        layerCompression(c.layer.mediaType) === 'gzip'
          ? this.#verdict(repo, c, tocDigest, mountedAhead, listOf(c.layer.blobDigest))
          : Promise.reject(new HostpullError('LAZY_REFUSED', `media type ${c.layer.mediaType} is not gzip`));
      p.catch(() => undefined); // awaited below, in order
      return p;
    });
    const chosen = new Map<Digest, LazyCandidate>();
    try {
      await this.#judge(candidates, verdicts, chosen);
      return chosen;
    } catch (err) {
      chosen.clear(); // the image is refused: nothing of it is mounted
      throw err;
    } finally {
      // Not lazy after all, or the image is refused: nothing of it stays mounted.
      await Promise.all(mountedAhead.filter((d) => !chosen.has(d)).map((d) => this.#dropEarly(d)));
    }
  }

  /** choose()'s verdict on each candidate, in layer order: lazy ones go into `chosen`, the others get their reason recorded. */
  async #judge(candidates: DeferCandidate[], verdicts: Verdict[], chosen: Map<Digest, LazyCandidate>): Promise<void> {
    for (const [i, c] of candidates.entries()) {
      const { layer, claim } = c;
      const whole = (reason: string) => this.#o.store.lazyLayers.recordArrival({ blobDigest: layer.blobDigest, diffId: layer.diffId, mode: 'whole', reason });
      const verdict = verdicts[i]!;
      if (typeof verdict === 'string') {
        whole(verdict);
        continue;
      }
      try {
        const ownedPaths = await verdict;
        chosen.set(layer.blobDigest, { blobDigest: layer.blobDigest, diffId: layer.diffId, size: layer.size, mediaType: layer.mediaType, claim, tocDigest: tocDigestOf(c)!, ownedPaths });
      } catch (err) {
        if (isArchiveError(err)) throw err;
        const reason = describeError(err);
        this.#o.logger.warn({ layer: layer.blobDigest, reason }, 'layer cannot be lazy; pulling it whole');
        whole(reason);
      }
    }
  }

  /**
   * The verdict on one candidate: its tree's paths, or the error that says why it cannot be lazy.
   * That of its view under the candidate's claim (see #view), else (one blob in two packages)
   * judged here.
   */
  #verdict(repo: RepositoryRef, c: DeferCandidate, tocDigest: Digest, mountedAhead: Digest[], learned: LearnedList): Promise<string[]> {
    return this.#view(repo, c, tocDigest, mountedAhead, learned) ?? this.#tocBlob(repo, tocDigest).then((blob) => this.#judgeHere(blob, c, tocDigest));
  }

  /**
   * The paths of the candidate's view under its claim: mounted ahead, taken over by mount(), or
   * being mounted already, else mounted now from its TOC once stored (listed in `mountedAhead`),
   * and fetching from the layer's learned prefetch list once both are there. Undefined when the
   * layer's view was judged under another claim.
   */
  #view(repo: RepositoryRef, c: DeferCandidate, tocDigest: Digest, mountedAhead: Digest[], learned: LearnedList): Promise<string[]> | undefined {
    const d = c.layer.blobDigest;
    const early = this.#early.get(d);
    if (early) return sameClaim(early.claim, c.claim) ? early.view.then((v) => v.ownedPaths) : undefined;
    const current = this.#layers.get(d);
    if (current && !current.unmounted) return sameClaim(current.cand.claim, c.claim) ? Promise.resolve(current.cand.ownedPaths) : undefined;
    const mounting = this.#mounting.get(d);
    if (mounting) return mounting.then(async (s) => (sameClaim(s.cand.claim, c.claim) ? s.cand.ownedPaths : this.#judgeHere(await this.#tocBlob(repo, tocDigest), c, tocDigest)));
    let listSent = false;
    const view = this.#tocBlob(repo, tocDigest).then((blob) => {
      const spans = learned.now();
      listSent = spans !== undefined;
      return this.#helperMount(repo, { blobDigest: d, diffId: c.layer.diffId, size: c.layer.size, tocDigest, claim: c.claim }, spans).catch((err: unknown) => {
        // The helper could not mount it at all (it did not start, FUSE refused): judged here from
        // the same bytes, so an image an unpack would refuse is refused before a byte of its
        // layers is fetched all the same; a fit layer is pulled whole, for the helper's reason.
        if (!isTocVerdict(err)) this.#judgeHere(blob, c, tocDigest);
        throw err;
      });
    });
    this.#keepEarly(d, c.claim, view);
    mountedAhead.push(d);
    // A list that comes after the mount was asked for goes to the helper as soon as it is here,
    // to a view still held (not dropped with a refused image).
    void Promise.all([view, learned.later])
      .then(([, spans]) => {
        if (listSent || !spans?.length || !(this.#early.has(d) || this.#layers.has(d))) return;
        return this.#helper?.prefetch(d, spans);
      })
      .catch(() => undefined); // a failed view says why elsewhere; a prefetch only costs the head start
    return view.then((v) => v.ownedPaths);
  }

  /** The candidate's TOC judged in this process, as the helper judges it at a mount: its tree's paths. */
  #judgeHere(blob: Buffer, c: DeferCandidate, tocDigest: Digest): string[] {
    const d = c.layer.blobDigest;
    const toc = parseLayerToc(blob, tocDigest, { digest: d, diffId: c.layer.diffId, size: c.layer.size }, `table of contents ${tocDigest} of layer ${d}`);
    return LazyTree.fromToc(toc, { where: `layer ${d}`, claim: c.claim, maxExpansionRatio: this.#o.store.unpackLimits().maxExpansionRatio }).ownedPaths;
  }

  /**
   * The TOC blob, in the store once this settles (the helper reads it from there): fetched from
   * the registry (verified) and kept, unless the store has it. Fetched bytes are handed on as they
   * are rather than read back from the file just written.
   */
  async #tocBlob(repo: RepositoryRef, tocDigest: Digest): Promise<Buffer> {
    // Taken as fetched (read back from the store, it would be read and hashed again).
    const ahead = this.#tocFetches.get(tocDigest);
    if (ahead) {
      this.#tocFetches.delete(tocDigest);
      return ahead;
    }
    const { store } = this.#o;
    if (store.blobs.has(tocDigest)) return store.blobs.readBytes(tocDigest);
    return this.#fetchToc(repo, tocDigest);
  }

  /** The TOC blob from the registry (verified), kept in the store. */
  async #fetchToc(repo: RepositoryRef, tocDigest: Digest): Promise<Buffer> {
    const { store, client } = this.#o;
    const bytes = await client.fetchBlobBytes(repo, tocDigest, MAX_TOC_BLOB_BYTES);
    await store.blobs.putBytes(tocDigest, bytes, TOC_MEDIA_TYPE);
    return bytes;
  }

  /** Keeps a view mounted for choose() until {@link mount} takes it over or choose() drops it. */
  #keepEarly(blobDigest: Digest, claim: PackageClaim | undefined, view: Promise<View>): void {
    const early = { claim, view };
    this.#early.set(blobDigest, early);
    // A chosen layer nobody mounts after all (a containerd pull given up halfway) is dropped after
    // a while rather than kept until stop.
    view.then(
      () => setTimeout(() => void this.#dropEarly(blobDigest, early), EARLY_MOUNT_TTL_MS).unref(),
      () => undefined,
    );
  }

  /** Unmounts a view mounted ahead that mount() did not take over (a failed one has nothing to unmount). */
  async #dropEarly(blobDigest: Digest, early = this.#early.get(blobDigest)): Promise<void> {
    if (!early || this.#early.get(blobDigest) !== early) return;
    this.#early.delete(blobDigest);
    const view = await early.view.catch(() => undefined);
    if (view === undefined) return;
    try {
      // Its mount point is left to the view's other user, if another mount of the layer shares it
      // (another image's prepare asked for the layer while this view was still mounting).
      if ((await this.#helper?.unmount(blobDigest)) !== false) await rm(view.dir, { recursive: true, force: true });
    } catch (err) {
      this.#o.logger.debug({ layer: blobDigest, dir: view.dir, err: (err as Error).message }, 'could not unmount a lazy view mounted ahead; the helper removes it when it stops');
    }
  }

  #startHelper(): FuseHelper {
    return this.#helper ?? this.#adopt(FuseHelper.start(this.#o.logger, this.#o.logLevel ?? (this.#o.logger.level as LogLevel)));
  }

  #adopt(h: FuseHelper): FuseHelper {
    this.#helper = h;
    const dir = (this.#helperDir = helperMountDir(this.#o.store.layout, h.pid, processStartTime(h.pid) ?? '0'));
    void h.exited.then(() => this.#helperGone(h, dir));
    return h;
  }

  /**
   * Its views are gone with it (those mounted ahead too); the next mount starts another helper.
   * A helper that crashed or was killed leaves its FUSE mounts behind, answering ENOTCONN: they
   * are detached (a container's overlay over one keeps its reference) and its mount dir removed
   * now, as the next start would (cleanupStaleLazyMounts), rather than kept for the life of a
   * daemon. Each of its layers is forgotten once its background pull, which fails without the
   * helper, has settled: completion() and close() still wait for it.
   */
  #helperGone(h: FuseHelper, dir: string): void {
    for (const s of this.#layers.values()) {
      if (s.helper !== h) continue;
      s.unmounted = true;
      const forget = () => void (this.#layers.get(s.cand.blobDigest) === s && this.#layers.delete(s.cand.blobDigest));
      s.completed.then(forget, forget);
    }
    const removing = removeHelperMounts(dir, this.#o.logger).then(
      () => undefined,
      (err: unknown) => this.#o.logger.warn({ dir, err: (err as Error).message }, 'could not remove the mounts of a lazy helper that exited; the next start removes them'),
    );
    this.#goneDirs.add(removing);
    void removing.finally(() => this.#goneDirs.delete(removing));
    if (this.#helper !== h) return;
    this.#helper = undefined;
    this.#early.clear();
  }

  /**
   * Mounts the layer lazily for `holder` (a rootfs id), or adds `holder` to its existing mount.
   * Without a holder the view is mounted for nobody: it stays until complete, then goes unless
   * someone holds it by then (the snapshotter's start of a layer).
   */
  async mount(repo: RepositoryRef, cand: LazyCandidate, holder?: string): Promise<LazyMount> {
    const current = this.#layers.get(cand.blobDigest);
    let s: LayerState;
    if (current && !current.unmounted) {
      s = current;
    } else {
      // One mount per layer, also for two rootfs prepared at once (the daemon): the second waits for the first's.
      let mounting = this.#mounting.get(cand.blobDigest);
      if (!mounting) {
        mounting = this.#mountLayer(repo, cand).finally(() => this.#mounting.delete(cand.blobDigest));
        this.#mounting.set(cand.blobDigest, mounting);
      }
      s = await mounting;
    }
    if (holder !== undefined) s.holders.add(holder);
    return { blobDigest: cand.blobDigest, diffId: cand.diffId, dir: s.dir, ownedPaths: cand.ownedPaths };
  }

  async #mountLayer(repo: RepositoryRef, cand: LazyCandidate): Promise<LayerState> {
    const early = this.#early.get(cand.blobDigest);
    this.#early.delete(cand.blobDigest);
    // The helper serves one view per layer: a view mounted ahead is taken over whatever claim it
    // was judged under (this candidate's was judged in choose()).
    const { dir } = (await early?.view.catch(() => undefined)) ?? (await this.#helperMount(repo, cand));
    const helper = this.#startHelper();
    const { store } = this.#o;
    store.lazyLayers.recordArrival({ blobDigest: cand.blobDigest, diffId: cand.diffId, mode: 'lazy', tocDigest: cand.tocDigest });
    const state: LayerState = { cand, dir, helper, holders: new Set(), completed: Promise.resolve(undefined), done: false, unmounted: false };
    state.completed = this.#complete(state, helper, new SpanCache(spanCacheDir(store.layout, cand.blobDigest)));
    this.#layers.set(cand.blobDigest, state);
    return state;
  }

  /**
   * Has the helper mount the layer's view from its stored TOC, held to its claim (which judges
   * it), and start fetching `prefetch` (its learned list) once judged; the view.
   */
  async #helperMount(repo: RepositoryRef, layer: Pick<LazyCandidate, 'blobDigest' | 'diffId' | 'size' | 'tocDigest' | 'claim'>, prefetch?: number[]): Promise<View> {
    const helper = this.#startHelper();
    // The helper makes the directory: no turn of this event loop between a stored TOC and the
    // request, which would otherwise wait for this process's other work.
    const dir = join(this.#helperDir!, String(this.#nextMount++));
    const { store } = this.#o;
    const { blobDigest, tocDigest, claim } = layer;
    const view = await helper.mount({
      key: blobDigest,
      diffId: layer.diffId,
      size: layer.size,
      tocFile: store.blobs.path(tocDigest),
      tocDigest,
      mountpoint: dir,
      cacheDir: spanCacheDir(store.layout, blobDigest),
      source: { registry: repo.registry, repository: repo.repository, insecureRegistries: this.#o.insecureRegistries ?? [] },
      fetch: this.#fetch,
      claim,
      maxExpansionRatio: store.unpackLimits().maxExpansionRatio ?? LAYER_LIMIT_DEFAULTS.maxExpansionRatio,
      ...(prefetch?.length ? { prefetch } : {}),
    });
    // A view the helper served already keeps its own mount point.
    return { dir: view.mountpoint, ownedPaths: view.ownedPaths };
  }

  async #complete(s: LayerState, helper: FuseHelper, cache: SpanCache): Promise<LayerRow | undefined> {
    const { store, logger } = this.#o;
    const { cand } = s;
    try {
      await this.#readsSettled(helper, cand.blobDigest);
      // Parsed here, off the start's path (the helper judged it at its mount).
      const toc = parseTocBlob(await store.blobs.readBytes(cand.tocDigest), cand.tocDigest, `table of contents ${cand.tocDigest} of layer ${cand.blobDigest}`);
      const row = await completeLayer(
        { blobDigest: cand.blobDigest, diffId: cand.diffId, toc, claim: cand.claim },
        { store, cache, ensureSpans: (indexes) => helper.spans(cand.blobDigest, indexes), signal: this.#abort.signal },
      );
      const stats = await helper.stats(cand.blobDigest).catch(() => undefined);
      store.lazyLayers.recordArrival({ blobDigest: cand.blobDigest, diffId: cand.diffId, mode: 'lazy-completed', bytesLazy: stats?.bytesFetched ?? 0 });
      logger.info({ layer: cand.blobDigest, layerId: row.id }, 'lazy layer completed: new containers use the unpacked directory');
      return row;
    } catch (err) {
      const reason = describeError(err);
      if (!this.#abort.signal.aborted) logger.error({ layer: cand.blobDigest, reason }, 'background pull of a lazy layer failed; it stays lazy while in use and is pulled again next time');
      // What its reads, its prefetch and the failed pull fetched still came over the network.
      const stats = await helper.stats(cand.blobDigest).catch(() => undefined);
      store.lazyLayers.recordArrival({ blobDigest: cand.blobDigest, diffId: cand.diffId, mode: 'lazy', reason: `not completed: ${reason}`, bytesLazy: stats?.bytesFetched ?? 0 });
      return undefined;
    } finally {
      s.done = true;
      if (s.holders.size === 0) await this.#unmount(s);
    }
  }

  /**
   * Starts fetching `spans` of a mounted lazy layer ahead of its reads (the learned prefetch),
   * once the rootfs over it is mounted; the helper asks only for what a prefetch the layer's
   * mount started (see choose) has not. A failure only costs the head start: reads fetch what they need.
   */
  async prefetch(blobDigest: Digest, spans: readonly number[]): Promise<void> {
    const s = this.#layers.get(blobDigest);
    if (!s || s.unmounted || spans.length === 0 || !this.#helper) return;
    try {
      await this.#helper.prefetch(blobDigest, [...spans]);
    } catch (err) {
      this.#o.logger.warn({ layer: blobDigest, err: (err as Error).message }, 'could not start the learned prefetch; reads fetch what they need');
    }
  }

  /**
   * The spans to fetch first when starting image `composite` lazily: what its first start read on
   * this node, else what the server learned from the first node that started it.
   */
  async prefetchFor(repo: RepositoryRef, composite: Digest): Promise<Map<Digest, number[]>> {
    const local = this.#o.store.lazyLayers.prefetchList(composite);
    if (local.size > 0) return local;
    return (await fetchPrefetchList(this.#o.client, repo.registry, composite, this.#o.logger)) ?? new Map();
  }

  /** Records what this start read as the image's list (the first start's is kept) and offers it to the server. */
  async learn(repo: RepositoryRef, composite: Digest, blobDigests: readonly Digest[]): Promise<void> {
    if (this.#o.store.lazyLayers.prefetchList(composite).size > 0) return;
    const lists = new Map<Digest, number[]>();
    for (const d of blobDigests) lists.set(d, await this.readOrder(d));
    this.#o.store.lazyLayers.recordPrefetchList(composite, lists);
    await publishPrefetchList(this.#o.client, repo.registry, composite, lists, this.#o.logger);
  }

  /** Waits the minimum delay, then until the layer's reads need no new span (bounded). */
  async #readsSettled(helper: FuseHelper, key: Digest): Promise<void> {
    const signal = this.#abort.signal;
    const minDelay = this.#o.backgroundDelayMs ?? 2000;
    const start = Date.now();
    await sleep(minDelay, undefined, { signal });
    let seen = -1;
    let quietSince = Date.now();
    while (Date.now() - start < Math.max(BACKGROUND_MAX_WAIT_MS, minDelay)) {
      // Every read counts, not only those that needed a new span: a JVM starting over spans the
      // learned prefetch already brought keeps the layer busy, and an unpack beside it would
      // take the CPU it starts with (mvn -v over the lazy JDK on 2 cores).
      const read = (await helper.stats(key))?.reads ?? 0;
      if (read !== seen) {
        seen = read;
        quietSince = Date.now();
      } else if (Date.now() - quietSince >= READS_IDLE_MS) {
        return;
      }
      await sleep(250, undefined, { signal });
    }
  }

  /** Starts the FUSE helper now, so its start overlaps the pull (a lazy run will need it). */
  prestart(): void {
    try {
      this.#startHelper();
    } catch (err) {
      this.#o.logger.debug({ err }, 'lazy helper did not start early; the first mount says why');
    }
  }

  /** Settles when the layer's background pull is done: its unpacked row, or undefined when it failed. */
  completion(blobDigest: Digest): Promise<LayerRow | undefined> {
    return this.#layers.get(blobDigest)?.completed ?? Promise.resolve(undefined);
  }

  /** Spans the layer's reads needed so far, in first-read order (for the learned prefetch). */
  async readOrder(blobDigest: Digest): Promise<number[]> {
    const s = this.#layers.get(blobDigest);
    if (!s || s.unmounted || !this.#helper) return [];
    const stats = await this.#helper.stats(blobDigest).catch(() => undefined);
    return stats?.readOrder ?? [];
  }

  /** `holder` no longer uses its lazy layers; each is unmounted once complete and unused. */
  async release(holder: string): Promise<void> {
    for (const s of this.#layers.values()) {
      if (!s.holders.delete(holder)) continue;
      if (s.holders.size === 0 && s.done) await this.#unmount(s);
    }
  }

  async #unmount(s: LayerState): Promise<void> {
    if (s.unmounted) return;
    s.unmounted = true;
    this.#layers.delete(s.cand.blobDigest);
    // Unmounted once its background pull has settled (s.done): complete or not, that stays so.
    const complete = this.#o.store.layers.get(s.cand.diffId) !== undefined;
    try {
      if ((await this.#helper?.unmount(s.cand.blobDigest)) !== false) await rm(s.dir, { recursive: true, force: true });
      this.#o.logger.info({ layer: s.cand.blobDigest, dir: s.dir, complete }, 'lazy view unmounted: nothing uses it any more');
    } catch (err) {
      this.#o.logger.warn({ layer: s.cand.blobDigest, dir: s.dir, err: (err as Error).message }, 'could not unmount a lazy layer; the next start removes it');
    }
    // Complete: the spans are in layers/<id> now. Failed: keep the verified spans for next time.
    if (complete) await new SpanCache(spanCacheDir(this.#o.store.layout, s.cand.blobDigest)).clear();
  }

  /** Waits for every background pull started so far. */
  async settled(): Promise<void> {
    await Promise.all([...this.#layers.values()].map((s) => s.completed));
  }

  /** Stops background pulls and the helper (which unmounts everything it serves). */
  async close(): Promise<void> {
    this.#abort.abort(new HostpullError('LAZY_CLOSED', 'lazy layers closed'));
    await Promise.allSettled([...this.#layers.values()].map((s) => s.completed));
    await this.#helper?.stop();
    if (this.#helperDir) await rm(this.#helperDir, { recursive: true, force: true }).catch(() => undefined);
    await Promise.all(this.#goneDirs);
  }
}
