import { lstatSync, readdirSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errnoCode, HostpullError, isHostpullError } from '../errors.js';
import { createDigester, digestAlgorithm, digestFromHash, type Digest } from '../oci/digest.js';
import type { LayerCompression } from '../oci/mediatypes.js';
import { createDecompressor } from './decompress.js';
import { LayerWriter } from './layer-writer.js';
import { TarReader } from './tar-reader.js';

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
   * Max bytes of the uncompressed tar stream (decompression-bomb guard: headers, padding and
   * trailing zeros do not count towards maxBytes). Default `maxBytes * 1.1 + 1 GiB`.
   */
  maxTarBytes?: number;
  /** Max entries. Default 5,000,000. Exceeding → LAYER_QUOTA_EXCEEDED. */
  maxEntries?: number;
  /** Max path depth in components. Default 512. Exceeding → LAYER_UNSAFE. */
  maxDepth?: number;
  /**
   * Only paths under these prefixes may be written (a package layer owns only its prefix, e.g.
   * `['opt/jdk-11.0']`); directories above a prefix are created without metadata. Device nodes are
   * always refused when set. Default: any path.
   */
  allowedPrefixes?: string[];
  /** Create device nodes (char/block/fifo). Default: `process.getuid() === 0` (a root-owned store). */
  allowDevices?: boolean;
  /**
   * Rootless store: whiteouts and opaque dirs use `user.overlay.*` xattrs (for overlayfs
   * `userxattr`), and files keep the extracting user's ownership. Default: `process.getuid() !== 0`.
   */
  rootless?: boolean;
  signal?: AbortSignal;
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
}

const GiB = 1024 ** 3;

/**
 * Decompresses `source` (the compressed blob bytes), hashes the tar stream as it passes (one
 * pass: the diffID is verified without a second read) and applies it to `opts.target`.
 *
 * Everything after decompression runs synchronously inside one Writable: the tar reader parses a
 * chunk and the writer applies each entry with sync fs calls, so there are no per-entry promises
 * and the entries are applied strictly in archive order. Decompression runs in parallel (zlib on
 * the libuv pool, zstd in a child process).
 *
 * On any error the pipeline is torn down (source destroyed) and the error is a HostpullError:
 * LAYER_UNSAFE, LAYER_INVALID, LAYER_QUOTA_EXCEEDED, DIFFID_MISMATCH, LAYER_WRITE_FAILED,
 * LAYER_TARGET_INVALID or ABORTED. Cleaning the target up is the caller's job.
 */
export async function applyLayer(source: Readable, opts: ApplyOptions): Promise<ApplyResult> {
  const root = checkTarget(opts.target);
  const isRoot = process.getuid?.() === 0;
  const maxBytes = opts.maxBytes ?? 64 * GiB;
  const writer = new LayerWriter({
    root,
    maxBytes,
    maxEntries: opts.maxEntries ?? 5_000_000,
    maxDepth: opts.maxDepth ?? 512,
    allowedPrefixes: opts.allowedPrefixes?.map((p) => normalisePrefix(p)),
    allowDevices: opts.allowDevices ?? isRoot,
    rootless: opts.rootless ?? !isRoot,
  });
  const reader = new TarReader(writer, { where: root });
  const algorithm = opts.expectedDiffId ? digestAlgorithm(opts.expectedDiffId) : 'sha256';
  const hash = createDigester(algorithm);
  // Decompression-bomb guard on the tar stream itself: headers, padding and trailing zeros do
  // not count towards maxBytes, so allow 10% + 1 GiB on top before calling it a bomb.
  const maxTarBytes = opts.maxTarBytes ?? maxBytes * 1.1 + GiB;
  let tarBytes = 0;
  // pipeline() destroys every stream with the first error, so the decompressor re-emits the
  // applier's errors: remember which side failed first to map only decompressor errors.
  let sinkError: unknown;

  const sink = new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      // Applied on the next turn of the event loop, not inside this call: zlib pushes its output
      // from the callback of one inflate step and starts the next step only when the push
      // returns, so applying synchronously here kept the threadpool idle while this thread wrote
      // files, and the reverse (one layer = one lane). Deferred, the next inflate runs while
      // this chunk is applied. Measured on the 207 MB / 4,394-file JDK17.0 layer: see the commit.
      setImmediate(() => {
        try {
          tarBytes += chunk.length;
          if (tarBytes > maxTarBytes) {
            throw new HostpullError('LAYER_QUOTA_EXCEEDED', `layer ${root}: uncompressed stream exceeds ${maxTarBytes} bytes`, {
              details: { layerDir: root },
            });
          }
          hash.update(chunk);
          reader.write(chunk);
          callback();
        } catch (err) {
          sinkError = err;
          callback(err as Error);
        }
      });
    },
    final(callback) {
      try {
        reader.end();
        writer.finish();
        callback();
      } catch (err) {
        sinkError = err;
        callback(err as Error);
      }
    },
  });

  const decompressor = createDecompressor(opts.compression);
  let decompressorError: unknown;
  decompressor.once('error', (err) => {
    decompressorError = err;
  });
  try {
    await pipeline(source, decompressor, sink, opts.signal ? { signal: opts.signal } : {});
  } catch (err) {
    writer.abort();
    if (err === sinkError) throw err;
    throw mapApplyError(err, decompressorError, root, opts.compression);
  }

  const diffId = digestFromHash(hash, algorithm);
  if (opts.expectedDiffId !== undefined && diffId !== opts.expectedDiffId) {
    throw new HostpullError('DIFFID_MISMATCH', `layer ${root}: uncompressed digest is ${diffId}, the image config says ${opts.expectedDiffId}`, {
      details: { layerDir: root, expected: opts.expectedDiffId, actual: diffId },
    });
  }
  return {
    diffId,
    uncompressedSize: tarBytes,
    entries: writer.entries,
    files: writer.files,
    ownedPaths: writer.ownedPaths(),
    whiteouts: writer.whiteoutEntries(),
  };
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

function normalisePrefix(prefix: string): string {
  const p = prefix.replace(/^\/+|\/+$/g, '').replace(/^(\.\/)+/, '');
  if (p.split('/').some((c) => c === '..' || c === '.' || c === '')) {
    throw new HostpullError('LAYER_PREFIX_INVALID', `allowed prefix ${JSON.stringify(prefix)} is not a clean relative path`);
  }
  return p;
}

/** The HostpullError applyLayer reports for a failure that did not come from the applier itself. */
export function mapApplyError(err: unknown, decompressorError: unknown, root: string, compression: LayerCompression): HostpullError {
  if (err instanceof Error && err.name === 'AbortError') {
    return new HostpullError('ABORTED', `layer ${root}: extraction aborted`, { cause: err, details: { layerDir: root } });
  }
  if (err === decompressorError) {
    const message = (err as Error).message;
    return new HostpullError('LAYER_INVALID', `layer ${root}: ${message.startsWith(compression) ? message : `${compression} decompression failed: ${message}`}`, {
      cause: err,
      details: { layerDir: root },
    });
  }
  if (isHostpullError(err)) return err;
  return new HostpullError('LAYER_READ_FAILED', `layer ${root}: reading the layer failed: ${err instanceof Error ? err.message : String(err)}`, {
    cause: err,
    details: { layerDir: root },
  });
}
