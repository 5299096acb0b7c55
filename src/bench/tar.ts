import { TAR_END, tarHeader, tarPadding } from '../publish/index.js';

/**
 * Tar entries held in memory for the bench's synthetic layers: directories and regular files,
 * fixed owner and mtime, so the same entries always give the same bytes (and digests). Entries are
 * separate buffers so a layer can be assembled from pieces already built (the Dockerfile-style
 * baseline prepends one `.parent` entry to a package's entries). Written by archive/'s tar writer.
 */

export interface TarEntry {
  /** Path inside the layer, no leading `/`; directories end with `/`. */
  name: string;
  /** File content; absent for directories. */
  data?: Buffer;
  mode?: number;
}

/** 2020-01-01T00:00:00Z, the project's reproducible layer time. */
const MTIME = new Date(Date.UTC(2020, 0, 1));

/** One entry as header + data padded to 512 bytes. */
export function tarEntry(entry: TarEntry): Buffer {
  const common = { path: entry.name, uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: MTIME };
  if (entry.data === undefined) return Buffer.concat(tarHeader({ ...common, type: 'Directory', mode: entry.mode ?? 0o755, size: 0 }));
  return Buffer.concat([...tarHeader({ ...common, type: 'File', mode: entry.mode ?? 0o644, size: entry.data.length }), entry.data, tarPadding(entry.data.length)]);
}

export { TAR_END };
