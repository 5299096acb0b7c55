import { lstatSync, readdirSync, statfsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { expansionBound, LAYER_LIMIT_DEFAULTS, normalisePrefix, readLayer, type LayerFootprint, type PackageClaim, type TarByteBound } from '../archive/index.js';
import { errnoCode, HostpullError, isHostpullError } from '../errors.js';
import { digestAlgorithm, type Digest, type LayerCompression } from '../oci/index.js';
import { LayerWriter } from './layer-writer.js';

/**
 * Options of {@link applyLayer}: plain data only (besides `signal`), so a caller may hand them to
 * a worker thread as they are.
 */
export interface ApplyOptions {
  compression: LayerCompression;
  /** Directory to extract into; must exist and be empty. Nothing outside it is touched. */
  target: string;
  /**
   * Expected uncompressed digest (the config's `rootfs.diff_ids[i]`). A mismatch throws
   * DIFFID_MISMATCH after extraction; the caller discards the directory. Default: not checked.
   */
  expectedDiffId?: Digest;
  /** Max bytes written (sum of regular file sizes). Default 64 GiB. Exceeding → LAYER_QUOTA_EXCEEDED. */
  maxBytes?: number;
  /**
   * Max bytes of the uncompressed tar stream (headers, padding and trailing zeros do not count
   * towards maxBytes). Default `maxBytes * 1.1 + 1 GiB`.
   */
  maxTarBytes?: number;
  /**
   * Size of the compressed blob (the descriptor's size). With it, the tar stream is also bounded
   * by `maxExpansionRatio × compressedSize + 64 MiB` (decompression-bomb guard). Default: unknown.
   */
  compressedSize?: number;
  /** Default 100: the demo's real layers expand 1.1× to 3.8× (see archive/read-layer.ts). */
  maxExpansionRatio?: number;
  /**
   * Leave at least this many bytes free on the target's filesystem: the tar stream is bounded by
   * the free space at the start minus this (exceeding → LAYER_QUOTA_EXCEEDED with errno ENOSPC).
   * Default: not checked.
   */
  keepFreeBytes?: number;
  /** Max entries. Default 5,000,000. Exceeding → LAYER_QUOTA_EXCEEDED. */
  maxEntries?: number;
  /** Max path depth in components. Default 512. Exceeding → LAYER_UNSAFE. */
  maxDepth?: number;
  /**
   * The package claim this layer is held to (DESIGN §2 "The trust boundary"): only its prefix,
   * only neutral directories above it, no device nodes, setuid/setgid and capabilities only when
   * allowed. The prefix may be given as `/opt/x/`. Default: none (a base layer: any path).
   */
  claim?: PackageClaim;
  /** Create device nodes (char/block/fifo). Default: `process.getuid() === 0` (a root-owned store). */
  allowDevices?: boolean;
  /**
   * Rootless store: whiteouts and opaque dirs use `user.overlay.*` xattrs (for overlayfs
   * `userxattr`), and files keep the extracting user's ownership. Default: `process.getuid() !== 0`.
   */
  rootless?: boolean;
  signal?: AbortSignal;
  /**
   * Called with each chunk of `source` once nothing holds it any more (gzip inflated by the addon
   * only; otherwise never): an unpack worker hands the chunk's memory back to its parent with it.
   * Like `signal`, never posted to a worker.
   */
  onInputDone?: (chunk: Buffer) => void;
}

export interface ApplyResult {
  /** Digest of the uncompressed tar stream (what `rootfs.diff_ids` lists). */
  diffId: Digest;
  /** Bytes of the uncompressed tar stream. */
  uncompressedSize: number;
  /** Tar entries applied (PAX/GNU meta headers not counted; whiteouts counted). */
  entries: number;
  /** Regular files written (hardlinks not counted). */
  files: number;
  /** Non-directory paths written (not whiteouts), relative, no leading slash, sorted. */
  ownedPaths: string[];
  /** Whiteout entries as named in the archive (`a/.wh.b`, `a/.wh..wh..opq`), normalised, sorted. */
  whiteouts: string[];
  /** What the layer does to the tree, for checking it against another image's claim later. */
  footprint: LayerFootprint;
  /** Checksum of the tree as written ({@link treeChecksum}), for `hostpull verify`. */
  treeChecksum: string;
}

const GiB = 1024 ** 3;


/**
 * Decompresses `source` (the compressed blob bytes), hashes the tar stream as it passes (one
 * pass: the diffID is verified without a second read) and applies it to `opts.target`, through
 * the one tar reader and entry checker the server's registration check uses too
 * (archive/read-layer.ts). Decompression runs in parallel (zlib on the libuv pool, zstd in a
 * child process); reading and writing run synchronously, strictly in archive order.
 *
 * On any error the pipeline is torn down (source destroyed) and the error is a HostpullError:
 * LAYER_UNSAFE, LAYER_INVALID, LAYER_AMBIGUOUS, LAYER_QUOTA_EXCEEDED, DIFFID_MISMATCH,
 * LAYER_WRITE_FAILED, LAYER_TARGET_INVALID, LAYER_PREFIX_INVALID or ABORTED. Cleaning the target
 * up is the caller's job.
 */
export async function applyLayer(source: Readable, opts: ApplyOptions): Promise<ApplyResult> {
  const root = checkTarget(opts.target);
  const claim = opts.claim ? { ...opts.claim, prefix: normalisePrefix(opts.claim.prefix) } : undefined;
  const isRoot = process.getuid?.() === 0;
  const maxBytes = opts.maxBytes ?? LAYER_LIMIT_DEFAULTS.maxBytes;
  const writer = new LayerWriter({ root, allowDevices: opts.allowDevices ?? isRoot, rootless: opts.rootless ?? !isRoot });
  const algorithm = opts.expectedDiffId ? digestAlgorithm(opts.expectedDiffId) : 'sha256';
  const read = await readLayer(source, {
    compression: opts.compression,
    where: root,
    claim,
    maxEntries: opts.maxEntries ?? LAYER_LIMIT_DEFAULTS.maxEntries,
    maxDepth: opts.maxDepth ?? LAYER_LIMIT_DEFAULTS.maxDepth,
    maxBytes,
    tarBounds: tarBounds(root, maxBytes, opts),
    algorithm,
    sink: writer,
    signal: opts.signal,
    onInputDone: opts.onInputDone,
  });
  if (opts.expectedDiffId !== undefined && read.diffId !== opts.expectedDiffId) {
    throw new HostpullError('DIFFID_MISMATCH', `layer ${root}: uncompressed digest is ${read.diffId}, the image config says ${opts.expectedDiffId}`, {
      details: { layerDir: root, expected: opts.expectedDiffId, actual: read.diffId },
    });
  }
  let checksum: string;
  try {
    checksum = writer.treeChecksum();
  } catch (err) {
    throw new HostpullError('LAYER_WRITE_FAILED', `layer ${root}: cannot read back the unpacked tree: ${errnoCode(err) ?? String(err)}`, { cause: err, details: { layerDir: root } });
  }
  return {
    diffId: read.diffId,
    uncompressedSize: read.uncompressedSize,
    entries: read.entries,
    files: writer.files,
    ownedPaths: writer.ownedPaths(),
    whiteouts: writer.whiteoutEntries(),
    footprint: read.footprint,
    treeChecksum: checksum,
  };
}

/** Every bound on the uncompressed stream that applies; the smallest one stops the layer. */
function tarBounds(root: string, maxBytes: number, opts: ApplyOptions): TarByteBound[] {
  const bounds: TarByteBound[] = [
    { bytes: opts.maxTarBytes ?? maxBytes * 1.1 + GiB, rule: 'too-many-bytes', why: 'over the layer size limit' },
  ];
  if (opts.compressedSize !== undefined) bounds.push(expansionBound(opts.compressedSize, opts.maxExpansionRatio ?? LAYER_LIMIT_DEFAULTS.maxExpansionRatio));
  if (opts.keepFreeBytes !== undefined) {
    const fs = statfsSync(root);
    const free = Math.max(0, fs.bavail * fs.bsize - opts.keepFreeBytes);
    bounds.push({
      bytes: free,
      rule: 'disk-reserve',
      why: `the store's filesystem has ${fs.bavail * fs.bsize} bytes free and ${opts.keepFreeBytes} are kept in reserve (no space left on the device)`,
      details: { errno: 'ENOSPC' },
    });
  }
  return bounds;
}

function checkTarget(target: string): string {
  if (!isAbsolute(target)) target = resolve(target);
  let entries: string[];
  try {
    const st = lstatSync(target);
    if (!st.isDirectory()) throw new HostpullError('LAYER_TARGET_INVALID', `layer target ${target} is not a directory`);
    entries = readdirSync(target);
  } catch (err) {
    if (isHostpullError(err)) throw err;
    throw new HostpullError('LAYER_TARGET_INVALID', `layer target ${target}: ${errnoCode(err) ?? String(err)}`, { cause: err });
  }
  if (entries.length > 0) throw new HostpullError('LAYER_TARGET_INVALID', `layer target ${target} is not empty`);
  return target.replace(/\/+$/, '') || '/';
}
