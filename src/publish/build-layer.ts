import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { digestOf, type Digest } from '../oci/index.js';
import type { SeekableToc, TocEntry } from '../oci/seekable-toc.js';
import { writeSpanGzip, type SpanGzipOptions } from './span-gzip.js';
import { tarStream } from './tar-stream.js';

export interface BuildLayerOptions {
  dir: string;
  prefix: string;
  /** Where the compressed layer is written. */
  outFile: string;
  /** Entry timestamps. Default: SOURCE_DATE_EPOCH if set, else 2020-01-01T00:00:00Z. */
  mtime?: Date;
  /** Uncompressed bytes per independently inflatable span. Default 1 MiB (see span-gzip.ts). */
  spanSize?: number;
  /** Spans compressed ahead (see SpanGzipOptions.concurrency). */
  concurrency?: number;
  signal?: AbortSignal;
}

export interface BuiltLayerFile {
  file: string;
  /** Digest of the gzip blob. */
  digest: Digest;
  /** Digest of the uncompressed tar (config rootfs.diff_ids). */
  diffId: Digest;
  size: number;
  mtime: Date;
  /** The layer's table of contents, and its blob (gzip JSON) as pushed. */
  toc: SeekableToc;
  tocBlob: Buffer;
  tocDigest: Digest;
}

export function defaultLayerMtime(env: NodeJS.ProcessEnv = process.env): Date {
  const sde = env.SOURCE_DATE_EPOCH;
  if (sde && /^\d+$/.test(sde)) return new Date(Number(sde) * 1000);
  return new Date(Date.UTC(2020, 0, 1));
}

/**
 * Packs `dir` under `prefix` into a seekable gzip layer file (independently inflatable spans,
 * compressed on all cores: see span-gzip.ts) and its table of contents, hashing the tar and the
 * gzip as they stream. The same tree and options give the same bytes with the same zlib.
 */
export async function buildLayerFile(options: BuildLayerOptions): Promise<BuiltLayerFile> {
  const mtime = options.mtime ?? defaultLayerMtime();
  const entries: TocEntry[] = [];
  const out = createWriteStream(options.outFile);
  const spanOptions: SpanGzipOptions = {
    ...(options.spanSize ? { spanSize: options.spanSize } : {}),
    ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };
  let gz;
  try {
    gz = await writeSpanGzip(tarStream({ dir: options.dir, prefix: options.prefix, mtime, onEntry: (e) => entries.push(e) }), out, spanOptions);
    out.end();
    await finished(out);
  } catch (err) {
    out.destroy();
    throw err;
  }
  const toc: SeekableToc = {
    version: 1,
    digest: gz.digest,
    diffId: gz.diffId,
    size: gz.size,
    uncompressedSize: gz.uncompressedSize,
    gzip: { headerSize: gz.headerSize, trailerSize: gz.trailerSize },
    spans: gz.spans,
    entries,
  };
  const tocBlob = gzipSync(JSON.stringify(toc), { level: 9 });
  return { file: options.outFile, digest: gz.digest, diffId: gz.diffId, size: gz.size, mtime, toc, tocBlob, tocDigest: digestOf(tocBlob) };
}
