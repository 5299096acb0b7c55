import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { treeChecksum } from '../archive/index.js';
import { errnoCode, HostpullError } from '../errors.js';
import { digestAlgorithm, type Digest } from '../oci/index.js';
import { hashFile } from './blobs.js';
import type { ContentStore } from './content-store.js';

export interface VerifyOptions {
  /** Quarantine what is found corrupt (the next pull fetches or unpacks it again). Default false. */
  repair?: boolean;
  signal?: AbortSignal;
  /** Called before each item is checked, for progress output. */
  onItem?: (kind: 'blob' | 'layer', index: number, total: number) => void;
}

export interface VerifyProblem {
  kind: 'blob' | 'layer';
  /** The blob's digest, or the layer's diffID. */
  id: string;
  path: string;
  problem: string;
  /** Quarantined by this run (only with `repair`). */
  repaired: boolean;
  /** Where it went. */
  quarantinedTo?: string;
}

export interface VerifyReport {
  blobsChecked: number;
  layersChecked: number;
  problems: VerifyProblem[];
  /** Entries of quarantine/ from earlier runs or pulls, removed by this repair. */
  quarantinePurged: number;
}

/**
 * `hostpull verify`: every blob row against its file (present, right size, hashes to its digest)
 * and every layer row against its directory (present, and the tree checksum recorded at unpack,
 * see archive/tree-checksum.ts). With `repair`, what is wrong is quarantined — its row goes, its
 * file or directory moves to quarantine/ — so the next pull or run fetches and unpacks it again,
 * and what earlier quarantines left there is removed.
 */
export async function verifyStore(store: ContentStore, options: VerifyOptions = {}): Promise<VerifyReport> {
  const repair = options.repair ?? false;
  const problems: VerifyProblem[] = [];
  const quarantinePurged = repair ? await store.quarantine.purge() : 0;

  const blobs = store.blobs.list();
  for (const [i, row] of blobs.entries()) {
    options.signal?.throwIfAborted();
    options.onItem?.('blob', i, blobs.length);
    const path = store.blobs.path(row.digest);
    const problem = await blobProblem(path, row.digest, row.size);
    if (problem === undefined) continue;
    const quarantinedTo = repair ? store.blobs.quarantine(row.digest) : undefined;
    problems.push({ kind: 'blob', id: row.digest, path, problem, repaired: repair, ...(quarantinedTo ? { quarantinedTo } : {}) });
  }

  const layers = store.layers.list();
  for (const [i, row] of layers.entries()) {
    options.signal?.throwIfAborted();
    options.onItem?.('layer', i, layers.length);
    const path = store.layers.dir(row);
    const problem = layerProblem(path, store.layers.treeChecksum(row.diffId));
    if (problem === undefined) continue;
    const quarantinedTo = repair ? store.layers.quarantine(row) : undefined;
    problems.push({ kind: 'layer', id: row.diffId, path, problem, repaired: repair, ...(quarantinedTo ? { quarantinedTo } : {}) });
  }
  return { blobsChecked: blobs.length, layersChecked: layers.length, problems, quarantinePurged };
}

async function blobProblem(path: string, digest: Digest, size: number): Promise<string | undefined> {
  try {
    const st = await stat(path);
    if (st.size !== size) return `file is ${st.size} bytes, the record says ${size}`;
    const actual = await hashFile(path, digestAlgorithm(digest));
    return actual.digest === digest ? undefined : `content hashes to ${actual.digest}`;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 'file is missing';
    return `cannot read the file: ${errnoCode(err) ?? String(err)}`;
  }
}

function layerProblem(path: string, recorded: string | null): string | undefined {
  if (!existsSync(path)) return 'directory is missing';
  if (recorded === null) return 'no checksum recorded (unpacked by an older hostpull): cannot be verified';
  let actual: string;
  try {
    actual = treeChecksum(path);
  } catch (err) {
    return `cannot read the tree: ${errnoCode(err) ?? (err instanceof HostpullError ? err.message : String(err))}`;
  }
  return actual === recorded ? undefined : 'content differs from what was unpacked (tree checksum mismatch)';
}
