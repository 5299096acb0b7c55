import { mkdir } from 'node:fs/promises';
import { silentLogger, type Logger } from '../log.js';
import { BlobStore } from './blobs.js';
import { openDatabase, type Db } from './database.js';
import { ImageIndex } from './images.js';
import { LayerStore } from './layers.js';
import { StoreLayout } from './layout.js';
import { Leases } from './leases.js';
import { PullLog } from './pulls.js';
import { reconcile, type ReconcileReport } from './reconcile.js';
import { SnapshotLayerLog } from './snapshot-events.js';
import { SnapshotStore } from './snapshots.js';

export interface OpenStoreOptions {
  logger?: Logger;
  /** Reconcile files and rows at open (default true). */
  reconcile?: boolean;
}

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
  readonly snapshots: SnapshotStore;
  readonly snapshotLog: SnapshotLayerLog;
  readonly logger: Logger;
  reconciled: ReconcileReport | undefined;

  private constructor(layout: StoreLayout, db: Db, logger: Logger) {
    this.layout = layout;
    this.db = db;
    this.logger = logger;
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
    await mkdir(root, { recursive: true, mode: 0o711 });
    await Promise.all([layout.blobsDir, layout.ingestDir, layout.layersDir, layout.containersDir, layout.snapshotsDir].map((d) => mkdir(d, { recursive: true, mode: 0o711 })));
    const logger = options.logger ?? silentLogger();
    const store = new ContentStore(layout, openDatabase(layout.database), logger);
    if (options.reconcile !== false) {
      store.reconciled = await reconcile({ layout, blobs: store.blobs, layers: store.layers, leases: store.leases, logger });
    }
    return store;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
