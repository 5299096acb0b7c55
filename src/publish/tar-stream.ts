import { createReadStream, readFileSync, type Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { HostpullError } from '../errors.js';
import { TAR_END, tarHeader, tarPadding } from './tar-writer.js';
import { compareUtf8 } from '../util/index.js';

export interface TarStreamOptions {
  /** Directory whose contents become the layer. */
  dir: string;
  /** Where they land in the image, e.g. /opt/jdk-11.0. */
  prefix: string;
  /** Timestamp of every entry. */
  mtime: Date;
}

/**
 * Files up to this size are read whole and synchronously, bigger ones streamed. Measured on Go
 * 1.19's 13.6k files (466 MB): fs/promises streams and readFile spend most of their time waiting
 * on libuv pool round trips (open, fstat, read, close: 5.7 s, 3.7 s of it idle), readFileSync
 * takes 1.3 s, like GNU tar. Nothing else runs on this thread meanwhile that a short block hurts:
 * the compression runs on the pool.
 */
const WHOLE_FILE_MAX = 4 * 1024 * 1024;

/** One thing to pack, found by the walk before any byte is written. */
interface Item {
  /** Path in the tar, without trailing slash. */
  path: string;
  /** Where it is on disk (undefined for the prefix's ancestors). */
  full: string | undefined;
  type: 'Directory' | 'File' | 'SymbolicLink';
  mode: number;
  size: number;
  linkpath?: string;
}

/** Lists `dir` depth-first in byte order, each directory's entries lstat'ed together. */
async function walk(dir: string, tarDir: string, out: Item[]): Promise<void> {
  // Byte order, not locale order: the same on every machine, and a parent before its children.
  const names = (await readdir(dir)).sort(compareUtf8);
  const stats = await Promise.all(names.map((n) => lstat(join(dir, n))));
  const links = await Promise.all(names.map((n, i) => (stats[i]!.isSymbolicLink() ? readlink(join(dir, n)) : undefined)));
  for (const [i, name] of names.entries()) {
    const full = join(dir, name);
    const path = `${tarDir}/${name}`;
    const st: Stats = stats[i]!;
    const mode = st.mode & 0o7777;
    if (st.isDirectory()) {
      out.push({ path, full, type: 'Directory', mode, size: 0 });
      await walk(full, path, out);
    } else if (st.isSymbolicLink()) {
      out.push({ path, full, type: 'SymbolicLink', mode, size: 0, linkpath: links[i]! });
    } else if (st.isFile()) {
      out.push({ path, full, type: 'File', mode, size: st.size });
    } else {
      throw new HostpullError('PUBLISH_FAILED', `${full} is a device, socket or fifo; a package layer holds files, directories and symlinks only`);
    }
  }
}

function changed(full: string, size: number, got: number): HostpullError {
  return new HostpullError('PUBLISH_FAILED', `${full} changed size while it was being packed (${size} → ${got} bytes)`);
}

/**
 * A deterministic tar of `dir` placed under `prefix`: entries in byte order, the prefix's parent
 * directories first, owner 0:0 with empty user/group names, one fixed mtime, permission bits
 * kept, hardlinks stored as separate files (link detection depends on inode numbers, which a copy
 * of the tree does not preserve). Yields buffers; a file is held whole only up to 4 MiB, bigger
 * ones are streamed.
 */
export async function* tarStream(options: TarStreamOptions): AsyncGenerator<Buffer> {
  const prefix = options.prefix.replace(/^\/+|\/+$/g, '');
  const common = { uid: 0, gid: 0, uname: '', gname: '', mtime: options.mtime };
  const parts = prefix.split('/');
  const items: Item[] = [];
  for (let i = 1; i <= parts.length; i++) {
    const mode = i === parts.length ? (await lstat(options.dir)).mode & 0o7777 : 0o755;
    items.push({ path: parts.slice(0, i).join('/'), full: undefined, type: 'Directory', mode, size: 0 });
  }
  await walk(options.dir, prefix, items);

  for (const item of items) {
    const blocks = tarHeader({
      ...common,
      path: item.type === 'Directory' ? `${item.path}/` : item.path,
      type: item.type,
      mode: item.mode,
      size: item.size,
      ...(item.linkpath !== undefined ? { linkpath: item.linkpath } : {}),
    });
    yield* blocks;
    if (item.type !== 'File') continue;
    if (item.size <= WHOLE_FILE_MAX) {
      const data = readFileSync(item.full!);
      if (data.length !== item.size) throw changed(item.full!, item.size, data.length);
      if (data.length > 0) yield data;
    } else {
      let written = 0;
      for await (const chunk of createReadStream(item.full!, { highWaterMark: 1024 * 1024 })) {
        written += (chunk as Buffer).length;
        if (written > item.size) break;
        yield chunk as Buffer;
      }
      if (written !== item.size) throw changed(item.full!, item.size, written);
    }
    const pad = tarPadding(item.size);
    if (pad.length > 0) yield pad;
  }
  yield TAR_END;
}
