import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { treeChecksum, type LayerFootprint } from '../archive/index.js';
import { errorFromJson, type ErrorJson } from '../errors.js';
import { buildFile } from '../util/index.js';
import { treeFootprint } from './tree-footprint.js';

/** What the store records of a layer tree containerd applied, read from the tree. */
export interface LayerDirScan {
  footprint: LayerFootprint;
  treeChecksum: string;
}

/** The worker's one message. */
export type LayerDirScanMessage = { ok: true; scan: LayerDirScan } | { ok: false; error: ErrorJson };

/** The scan on this thread: one lstat and llistxattr per entry, and every file read for its CRC. */
export function scanLayerDirHere(dir: string): LayerDirScan {
  return { footprint: treeFootprint(dir), treeChecksum: treeChecksum(dir) };
}

/**
 * The scan in a worker thread. It is synchronous file system work over the whole tree: a JDK
 * containerd applied (300 MB) holds a thread for about a second, and on the daemon's that is
 * every other snapshotter call, API request and pull waiting. Run from the sources (a test
 * importing src/), there is no built worker and the scan runs here.
 */
export async function scanLayerDir(dir: string, workerEntry = buildFile('snapshotter/scan-layer-dir-worker.js')): Promise<LayerDirScan> {
  if (!existsSync(workerEntry)) return scanLayerDirHere(dir);
  const worker = new Worker(workerEntry, { workerData: { dir } });
  try {
    const message = await new Promise<LayerDirScanMessage>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the layer scan worker exited (status ${code}) without an answer`)));
    });
    if (!message.ok) throw errorFromJson(message.error);
    return message.scan;
  } finally {
    await worker.terminate();
  }
}
