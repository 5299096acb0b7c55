/**
 * The smallest tar writer the bench needs: ustar headers for directories and regular files,
 * fixed owner and mtime, so the same entries always give the same bytes (and digests). Entries are
 * separate buffers so a layer can be assembled from pieces already built (the Dockerfile-style
 * baseline prepends one `.parent` entry to a package's entries).
 */

export interface TarEntry {
  /** Path inside the layer, no leading `/`; directories end with `/`. At most 100 bytes. */
  name: string;
  /** File content; absent for directories. */
  data?: Buffer;
  mode?: number;
}

/** 2020-01-01T00:00:00Z, the project's reproducible layer time. */
const MTIME = 1577836800;
const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, size: number, mode: number, type: '0' | '5'): Buffer {
  const h = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(name) > 100) throw new RangeError(`tar entry name over 100 bytes: ${name}`);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(MTIME, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii'); // checksum is computed with its own field as spaces
  h.write(type, 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

/** One entry as header + data padded to 512 bytes. */
export function tarEntry(entry: TarEntry): Buffer {
  if (entry.data === undefined) return header(entry.name, 0, entry.mode ?? 0o755, '5');
  const pad = (BLOCK - (entry.data.length % BLOCK)) % BLOCK;
  return Buffer.concat([header(entry.name, entry.data.length, entry.mode ?? 0o644, '0'), entry.data, Buffer.alloc(pad)]);
}

/** Two zero blocks: the end-of-archive marker. */
export const TAR_END = Buffer.alloc(2 * BLOCK);
