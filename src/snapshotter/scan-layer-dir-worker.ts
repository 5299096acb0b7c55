/** Worker entry of scanLayerDir: scans `workerData.dir` and posts one LayerDirScanMessage. */
import { parentPort, workerData } from 'node:worker_threads';
import { errorToJson } from '../errors.js';
import { scanLayerDirHere, type LayerDirScanMessage } from './scan-layer-dir.js';

let message: LayerDirScanMessage;
try {
  message = { ok: true, scan: scanLayerDirHere((workerData as { dir: string }).dir) };
} catch (err) {
  message = { ok: false, error: errorToJson(err) };
}
parentPort!.postMessage(message);
