import { constants } from 'node:os';
import { isHostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import type { LazyReader } from './lazy-reader.js';
import type { LocalCopies } from './local-copies.js';
import type { LazyNode, LazyTree } from './lazy-tree.js';

/** What `getattr` answers (fuse-session.ts encodes it as a `struct fuse_attr`). */
export interface FuseStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  blksize: number;
  blocks: number;
  atime: Date;
  mtime: Date;
  ctime: Date;
}

type Cb<T extends unknown[] = []> = (err: number, ...rest: T) => void;

/**
 * The FUSE operations of one lazy layer, by path with callbacks, as a plain object: no /dev/fuse
 * needed to test them (STYLE: pure handler objects); fuse-session.ts serves them on a mount.
 * Read-only: the mount refuses writes (EROFS), and so does open() for writing. Errors are
 * negative errnos; a read whose spans cannot be fetched or verified is EIO, logged once per cause.
 *
 * No getxattr or listxattr either: a layer with extended attributes is never lazy (LazyTree
 * refuses it), and the session answers them ENOSYS, which the kernel remembers for the mount
 * (EOPNOTSUPP from then on, without asking). Answered, overlayfs's trusted.overlay.* lookups and
 * each exec's security.capability were a tenth of the round trips through the helper while
 * `mvn -v` started (126 of 1,229).
 */
export interface FuseHandlers {
  getattr(path: string, cb: Cb<[FuseStat?]>): void;
  readdir(path: string, cb: Cb<[string[]?]>): void;
  readlink(path: string, cb: Cb<[string?]>): void;
  open(path: string, flags: number, cb: Cb<[number?]>): void;
  read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void;
  release(path: string, fd: number, cb: Cb): void;
  statfs(path: string, cb: Cb<[Record<string, number>?]>): void;
  /**
   * An fd (read-only, the caller closes it) of a complete, verified local copy of the file at
   * `path`, for the kernel to read and map directly, or undefined to serve its reads here.
   */
  passthrough?(path: string): Promise<number | undefined>;
  /** What the session's native thread may answer itself: reads from spans in memory, lookups and opens from names. */
  native?: NativeAnswers;
}

/**
 * The layout a FUSE session's native thread needs to answer READs itself (native/src/fuse_channel.c),
 * and the spans it may answer them from: a read's wait then does not depend on how busy the event
 * loop is with fetching and inflating the spans of later reads. Likewise the names it answers
 * LOOKUP, GETATTR, READLINK and the opens of files never passed through from.
 */
export interface NativeAnswers {
  /** Per inode (the index): a file's data offset in the layer's tar and its size; -1 where there is no file. */
  files: { offsets: Float64Array; sizes: Float64Array };
  /** The spans' starts in the tar, and one past the last. */
  spanStarts: Float64Array;
  /**
   * Tells `listener` of each span whose verified, inflated bytes are in memory (now, and as they
   * come), and of each that is dropped (null), until the returned function is called.
   */
  watchSpans(listener: (index: number, bytes: Buffer | null) => void): () => void;
  /** A read the native thread answered: the reader's bookkeeping (read order, read-ahead) as for its own. */
  served(ino: number, offset: number, size: number): void;
  /**
   * Directory `dir` (`/`, `/opt`), then every name in it; none when it is not a directory. The
   * native thread answers LOOKUP, GETATTR, READLINK and the opens of files never passed through
   * from them.
   */
  names(dir: string): MountNode[];
}

/** One name of a mount, as {@link NativeAnswers.names} lists it. */
export interface MountNode {
  /** `/` the root, `/opt/jdk` below it. */
  path: string;
  /** What getattr answers for it. */
  stat: FuseStat;
  /** A symlink's target (what readlink answers). */
  link?: string | undefined;
  /** Whether an open of it may be passed through to a local copy (`passthrough` decides at its first open). */
  mayPassThrough: boolean;
}

const E = constants.errno;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

export function statOf(node: LazyNode): FuseStat {
  const type = node.type === 'dir' ? S_IFDIR : node.type === 'symlink' ? S_IFLNK : S_IFREG;
  const time = new Date(node.mtime * 1000);
  return {
    mode: type | node.mode,
    uid: node.uid,
    gid: node.gid,
    size: node.size,
    nlink: node.nlink,
    ino: node.ino,
    blksize: 4096,
    blocks: Math.ceil(node.size / 512),
    atime: time,
    mtime: time,
    ctime: time,
  };
}

export interface FuseHandlerOptions {
  logger: Logger;
  /** Names the layer in log lines. */
  where: string;
  /** Told about every failed read (after the log line), e.g. for metrics. */
  onReadError?: (path: string, err: unknown) => void;
  /** Where files that are worth it are copied whole for passthrough; without it every read is served here. */
  copies?: LocalCopies;
}

/** The same failure is logged at error level once per this window; repeats (the kernel retries a failed read in pieces) at debug. */
const LOG_REPEAT_MS = 10_000;

export function createFuseHandlers(tree: LazyTree, reader: LazyReader, options: FuseHandlerOptions): FuseHandlers {
  const open = new Map<number, LazyNode>();
  const logged = new Map<string, number>();
  let nextFd = 1;
  return {
    getattr(path, cb) {
      const node = tree.lookup(path);
      if (!node) return cb(-E.ENOENT);
      cb(0, statOf(node));
    },
    readdir(path, cb) {
      const node = tree.lookup(path);
      if (!node) return cb(-E.ENOENT);
      if (node.type !== 'dir') return cb(-E.ENOTDIR);
      cb(0, node.children!);
    },
    readlink(path, cb) {
      const node = tree.lookup(path);
      if (!node) return cb(-E.ENOENT);
      if (node.type !== 'symlink') return cb(-E.EINVAL);
      cb(0, node.linkname);
    },
    open(path, flags, cb) {
      const node = tree.lookup(path);
      if (!node) return cb(-E.ENOENT);
      if ((flags & 3) !== 0) return cb(-E.EROFS);
      if (node.type === 'dir') return cb(-E.EISDIR);
      const fd = nextFd++;
      open.set(fd, node);
      cb(0, fd);
    },
    read(path, fd, buf, len, pos, cb) {
      const node = open.get(fd) ?? tree.lookup(path);
      if (!node) return cb(-E.EBADF);
      if (node.type !== 'file') return cb(-E.EISDIR);
      reader.readInto(node, pos, buf.length > len ? buf.subarray(0, len) : buf).then(
        (n) => cb(n),
        (err: unknown) => {
          // One clear line per failure: which file, which layer, why. Never partial or unverified bytes.
          const message = (err as Error).message;
          const now = Date.now();
          const repeat = (logged.get(message) ?? -Infinity) > now - LOG_REPEAT_MS;
          if (!repeat) logged.set(message, now);
          if (logged.size > 1000) logged.clear();
          options.logger[repeat ? 'debug' : 'error'](
            { layer: options.where, path, offset: pos, length: len, code: isHostpullError(err) ? err.code : undefined, err: message },
            'lazy read failed: EIO to the reader',
          );
          options.onReadError?.(path, err);
          cb(-E.EIO);
        },
      );
    },
    release(_path, fd, cb) {
      open.delete(fd);
      cb(0);
    },
    statfs(_path, cb) {
      cb(0, { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: tree.size, ffree: 0, favail: 0, fsid: 0, flag: 1, namemax: 255 });
    },
    ...(options.copies ? { passthrough: passthroughOf(tree, options.copies) } : {}),
    native: nativeAnswersOf(tree, reader, options.copies),
  };
}

function nativeAnswersOf(tree: LazyTree, reader: LazyReader, copies: LocalCopies | undefined): NativeAnswers {
  const files = tree.fileExtents();
  return {
    files,
    spanStarts: reader.spanStarts(),
    watchSpans: (listener) => reader.watchSpans(listener),
    served(ino, offset, size) {
      const node = tree.byIno(ino);
      if (node?.type === 'file') reader.noteRead(node, offset, size);
    },
    names(dir) {
      const node = tree.lookup(dir);
      if (node?.type !== 'dir') return [];
      const mountNode = (path: string, n: LazyNode): MountNode => ({ path, stat: statOf(n), link: n.type === 'symlink' ? n.linkname : undefined, mayPassThrough: copies?.mayCopy(n) ?? false });
      const base = dir === '/' ? '' : dir;
      const children = node.children!.flatMap((name) => {
        const child = tree.lookup(`${base}/${name}`);
        return child ? [mountNode(`${base}/${name}`, child)] : [];
      });
      return [mountNode(dir, node), ...children];
    },
  };
}

function passthroughOf(tree: LazyTree, copies: LocalCopies): (path: string) => Promise<number | undefined> {
  return async (path) => {
    const node = tree.lookup(path);
    return node ? copies.fdOf(node) : undefined;
  };
}
