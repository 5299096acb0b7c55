import { statfsSync } from 'node:fs';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { silentLogger, type Logger } from '../log.js';
import { BlobStore } from './blobs.js';
import { openDatabase, type Db } from './database.js';
import { ImageIndex } from './images.js';
import { LayerStore } from './layers.js';
import { StoreLayout } from './layout.js';
import { Leases } from './leases.js';
import { PullLog } from './pulls.js';
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
}

export interface UnpackLimitOptions {
  /** A layer may unpack to at most this multiple of its compressed size (+ 64 MiB). Default 100. */
  maxExpansionRatio?: number | undefined;
  /** Bytes an unpack leaves free on the store's filesystem. Default 5% of the filesystem, at most 512 MiB. */
  diskReserve?: number | undefined;
}

/** The bounds an unpack gets, in applyLayer's terms. */
export interface UnpackLimits {
  maxExpansionRatio: number;
  keepFreeBytes: number;
}

const MiB = 1024 * 1024;

/**
 * The node's content store: SQLite indexed by digest plus the files under the root. One object
 * per process, opened by the composition root and passed down; safe beside other processes on
 * the same root (WAL, busy timeout, leases).
 */
export class ContentStore {
  readonly layout: StoreLayout;
  readonly db: Db;
  readonly blobs: BlobStore;
  readonly images: ImageIndex;
  readonly layers: LayerStore;
  readonly pulls: PullLog;
  readonly leases: Leases;
  readonly quarantine: Quarantine;
  readonly snapshots: SnapshotStore;
  readonly snapshotLog: SnapshotLayerLog;
  readonly logger: Logger;
  readonly #limits: UnpackLimitOptions;
  reconciled: ReconcileReport | undefined;

  private constructor(layout: StoreLayout, db: Db, logger: Logger, limits: UnpackLimitOptions) {
    this.layout = layout;
    this.db = db;
    this.logger = logger;
    this.#limits = limits;
    this.quarantine = new Quarantine(layout);
    this.blobs = new BlobStore(db, layout);
    this.images = new ImageIndex(db);
    this.layers = new LayerStore(db, layout);
    this.pulls = new PullLog(db);
    this.leases = new Leases(db);
    this.snapshots = new SnapshotStore(db, layout);
    this.snapshotLog = new SnapshotLayerLog(db);
  }

  static async open(root: string, options: OpenStoreOptions = {}): Promise<ContentStore> {
    const layout = new StoreLayout(root);
    const dirs = [root, layout.blobsDir, layout.ingestDir, layout.layersDir, layout.containersDir, layout.snapshotsDir];
    for (const d of dirs) await mkdir(d, { recursive: true, mode: 0o700 });
    await restrictToOwner(dirs);
    const logger = options.logger ?? silentLogger();
    const store = new ContentStore(layout, openDatabase(layout.database), logger, options.unpackLimits ?? {});
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
    return { maxExpansionRatio: this.#limits.maxExpansionRatio ?? 100, keepFreeBytes: reserve };
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
