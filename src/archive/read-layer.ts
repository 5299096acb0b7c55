import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorText, HostpullError, isHostpullError } from '../errors.js';
import { isNativeAvailable } from '../native/index.js';
import { createDigester, digestFromHash, parseDigest, type Digest, type LayerCompression } from '../oci/index.js';
import { archiveError } from './archive-error.js';
import { createDecompressor } from './decompress.js';
import { gunzipAndHash, GunzipError } from './gunzip-and-hash.js';
import { EntryChecker, type CheckedEntrySink } from './entry-checker.js';
import type { LayerFootprint } from './layer-footprint.js';
import type { PackageClaim } from './package-claim.js';
import { TarReader } from './tar-reader.js';

/** A sink that also wants to hear about the end (or the failure) of the stream. */
export interface LayerSink extends CheckedEntrySink {
  /** After the last entry, before the result is returned. */
  finish?(): void;
  /** After a failure, to release what it holds (an open file). */
  abort?(): void;
}

/** A bound on the uncompressed tar stream, and how to say why it is what it is. */
export interface TarByteBound {
  bytes: number;
  /** `details.rule` of the error (`expansion-ratio`, `disk-reserve`, `too-many-bytes`). */
  rule: string;
  /** Completes "uncompressed stream exceeds N bytes: …". */
  why: string;
  /** Extra error details (`errno: 'ENOSPC'` for the disk bound, so the full-disk hint applies). */
  details?: Record<string, unknown>;
}

export interface ReadLayerOptions {
  compression: LayerCompression;
  /** Names the layer in messages: its target directory on a node, its digest on the server. */
  where: string;
  /** Holds the layer to a package's claim; undefined for a base layer. */
  claim?: PackageClaim | undefined;
  maxEntries: number;
  maxDepth: number;
  /** Max bytes of regular file data. */
  maxBytes: number;
  /** Bounds on the uncompressed stream (headers and padding count here); the smallest one applies. */
  tarBounds: TarByteBound[];
  /** Digest algorithm of the uncompressed stream. Default sha256. */
  algorithm?: 'sha256' | 'sha512';
  /** Receives the checked entries (the node's writer); none on the server, which only reads. */
  sink?: LayerSink | undefined;
  /**
   * Inflate gzip with the addon (gunzip-and-hash.ts). Default: when the addon loads; false takes
   * Node's zlib, as a machine without the built addon does.
   */
  nativeGunzip?: boolean;
  /** Called with each chunk of the source once the addon's inflater is done with it (see gunzipAndHash). */
  onInputDone?: ((chunk: Buffer) => void) | undefined;
  signal?: AbortSignal | undefined;
}

export interface ReadLayerResult {
  /** Digest of the uncompressed tar stream (what `rootfs.diff_ids` lists). */
  diffId: Digest;
  uncompressedSize: number;
  /** Tar entries (PAX/GNU meta headers not counted; whiteouts counted). */
  entries: number;
  footprint: LayerFootprint;
}

/** Bytes a small layer may expand to whatever its ratio: a tree of empty files is mostly tar headers. */
const EXPANSION_ALLOWANCE = 64 * 1024 * 1024;

/**
 * The bounds a layer is read under unless its reader is told otherwise: the same on the server's
 * registration check, the node's unpack and a lazy view, so no side accepts what another refuses.
 * maxBytes is the sum of regular file sizes; maxExpansionRatio feeds {@link expansionBound}.
 */
export const LAYER_LIMIT_DEFAULTS = { maxEntries: 5_000_000, maxDepth: 512, maxBytes: 64 * 1024 ** 3, maxExpansionRatio: 100 } as const;

/**
 * The bound that a decompression bomb hits: `ratio × compressed + 64 MiB`. The demo's real layers
 * (Debian base, OpenJDK 17, Maven 3.8, Go 1.19) expand 1.1× to 3.8× under gzip; 100× is far above
 * any real package and stops a 1 MiB gzip of zeros after about 164 MiB instead of 1 GiB.
 */
export function expansionBound(compressedSize: number, ratio: number): TarByteBound {
  return {
    bytes: Math.floor(compressedSize * ratio) + EXPANSION_ALLOWANCE,
    rule: 'expansion-ratio',
    why: `more than ${ratio}× the ${compressedSize}-byte compressed layer (a decompression bomb, or raise the expansion ratio limit)`,
  };
}

/**
 * Decompresses a layer, hashes the tar stream as it passes, reads it with the one tar reader and
 * holds every entry to the shared rules ({@link EntryChecker}); entries that pass go to `sink`.
 * The server runs this without a sink to check a package at registration, the node with its
 * layer writer to unpack: one reader, one set of rules, one verdict.
 *
 * Everything after decompression runs one chunk at a time on the calling thread, so entries are
 * handled strictly in archive order. A gzip layer is inflated and hashed by the addon on the
 * threadpool when it is built (gunzip-and-hash.ts), anything else through Node's streams.
 * Errors are HostpullErrors: LAYER_INVALID, LAYER_AMBIGUOUS, LAYER_UNSAFE, LAYER_QUOTA_EXCEEDED,
 * whatever the sink throws, LAYER_READ_FAILED or ABORTED.
 */
export async function readLayer(source: Readable, opts: ReadLayerOptions): Promise<ReadLayerResult> {
  const where = opts.where;
  const checker = new EntryChecker(opts.sink, { where, maxEntries: opts.maxEntries, maxDepth: opts.maxDepth, maxBytes: opts.maxBytes, claim: opts.claim });
  const reader = new TarReader(checker, { where });
  const algorithm = opts.algorithm ?? 'sha256';
  const bound = opts.tarBounds.reduce((a, b) => (b.bytes < a.bytes ? b : a));
  let tarBytes = 0;
  // A failing stream re-emits the error of whoever failed first: remember the tar side's own
  // failures, so only the decompressor's are mapped to LAYER_INVALID.
  let sinkError: unknown;
  const tarSide = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      sinkError = err;
      throw err;
    }
  };
  const tar: TarSink = {
    write: (chunk) =>
      tarSide(() => {
        tarBytes += chunk.length;
        if (tarBytes > bound.bytes) {
          throw archiveError('LAYER_QUOTA_EXCEEDED', where, bound.rule, `uncompressed stream exceeds ${bound.bytes} bytes: ${bound.why}`, bound.details ? { details: bound.details } : {});
        }
        reader.write(chunk);
      }),
    end: () =>
      tarSide(() => {
        reader.end();
        opts.sink?.finish?.();
      }),
  };

  const decompression: { error?: unknown } = {};
  let diffId: Digest;
  try {
    diffId =
      opts.compression === 'gzip' && algorithm === 'sha256' && (opts.nativeGunzip ?? isNativeAvailable())
        ? await inflateNatively(source, tar, decompression, opts.signal, opts.onInputDone)
        : await inflateWithStreams(source, tar, decompression, opts.compression, algorithm, opts.signal);
  } catch (err) {
    opts.sink?.abort?.();
    if (err === sinkError) throw err;
    throw mapReadError(err, decompression.error, where, opts.compression, opts.signal);
  }
  return { diffId, uncompressedSize: tarBytes, entries: checker.entries, footprint: checker.footprint() };
}

/** Where the inflated tar goes: each piece in order (a view to consume before returning), then the end. */
interface TarSink {
  write(chunk: Buffer): void;
  end(): void;
}

/** A gzip layer inflated and hashed on the threadpool by the addon (gunzip-and-hash.ts); this thread reads and applies. */
async function inflateNatively(
  source: Readable,
  tar: TarSink,
  decompression: { error?: unknown },
  signal: AbortSignal | undefined,
  onInputDone: ((chunk: Buffer) => void) | undefined,
): Promise<Digest> {
  try {
    const hex = await gunzipAndHash(source, (chunk) => tar.write(chunk), signal, onInputDone);
    tar.end();
    return parseDigest(`sha256:${hex}`, 'diffID');
  } catch (err) {
    if (err instanceof GunzipError) decompression.error = err;
    throw err;
  }
}

/** Any layer through Node's zlib (or zstd, or nothing) and a hash on this thread. */
async function inflateWithStreams(
  source: Readable,
  tar: TarSink,
  decompression: { error?: unknown },
  compression: LayerCompression,
  algorithm: 'sha256' | 'sha512',
  signal: AbortSignal | undefined,
): Promise<Digest> {
  const hash = createDigester(algorithm);
  const sink = new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      // Handled on the next turn of the event loop, not inside this call: zlib pushes its output
      // from the callback of one inflate step and starts the next step only when the push
      // returns, so handling it synchronously kept the threadpool idle while this thread wrote
      // files, and the reverse (one layer = one lane). Deferred, the next inflate runs while this
      // chunk is read and applied (measured: see the commit that made this change).
      setImmediate(() => {
        try {
          hash.update(chunk);
          tar.write(chunk);
          callback();
        } catch (err) {
          callback(err as Error);
        }
      });
    },
    final(callback) {
      try {
        tar.end();
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
  });
  const decompressor = createDecompressor(compression);
  decompressor.once('error', (err) => {
    decompression.error = err;
  });
  await pipeline(source, decompressor, sink, signal ? { signal } : {});
  return digestFromHash(hash, algorithm);
}

/** The HostpullError readLayer reports for a failure that is not its sink's (also used by the unpack workers for their source's errors). */
export function mapReadError(err: unknown, decompressorError: unknown, where: string, compression: LayerCompression, signal: AbortSignal | undefined): HostpullError {
  if (signal?.aborted && !isHostpullError(err)) {
    return new HostpullError('ABORTED', `layer ${where}: reading aborted`, { cause: err, details: { layerDir: where } });
  }
  if (err === decompressorError) {
    // Our zstd decompressor says what failed itself; zlib's errors ("incorrect header check") need saying which decompression.
    const message = isHostpullError(err) ? err.message : `${compression} decompression failed: ${(err as Error).message}`;
    return new HostpullError('LAYER_INVALID', `layer ${where}: ${message}`, {
      cause: err,
      details: { layerDir: where, rule: 'decompression' },
    });
  }
  if (isHostpullError(err)) return err;
  return new HostpullError('LAYER_READ_FAILED', `layer ${where}: reading the layer failed: ${errorText(err)}`, {
    cause: err,
    details: { layerDir: where },
  });
}
