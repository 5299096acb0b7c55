import { join, resolve } from 'node:path';
import { digestAlgorithm, digestHex, type Digest } from '../oci/index.js';
import { partialFileName } from './protocol.js';

/** The on-disk layout of a store root (DESIGN §3 "On disk"). */
export class StoreLayout {
  readonly root: string;
  readonly database: string;
  readonly blobsDir: string;
  readonly ingestDir: string;
  readonly layersDir: string;
  readonly containersDir: string;
  /** `hostpull run --name`: one symlink per name, to the id of the container that holds it. */
  readonly containerNamesDir: string;
  /** Blobs and layers found corrupt, moved aside so the next pull fetches them again. */
  readonly quarantineDir: string;
  readonly snapshotsDir: string;

  constructor(root: string) {
    // Absolute: overlay mount options, the runtime's bundle and the FUSE helper (another
    // process) take these paths, and a relative one would name another place there.
    this.root = resolve(root);
    this.database = join(this.root, 'hostpull.db');
    this.blobsDir = join(this.root, 'blobs');
    this.ingestDir = join(this.root, 'ingest');
    this.layersDir = join(this.root, 'layers');
    this.containersDir = join(this.root, 'containers');
    this.containerNamesDir = join(this.root, 'container-names');
    this.quarantineDir = join(this.root, 'quarantine');
    this.snapshotsDir = join(this.root, 'snapshots');
  }

  /** blobs/sha256/ab/abcdef…: a two-hex fan-out keeps directories small on big stores. */
  blobPath(digest: Digest): string {
    const hex = digestHex(digest);
    return join(this.blobsDir, digestAlgorithm(digest), hex.slice(0, 2), hex);
  }

  /**
   * One shared partial file per digest, so a download killed midway is found and resumed; with
   * `ownFile`, a file of this process alone (protocol.ts partialFileName).
   */
  ingestPath(digest: Digest, ownFile = false): string {
    return join(this.ingestDir, partialFileName(digest, ownFile));
  }

  /** Short per-layer paths keep overlay's one-page option string good for many layers. */
  layerDir(id: number): string {
    return join(this.layersDir, String(id));
  }

  /** A containerd snapshot's own directory (fs/ = its upper, work/), short for overlay's option page. */
  snapshotDir(id: number): string {
    return join(this.snapshotsDir, String(id));
  }

  /** A snapshot's fs/: an active one's upper, or the tree containerd applied into a committed one. */
  snapshotFsDir(id: number): string {
    return join(this.snapshotDir(id), 'fs');
  }
}
