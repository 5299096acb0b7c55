import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { HeaderData } from 'tar';
import { TAR_END, tarHeader as headerBlocks, tarPadding as padding } from './tar-writer.js';
import { HostpullError } from '../errors.js';

export interface TarStreamOptions {
  /** Directory whose contents become the layer. */
  dir: string;
  /** Where they land in the image, e.g. /opt/jdk-11.0. */
  prefix: string;
  /** Timestamp of every entry. */
  mtime: Date;
}

/** Byte order, not locale order: the same on every machine, and a parent before its children. */
function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * A deterministic tar of `dir` placed under `prefix`: entries in byte order, the prefix's parent
 * directories first, owner 0:0 with empty user/group names, one fixed mtime, permission bits
 * kept, hardlinks stored as separate files (link detection depends on inode numbers, which a copy
 * of the tree does not preserve). Yields buffers; file contents are streamed, never buffered whole.
 */
export async function* tarStream(options: TarStreamOptions): AsyncGenerator<Buffer> {
  const prefix = options.prefix.replace(/^\/+|\/+$/g, '');
  const common = { uid: 0, gid: 0, uname: '', gname: '', mtime: options.mtime };
  const parts = prefix.split('/');
  for (let i = 1; i <= parts.length; i++) {
    const mode = i === parts.length ? (await lstat(options.dir)).mode & 0o7777 : 0o755;
    yield* headerBlocks({ ...common, path: `${parts.slice(0, i).join('/')}/`, type: 'Directory', mode, size: 0 });
  }
  yield* walk(options.dir, prefix, common);
  yield TAR_END;
}

async function* walk(dir: string, tarDir: string, common: HeaderData): AsyncGenerator<Buffer> {
  const names = (await readdir(dir)).sort(byteCompare);
  for (const name of names) {
    const full = join(dir, name);
    const path = `${tarDir}/${name}`;
    const st = await lstat(full);
    const mode = st.mode & 0o7777;
    if (st.isDirectory()) {
      yield* headerBlocks({ ...common, path: `${path}/`, type: 'Directory', mode, size: 0 });
      yield* walk(full, path, common);
    } else if (st.isSymbolicLink()) {
      yield* headerBlocks({ ...common, path, type: 'SymbolicLink', mode, size: 0, linkpath: await readlink(full) });
    } else if (st.isFile()) {
      yield* headerBlocks({ ...common, path, type: 'File', mode, size: st.size });
      let written = 0;
      for await (const chunk of createReadStream(full, { highWaterMark: 256 * 1024 })) {
        written += (chunk as Buffer).length;
        if (written > st.size) break;
        yield chunk as Buffer;
      }
      if (written !== st.size) {
        throw new HostpullError('PUBLISH_FAILED', `${full} changed size while it was being packed (${st.size} → ${written} bytes)`);
      }
      yield padding(st.size);
    } else {
      throw new HostpullError('PUBLISH_FAILED', `${full} is a device, socket or fifo; a package layer holds files, directories and symlinks only`);
    }
  }
}
