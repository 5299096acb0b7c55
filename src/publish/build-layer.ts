import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createGzip } from 'node:zlib';
import { HashingStream, type Digest } from '../oci/index.js';
import { tarStream } from './tar-stream.js';

export interface BuildLayerOptions {
  dir: string;
  prefix: string;
  /** Where the compressed layer is written. */
  outFile: string;
  /** Entry timestamps. Default: SOURCE_DATE_EPOCH if set, else 2020-01-01T00:00:00Z. */
  mtime?: Date;
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
}

export function defaultLayerMtime(env: NodeJS.ProcessEnv = process.env): Date {
  const sde = env.SOURCE_DATE_EPOCH;
  if (sde && /^\d+$/.test(sde)) return new Date(Number(sde) * 1000);
  return new Date(Date.UTC(2020, 0, 1));
}

/**
 * Packs `dir` under `prefix` into a gzip layer file, hashing the tar and the gzip as they stream.
 * Node's gzip header has no file name and mtime 0, and the level is fixed, so the same tree gives
 * the same bytes with the same zlib.
 */
export async function buildLayerFile(options: BuildLayerOptions): Promise<BuiltLayerFile> {
  const mtime = options.mtime ?? defaultLayerMtime();
  const tar = new HashingStream();
  const gzip = new HashingStream();
  await pipeline(
    Readable.from(tarStream({ dir: options.dir, prefix: options.prefix, mtime })),
    tar,
    createGzip({ level: 6, strategy: zlibConstants.Z_DEFAULT_STRATEGY }),
    gzip,
    createWriteStream(options.outFile),
    ...(options.signal ? [{ signal: options.signal }] : []),
  );
  return { file: options.outFile, digest: gzip.digest(), diffId: tar.digest(), size: gzip.bytes, mtime };
}
