import { statfsSync } from 'node:fs';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { silentLogger, type Logger } from '../log.js';
import type { Digest } from '../oci/index.js';
import { BlobStore, type BlobRow } from './blobs.js';
import { openDatabase, type Db } from './database.js';
import { ImageIndex, type ImageRow } from './images.js';
import { LayerStore, type LayerRow } from './layers.js';
import { StoreLayout } from './layout.js';
import { LazyLayerLog, NOT_REQUESTED, type LayerArrivalSummary } from './lazy-layers.js';
import { Leases } from './leases.js';
import { MountRecords } from './mounts.js';
import { removeAbandonedPartials, type PartialDownloadsOptions, type PartialDownloadsReport } from './partials.js';
import { PullHolds } from './pull-holds.js';
import { PullLog, type PullStats } from './pulls.js';
import { Quarantine } from './quarantine.js';
import { reconcile, type ReconcileReport } from './reconcile.js';
import { SnapshotLayerLog } from './snapshot-events.js';
import { SnapshotStore } from './snapshots.js';

export interface OpenStoreOptions {
  logger?: Logger;
  /** Reconcile files and rows at open (default true). */
  reconcile?: boolean;
  /** Bounds on the work an unpack into this store may do. */
  unpackLimits?: UnpackLimitOptions;
  /** Flush each unpacked layer to disk before recording it (`--sync-fs`; LayerStore). Default false. */
  syncFs?: boolean;
}

export interface UnpackLimitOptions {
  /** A layer may unpack to at most this multiple of its compressed size (+ 64 MiB). Default 100. */
  maxExpansionRatio?: number | undefined;
  /** Bytes an unpack leaves free on the store's filesystem. Default 5% of the filesystem, at most 512 MiB. */
  diskReserve?: number | undefined;
}

/** The bounds an unpack gets, in applyLayer's terms. */
export interface UnpackLimits {
  /** Unset: the readers' own default (archive's LAYER_LIMIT_DEFAULTS), the same on every side. */
  maxExpansionRatio?: number | undefined;
  keepFreeBytes: number;
}

const MiB = 1024 * 1024;

/**
 * Everything GC decides on, read in one read transaction (one consistent snapshot): the rows,
 * and what holds layers and blobs (protocol.ts rule 3).
 */
export interface StoreInventory {
  blobs: BlobRow[];
  layers: LayerRow[];
  images: Array<Pick<ImageRow, 'reference' | 'manifestDigest' | 'indexDigest' | 'configDigest'> & { layers: Array<{ blobDigest: Digest; diffId: Digest }> }>;
  /** diff_ids a recorded rootfs uses. */
  mounted: Set<Digest>;
  /** diff_ids a containerd snapshot stands for. */
  snapshotted: Set<Digest>;
  /** Digests in-flight pulls hold: blobs leased (downloading or unpacking now), and the blobs and diffIDs of images not yet recorded. */
  leased: Set<Digest>;
  now: number;
}

/** Counts and sizes of what the store holds (`hostpull stats`, /metrics). */
export interface StoreTotals {
  blobs: number;
  blobBytes: number;
  layers: number;
  unpackedBytes: number;
  mounts: number;
  snapshots: number;
}

/** {@link ContentStore.pullStats}: the pull log's figures, with what lazy pulling fetched. */
export interface HostPullStats extends PullStats {
  /** Of `bytesFetched`, the bytes lazy pulling fetched for the layers it mounted (runs, the daemon's rootfs, the snapshotter). */
  bytesFetchedLazily: number;
}

/**
 * The node's content store: SQLite indexed by digest plus the files under the root. One object
 * per process, opened by the composition root and passed down; safe beside other processes on
 * the same root (WAL, busy timeout, leases).
 */
export class ContentStore {
  readonly layout: StoreLayout;
  /**
   * The database handle, for the parts of src/store (and tests that set up a state). Other
   * folders go through the parts below and the methods of this class: the tables and the
   * protocol that keeps them consistent are the store's (test/unit/architecture.test.ts).
   */
  readonly db: Db;
  readonly blobs: BlobStore;
  readonly images: ImageIndex;
  readonly layers: LayerStore;
  readonly pulls: PullLog;
  readonly leases: Leases;
  /** What pulls in flight hold for GC until their image is recorded. */
  readonly pullHolds: PullHolds;
  readonly mounts: MountRecords;
  readonly quarantine: Quarantine;
  readonly snapshots: SnapshotStore;
  readonly snapshotLog: SnapshotLayerLog;
  /** How layers of lazy runs arrived, and the learned prefetch lists (src/lazy). */
  readonly lazyLayers: LazyLayerLog;
  readonly logger: Logger;
  readonly #limits: UnpackLimitOptions;
  reconciled: ReconcileReport | undefined;

  private constructor(layout: StoreLayout, db: Db, logger: Logger, limits: UnpackLimitOptions, syncFs: boolean) {
    this.layout = layout;
    this.db = db;
    this.logger = logger;
    this.#limits = limits;
    this.quarantine = new Quarantine(layout);
    this.blobs = new BlobStore(db, layout);
    this.images = new ImageIndex(db);
    this.layers = new LayerStore(db, layout, { syncFs });
    this.pulls = new PullLog(db);
    this.leases = new Leases(db);
    this.pullHolds = new PullHolds(db);
    this.mounts = new MountRecords(db);
    this.snapshots = new SnapshotStore(db, layout);
    this.snapshotLog = new SnapshotLayerLog(db);
    this.lazyLayers = new LazyLayerLog(db);
  }

  static async open(root: string, options: OpenStoreOptions = {}): Promise<ContentStore> {
    const layout = new StoreLayout(root);
    const dirs = [layout.root, layout.blobsDir, layout.ingestDir, layout.layersDir, layout.containersDir, layout.snapshotsDir];
    for (const d of dirs) await mkdir(d, { recursive: true, mode: 0o700 });
    await restrictToOwner(dirs);
    const logger = options.logger ?? silentLogger();
    const store = new ContentStore(layout, openDatabase(layout.database), logger, options.unpackLimits ?? {}, options.syncFs ?? false);
    if (options.reconcile !== false) {
      store.reconciled = await reconcile({ layout, blobs: store.blobs, layers: store.layers, leases: store.leases, logger });
    }
    return store;
  }

  /**
   * The bounds for the next unpack: the expansion ratio, and the disk reserve (by default 5% of
   * the store's filesystem, at most 512 MiB: a small test filesystem keeps most of its room).
   */
  unpackLimits(): UnpackLimits {
    let reserve = this.#limits.diskReserve;
    if (reserve === undefined) {
      const fs = statfsSync(this.layout.layersDir);
      reserve = Math.min(512 * MiB, Math.floor(fs.blocks * fs.bsize * 0.05));
    }
    return { maxExpansionRatio: this.#limits.maxExpansionRatio, keepFreeBytes: reserve };
  }

  /** What GC decides on, in one read transaction. */
  inventory(now = Date.now()): StoreInventory {
    return this.db.transaction(() => ({
      blobs: this.blobs.list(),
      layers: this.layers.list(),
      images: this.images.list().map((img) => ({
        reference: img.reference,
        manifestDigest: img.manifestDigest,
        indexDigest: img.indexDigest,
        configDigest: img.configDigest,
        layers: this.images.layers(img.manifestDigest).map((l) => ({ blobDigest: l.blobDigest, diffId: l.diffId })),
      })),
      mounted: this.mounts.diffIds(),
      snapshotted: this.snapshots.diffIds(),
      leased: new Set([...this.leases.liveBlobs(), ...this.pullHolds.liveDigests(now)]),
      now,
    }))();
  }

  /**
   * The pull log's figures, with what lazy pulling fetched counted as fetched: a pull that
   * defers layers to lazy pulling leaves them to the FUSE helper, which fetches their spans and
   * then the rest of them after the pull is recorded (LazyLayerRecord.bytesLazy). The
   * snapshotter's lazy layers are counted too: their bytes are fetched all the same, and the
   * snapshotter's own log records them as fetched with no bytes. One read transaction.
   */
  pullStats(): HostPullStats {
    return this.db.transaction(() => {
      const s = this.pulls.stats();
      const lazily = this.lazyLayers.bytesFetched();
      const bytesFetched = s.bytesFetched + lazily;
      const bytes = s.bytesReused + bytesFetched;
      return { ...s, bytesFetched, bytesFetchedLazily: lazily, byteHitRate: bytes ? s.bytesReused / bytes : 0 };
    })();
  }

  /** Every unpacked layer and every layer a lazy run saw, newest first, with how it arrived: one read transaction. */
  layerArrivals(): LayerArrivalSummary[] {
    return this.db.transaction(() => {
      const records = this.lazyLayers.arrivals();
      const layers = this.layers.list();
      const unpacked = new Set(layers.map((l) => l.diffId));
      const seen = new Set(records.map((r) => r.diffId));
      const out: LayerArrivalSummary[] = records.map((r) => ({ blobDigest: r.blobDigest, diffId: r.diffId, arrival: r.mode, reason: r.reason, unpacked: unpacked.has(r.diffId), bytesLazy: r.bytesLazy }));
      for (const l of layers) {
        if (!seen.has(l.diffId)) out.push({ blobDigest: l.blobDigest, diffId: l.diffId, arrival: 'whole', reason: NOT_REQUESTED, unpacked: true, bytesLazy: 0 });
      }
      return out;
    })();
  }

  /** Counts and sizes, in one statement (one snapshot). */
  totals(): StoreTotals {
    return this.db
      .prepare(
        `SELECT (SELECT COUNT(*) FROM blobs) AS blobs, (SELECT COALESCE(SUM(size), 0) FROM blobs) AS blobBytes,
                (SELECT COUNT(*) FROM layers) AS layers, (SELECT COALESCE(SUM(unpacked_size), 0) FROM layers) AS unpackedBytes,
                (SELECT COUNT(*) FROM mounts) AS mounts, (SELECT COUNT(*) FROM snapshots) AS snapshots`,
      )
      .get() as StoreTotals;
  }

  /** Partial downloads no live process holds, older than `graceMs` (protocol.ts), removed. */
  removeAbandonedPartials(options: PartialDownloadsOptions): Promise<PartialDownloadsReport> {
    return removeAbandonedPartials({ db: this.db, layout: this.layout, leases: this.leases, logger: this.logger }, options);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/**
 * The store's directories are for their owner alone (DESIGN §2): the layers hold setuid-root
 * files and device nodes of every image pulled, and a rootfs prepared for a runtime lies below
 * containers/. Another user (or a member of the daemon's socket group) who could walk in could
 * run such a file as root. Stores made by older versions with 0711 are tightened here; a
 * directory someone else owns is left alone (it is not ours to change).
 */
async function restrictToOwner(dirs: string[]): Promise<void> {
  const uid = process.geteuid?.();
  for (const d of dirs) {
    const st = await stat(d);
    if ((st.mode & 0o077) !== 0 && st.uid === uid) await chmod(d, st.mode & 0o7700);
  }
}
