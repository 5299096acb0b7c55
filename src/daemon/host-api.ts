import type { GcReport } from '../gc/index.js';
import type { Logger } from '../log.js';
import type { Digest, ImageReference } from '../oci/index.js';
import { type PullEvent, Puller, type PullResult } from '../pull/index.js';
import type { RegistryClient } from '../registry/index.js';
import type { ContentStore } from '../store/index.js';
import type { ApplyWorkers } from '../unpack/index.js';
import { hostStats, imageSummaries, type HostStats, type ImageSummary } from './queries.js';

export interface HostPullOptions {
  /** Layers fetched at once. Default 4. */
  concurrency?: number;
  /** Unpack layers (default true). */
  unpack?: boolean;
  /** Keep layer blobs after unpacking (default: the API's keepBlobs, else false). */
  keepBlobs?: boolean;
  onEvent?: (event: PullEvent) => void;
  signal?: AbortSignal;
}

export interface HostGcOptions {
  /** Byte budget for blobs + unpacked layers. Default: none (only unreferenced content goes). */
  maxStoreSize?: number;
  dryRun?: boolean;
  /** See GcPolicy.graceMs. Default 10 minutes. */
  graceMs?: number;
  signal?: AbortSignal;
}

/**
 * What the host-side commands do, behind one interface with two implementations: in-process on
 * the store ({@link LocalHostApi}) and through the daemon's socket (DaemonClient). The CLI picks
 * one; its output does not depend on which.
 */
export interface HostApi {
  readonly mode: 'local' | 'daemon';
  pull(ref: ImageReference, options?: HostPullOptions): Promise<PullResult>;
  images(): Promise<ImageSummary[]>;
  stats(): Promise<HostStats>;
  gc(options?: HostGcOptions): Promise<GcReport>;
  /** Forgets these images (all or none: IMAGE_UNKNOWN if one is not stored); their layers are GC's. */
  removeImages(references: readonly string[]): Promise<RemovedImage[]>;
  close(): Promise<void>;
}

/** An image `rmi` removed: the reference and the manifest it had resolved to. */
export interface RemovedImage {
  reference: string;
  manifestDigest: Digest;
}

export interface LocalHostApiDeps {
  store: ContentStore;
  client: RegistryClient;
  logger: Logger;
  /** Unpack workers shared by every pull (the daemon's); default: each pull starts its own. */
  workers?: ApplyWorkers;
  /** Keep layer blobs after unpacking unless a pull says otherwise (daemon --keep-blobs). Default false. */
  keepBlobs?: boolean;
  /** Called when the API is closed (closing the store and client is the owner's business). */
  onClose?: () => Promise<void>;
}

/** The in-process implementation; the daemon serves requests with one of these. */
export class LocalHostApi implements HostApi {
  readonly mode = 'local' as const;
  readonly #deps: LocalHostApiDeps;
  readonly #puller: Puller;

  constructor(deps: LocalHostApiDeps) {
    this.#deps = deps;
    this.#puller = new Puller({
      store: deps.store,
      client: deps.client,
      logger: deps.logger,
      ...(deps.workers ? { workers: deps.workers } : {}),
      ...(deps.keepBlobs ? { keepBlobs: true } : {}),
    });
  }

  pull(ref: ImageReference, options: HostPullOptions = {}): Promise<PullResult> {
    return this.#puller.pull(ref, options);
  }

  async images(): Promise<ImageSummary[]> {
    return imageSummaries(this.#deps.store);
  }

  async stats(): Promise<HostStats> {
    return hostStats(this.#deps.store);
  }

  async gc(options: HostGcOptions = {}): Promise<GcReport> {
    // Loaded here: a pull through this API should not pay for loading GC.
    const { collectGarbage } = await import('../gc/index.js');
    return collectGarbage(this.#deps.store, options);
  }

  async removeImages(references: readonly string[]): Promise<RemovedImage[]> {
    const rows = this.#deps.store.images.removeNamed(references);
    for (const r of rows) this.#deps.logger.info({ reference: r.reference, manifest: r.manifestDigest }, 'image removed');
    return rows.map((r) => ({ reference: r.reference, manifestDigest: r.manifestDigest }));
  }

  async close(): Promise<void> {
    await this.#deps.onClose?.();
  }
}
