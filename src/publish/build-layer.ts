import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { writeSeekableLayer, type SeekableLayer } from './seekable-layer.js';
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

export interface BuiltLayerFile extends SeekableLayer {
  file: string;
  mtime: Date;
}

export function defaultLayerMtime(env: NodeJS.ProcessEnv = process.env): Date {
  const sde = env.SOURCE_DATE_EPOCH;
  if (sde && /^\d+$/.test(sde)) return new Date(Number(sde) * 1000);
  return new Date(Date.UTC(2020, 0, 1));
}

/**
 * Packs `dir` under `prefix` into a seekable gzip layer file (independently inflatable spans,
 * compressed on all cores: see span-gzip.ts) and its table of contents (seekable-layer.ts),
 * hashing the tar and the gzip as they stream. The same tree and options give the same bytes
 * with the same zlib.
 */
export async function buildLayerFile(options: BuildLayerOptions): Promise<BuiltLayerFile> {
  const mtime = options.mtime ?? defaultLayerMtime();
  const out = createWriteStream(options.outFile);
  try {
    const layer = await writeSeekableLayer(tarStream({ dir: options.dir, prefix: options.prefix, mtime }), out, {
      where: `package tree ${options.dir}`,
      ...(options.spanSize ? { spanSize: options.spanSize } : {}),
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    out.end();
    await finished(out);
    return { ...layer, file: options.outFile, mtime };
  } catch (err) {
    out.destroy();
    throw err;
  }
}
