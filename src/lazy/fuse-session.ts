import { closeSync, openSync, writeSync } from 'node:fs';
import { constants as os } from 'node:os';
import { HostpullError, errnoCode } from '../errors.js';
import { constants, fuseBackingOpen, fuseChannel, fuseChannelLayout, fuseChannelNames, fuseChannelSpan, fuseChannelStatfs, mount, syscallErrno, umount2, type FuseChannel } from '../native/index.js';
import type { FuseHandlers, FuseStat, MountNode } from './fuse-handlers.js';
import {
  attrReply,
  dataReply,
  direntsReply,
  entryReply,
  errorReply,
  FuseOp,
  initReply,
  type MountName,
  nameArg,
  namesTable,
  openArgs,
  OpenFlag,
  OUT_HEADER,
  openReply,
  parseRequest,
  readArgs,
  releaseArgs,
  statfsFigures,
  statfsReply,
  type StatfsFigures,
  type DirEntry,
  type FuseAttr,
  type FuseRequest,
} from './fuse-protocol.js';

const E = os.errno;
const S_IFDIR = 0o040000;

export interface FuseSessionOptions {
  /** The mount's source in /proc/self/mountinfo (how stale mounts are found again). */
  fsname: string;
  /** The mount's type is `fuse.<subtype>`. */
  subtype: string;
  /** How long the kernel may keep entries, attributes and negative lookups (the view is immutable). */
  cacheSeconds: number;
  /** A request not answered within this long is answered ETIMEDOUT (a bug's guard: the reader gets an error, not a hang). */
  opTimeoutMs: number;
  /** Largest read the kernel may send, in 4 KiB pages. */
  maxPages: number;
  /** Told about a request that could not be served or answered (after it got an error, if it could). */
  onError?: (err: Error) => void;
}

/** A request being answered asynchronously (a READ, an OPEN), and when it came. */
interface Pending {
  since: number;
  answered: boolean;
}

/**
 * Serves one FUSE mount of `handlers` (the path-shaped operations of fuse-handlers.ts) with
 * hostpull's own FUSE server: a native thread reads /dev/fuse (native/src/fuse_channel.c) and
 * this class answers each request on the event loop, writing its reply to the same fd. With
 * `handlers.native` there are exceptions: the thread answers READs of bytes already in memory
 * itself, from the inflated spans the handlers lend it (this class only hears of them), and the
 * lookups, stats, symlinks and plain opens in the directories this class has given it the names
 * of (this class does not hear of them).
 *
 * Why not fuse-native (libfuse 2), which served the lazy views before: each request cost a
 * libfuse thread's wake-up, a hand-off to the event loop and a semaphore back; libfuse resolved
 * every inode to a path itself, and fuse-native left missing names uncached, so each PATH search
 * asked again; it capped reads at 128 KiB; and it cannot pass a file through to the kernel. Here a
 * request is one hand-off (requests that arrive together share it), a reply is one write(2), the
 * kernel keeps missing names like existing ones, and reads may be up to `maxPages` pages.
 * bench/fuse-overhead, `mvn -v` over the demo's unpacked layers, one run: 2.78× its direct time
 * behind fuse-native, 2.58× behind this server, 1.66× with its files passed through (1.69× behind
 * libfuse 2 in C).
 */
export class FuseSession {
  readonly mountpoint: string;
  readonly #fd: number;
  readonly #handlers: FuseHandlers;
  readonly #o: FuseSessionOptions;
  /** Paths of the inodes the kernel knows (it names them by inode after a LOOKUP). */
  readonly #paths = new Map<number, string>([[1, '/']]);
  readonly #pending = new Map<bigint, Pending>();
  /**
   * Files are opened through `handlers.passthrough` when it offers a complete local copy: reads
   * and page faults then go to that copy without reaching this process. Asked for at INIT when
   * the handlers have it; this says whether the kernel agreed.
   */
  #passthrough = false;
  /**
   * Per inode: the backing id its opens pass through to, or null for opens served here. Decided
   * at its first open and kept: the kernel refuses to mix the two while a file is open.
   */
  readonly #backing = new Map<number, Promise<number | null>>();
  readonly #sweeper: NodeJS.Timeout;
  /** The native thread that answers some requests itself (handlers.native), while it takes names. */
  #channel: FuseChannel | undefined;
  /** Directories whose names that thread has (see #nameDirectory). */
  readonly #named = new Set<number>();
  /** Stops lending spans to the native thread (handlers.native), once the connection ends. */
  #unwatch: (() => void) | undefined;
  #ended: (() => void) | undefined;
  /** The fd is closed: its number may belong to another file by now, so nothing is written to it. */
  #closed = false;
  /** Settles when the kernel ends the connection (after an unmount, once nothing uses the mount). */
  readonly ended: Promise<void>;
  #unmounted: Promise<void> | undefined;

  private constructor(mountpoint: string, fd: number, handlers: FuseHandlers, options: FuseSessionOptions) {
    this.mountpoint = mountpoint;
    this.#fd = fd;
    this.#handlers = handlers;
    this.#o = options;
    this.ended = new Promise((resolve) => (this.#ended = resolve));
    this.#sweeper = setInterval(() => this.#expire(), Math.min(1000, options.opTimeoutMs)).unref();
  }

  /**
   * Mounts `handlers` at `mountpoint` (read-only, nosuid, nodev; `allow_other` and
   * `default_permissions`: the container's users read it, the kernel checks modes as on a real
   * directory). Needs root.
   */
  static mount(mountpoint: string, handlers: FuseHandlers, options: FuseSessionOptions): FuseSession {
    let fd: number;
    try {
      fd = openSync('/dev/fuse', 'r+');
    } catch (err) {
      throw new HostpullError('LAZY_MOUNT_FAILED', `cannot open /dev/fuse: ${(err as Error).message}`, { cause: err, hint: 'lazy pulling needs root and the fuse kernel module (/dev/fuse)' });
    }
    const data = [`fd=${fd}`, 'rootmode=40000', `user_id=${process.getuid?.() ?? 0}`, `group_id=${process.getgid?.() ?? 0}`, 'allow_other', 'default_permissions', `max_read=${options.maxPages * 4096}`].join(',');
    try {
      mount(options.fsname, mountpoint, `fuse.${options.subtype}`, constants.MS_RDONLY | constants.MS_NOSUID | constants.MS_NODEV, data);
    } catch (err) {
      closeSync(fd);
      throw new HostpullError('LAZY_MOUNT_FAILED', `cannot mount the lazy layer at ${mountpoint}: ${(err as Error).message}`, { cause: err, hint: 'lazy pulling needs root and /dev/fuse' });
    }
    const session = new FuseSession(mountpoint, fd, handlers, options);
    let channel: FuseChannel;
    try {
      channel = fuseChannel(fd, { request: (msg, answered) => session.#serve(msg, answered), end: (errno) => session.#end(errno) });
    } catch (err) {
      // Nobody would answer the mount's requests: take it away before anything waits on it.
      umount2(mountpoint, constants.MNT_DETACH);
      session.#end(0);
      throw new HostpullError('LAZY_MOUNT_FAILED', `cannot serve the lazy layer at ${mountpoint}: ${(err as Error).message}`, { cause: err });
    }
    if (handlers.native) session.#lend(channel, handlers.native);
    return session;
  }

  /**
   * Gives the native thread the layout of the files and lends it each span in memory, so that
   * it answers the READs those spans hold without the event loop. Without it (a failure here is
   * reported, never fatal) every read is served by the handlers, as before.
   */
  #lend(channel: FuseChannel, native: NonNullable<FuseHandlers['native']>): void {
    this.#channel = channel;
    this.#nameDirectory('/', 1);
    // The mount's figures never change: the thread gives them (an overlay's mount(2) asks for
    // them, and waited up to 40 ms for this event loop busy with a learned prefetch).
    this.#handlers.statfs('/', (err, s) => {
      if (err !== 0 || !s) return;
      try {
        fuseChannelStatfs(channel, statfsFigures(figuresOf(s)));
      } catch (e) {
        this.#o.onError?.(new Error(`${this.mountpoint}: its STATFS is answered on the event loop: ${(e as Error).message}`));
      }
    });
    try {
      fuseChannelLayout(channel, native.files.offsets, native.files.sizes, native.spanStarts);
    } catch (err) {
      this.#o.onError?.(new Error(`${this.mountpoint}: its reads are all served on the event loop: ${(err as Error).message}`));
      return;
    }
    this.#unwatch = native.watchSpans((index, bytes) => {
      try {
        fuseChannelSpan(channel, index, bytes);
      } catch (err) {
        this.#o.onError?.(err as Error);
      }
    });
  }

  /**
   * Gives the native thread the names in directory `path` (inode `ino`), once, so that it answers
   * their LOOKUP, GETATTR, READLINK and the OPEN of a file never passed through itself: a
   * container's setup and its first programs look names up and open files one after the other,
   * and they would otherwise wait for an event loop busy with the spans coming in (runc's setup
   * and the shell script that starts `mvn -v`'s JVM took 180 ms instead of 40). A directory's
   * names go when its first lookup or listing comes here, not the whole tree at the mount: a Go
   * toolchain has 13,600 names, and encoding them all as it mounted made `go version` start 70 ms
   * later, where by directory it encodes ~600 of them in ~6 ms.
   * Without the native thread's help (a failure is reported, never fatal) this answers them.
   */
  #nameDirectory(path: string, ino: number): void {
    const channel = this.#channel;
    const native = this.#handlers.native;
    if (!channel || !native || this.#named.has(ino)) return;
    this.#named.add(ino);
    const [self, ...children] = native.names(path);
    if (!self) return;
    // Only a file that is never passed through: the first open of any other decides whether it is.
    const openHere = (n: MountNode) => !n.mayPassThrough || !this.#handlers.passthrough;
    const records: MountName[] = [{ parent: 0, name: '', attr: attrOf(self.stat), childrenKnown: true }];
    for (const child of children) {
      records.push({ parent: ino, name: child.path.slice(child.path.lastIndexOf('/') + 1), attr: attrOf(child.stat), link: child.link, openHere: openHere(child) });
      // Their later requests (OPEN, READ…) come here without a LOOKUP having passed; hard links: any name serves.
      if (!this.#paths.has(child.stat.ino)) this.#paths.set(child.stat.ino, child.path);
    }
    try {
      fuseChannelNames(channel, namesTable(records), this.#o.cacheSeconds);
    } catch (err) {
      this.#channel = undefined;
      this.#o.onError?.(new Error(`${this.mountpoint}: its lookups are answered on the event loop: ${(err as Error).message}`));
    }
  }

  /**
   * Detaches the mount: new lookups no longer reach it, and processes that still use it (a
   * container being torn down) keep being served until they let go, when the kernel ends the
   * connection. Idempotent.
   */
  unmount(): Promise<void> {
    this.#unmounted ??= (async () => {
      try {
        umount2(this.mountpoint, constants.MNT_DETACH);
      } catch (err) {
        // Already gone (a cleanup got there first) is what was asked for.
        const code = syscallErrno(err);
        if (code !== 'EINVAL' && code !== 'ENOENT') throw new HostpullError('LAZY_UNMOUNT_FAILED', `cannot unmount ${this.mountpoint}: ${(err as Error).message}`, { cause: err });
      }
    })();
    return this.#unmounted;
  }

  #end(errno: number): void {
    clearInterval(this.#sweeper);
    this.#channel = undefined;
    this.#unwatch?.();
    this.#closed = true;
    closeSync(this.#fd);
    if (errno !== 0) this.#o.onError?.(new Error(`reading /dev/fuse for ${this.mountpoint} failed: errno ${errno}`));
    this.#ended?.();
  }

  /** Answers requests that waited longer than the bound with ETIMEDOUT. */
  #expire(): void {
    const late = Date.now() - this.#o.opTimeoutMs;
    for (const [unique, p] of this.#pending) {
      if (p.since > late) continue;
      p.answered = true;
      this.#pending.delete(unique);
      this.#o.onError?.(new Error(`a FUSE request on ${this.mountpoint} was not answered within ${this.#o.opTimeoutMs} ms`));
      this.#write(errorReply(unique, -E.ETIMEDOUT));
    }
  }

  #write(reply: Buffer, length = reply.length): void {
    if (this.#closed) return;
    try {
      writeSync(this.#fd, reply, 0, length);
    } catch (err) {
      // ENOENT: the request was interrupted and is gone; ENODEV/EBADF: the connection is.
      const code = errnoCode(err);
      if (code !== 'ENOENT' && code !== 'ENODEV' && code !== 'EBADF') this.#o.onError?.(err as Error);
    }
  }

  /** A request from the channel; `answered` when its native thread answered it (a READ): then only the bookkeeping. */
  #serve(msg: Buffer, answered: boolean): void {
    let req: FuseRequest;
    try {
      req = parseRequest(msg);
    } catch (err) {
      this.#o.onError?.(err as Error);
      return;
    }
    if (answered) {
      if (req.opcode !== FuseOp.READ) return;
      const { offset, size } = readArgs(req.body);
      this.#handlers.native?.served(req.nodeid, offset, size);
      return;
    }
    try {
      this.#dispatch(req);
    } catch (err) {
      this.#o.onError?.(err as Error);
      this.#write(errorReply(req.unique, -E.EIO));
    }
  }

  #dispatch(req: FuseRequest): void {
    const { unique } = req;
    const ttl = this.#o.cacheSeconds;
    switch (req.opcode) {
      case FuseOp.INIT: {
        const init = initReply(unique, req.body, { maxPages: this.#o.maxPages, passthrough: this.#handlers.passthrough !== undefined });
        this.#passthrough = init.passthrough;
        return this.#write(init.reply);
      }
      case FuseOp.LOOKUP: {
        const dir = this.#paths.get(req.nodeid);
        if (dir === undefined) return this.#write(errorReply(unique, -E.ENOENT));
        const name = nameArg(req.body);
        const path = dir === '/' ? `/${name}` : `${dir}/${name}`;
        this.#handlers.getattr(path, (err, stat) => {
          if (err === -E.ENOENT) return this.#write(entryReply(unique, undefined, ttl));
          if (err !== 0 || !stat) return this.#write(errorReply(unique, err || -E.EIO));
          this.#paths.set(stat.ino, path);
          this.#write(entryReply(unique, attrOf(stat), ttl));
        });
        return this.#nameDirectory(dir, req.nodeid);
      }
      case FuseOp.GETATTR:
        return this.#withPath(req, (path) =>
          this.#handlers.getattr(path, (err, stat) => this.#write(err !== 0 || !stat ? errorReply(unique, err || -E.EIO) : attrReply(unique, attrOf(stat), ttl))),
        );
      case FuseOp.READLINK:
        return this.#withPath(req, (path) =>
          this.#handlers.readlink(path, (err, target) => this.#write(err !== 0 || target === undefined ? errorReply(unique, err || -E.EIO) : dataReply(unique, Buffer.from(target, 'utf8')))),
        );
      case FuseOp.OPEN:
        return this.#withPath(req, (path) => this.#open(req, path));
      case FuseOp.READ:
        return this.#withPath(req, (path) => this.#read(req, path));
      case FuseOp.RELEASE:
        return this.#withPath(req, (path) => this.#handlers.release(path, releaseArgs(req.body).fh, (err) => this.#write(errorReply(unique, err))));
      case FuseOp.OPENDIR:
        // The listing never changes: the kernel may keep it (and the pages it read) across opens.
        return this.#write(openReply(unique, 0, OpenFlag.KEEP_CACHE | OpenFlag.CACHE_DIR));
      case FuseOp.READDIR:
        return this.#withPath(req, (path) => {
          this.#readdir(req, path);
          this.#nameDirectory(path, req.nodeid);
        });
      case FuseOp.RELEASEDIR:
        return this.#write(errorReply(unique, 0));
      case FuseOp.STATFS:
        return this.#handlers.statfs('/', (err, s) => this.#write(err !== 0 || !s ? errorReply(unique, err || -E.EIO) : statfsReply(unique, figuresOf(s))));
      case FuseOp.FORGET:
      case FuseOp.BATCH_FORGET:
      case FuseOp.INTERRUPT:
      case FuseOp.NOTIFY_REPLY:
        // No reply. Inode paths stay known: the tree is immutable and no larger than the TOC.
        // An interrupted read still completes (spans are bounded by the fetch deadline).
        return;
      case FuseOp.DESTROY:
        return this.#write(errorReply(unique, 0));
      default:
        // Writes, xattrs, locks, FLUSH, ACCESS…: ENOSYS, which the kernel remembers for most of
        // them (one round trip per mount). A layer with xattrs is never lazy (LazyTree refuses it).
        return this.#write(errorReply(unique, -E.ENOSYS));
    }
  }

  #withPath(req: FuseRequest, serve: (path: string) => void): void {
    const path = this.#paths.get(req.nodeid);
    if (path === undefined) return this.#write(errorReply(req.unique, -E.ESTALE));
    serve(path);
  }

  /** Tracks an answer that comes later, for the ETIMEDOUT bound: `answer` returns false once the bound answered instead. */
  #later(unique: bigint): () => boolean {
    const pending: Pending = { since: Date.now(), answered: false };
    this.#pending.set(unique, pending);
    return () => {
      if (pending.answered) return false;
      pending.answered = true;
      this.#pending.delete(unique);
      return true;
    };
  }

  #open(req: FuseRequest, path: string): void {
    const { unique } = req;
    const { flags } = openArgs(req.body);
    const answer = (backingId: number | null) =>
      this.#handlers.open(path, flags, (err, fh) =>
        this.#write(err !== 0 || fh === undefined ? errorReply(unique, err || -E.EIO) : backingId === null ? openReply(unique, fh, OpenFlag.KEEP_CACHE) : openReply(unique, fh, 0, backingId)),
      );
    const passthrough = this.#handlers.passthrough;
    if (!this.#passthrough || !passthrough) return answer(null);
    let backing = this.#backing.get(req.nodeid);
    if (!backing) {
      backing = passthrough(path).then(
        (fd) => (fd === undefined ? null : this.#register(fd, path)),
        (err: unknown) => {
          this.#o.onError?.(new Error(`${path}: no local copy to pass through to, served here: ${(err as Error).message}`));
          return null;
        },
      );
      this.#backing.set(req.nodeid, backing);
    }
    const done = this.#later(unique);
    void backing.then((id) => {
      if (done()) answer(id);
    });
  }

  /**
   * Registers `fd` (a complete copy of `path`) as a backing file, and closes it: the kernel keeps
   * its own reference. A refusal (the copy is on a stacked file system, an overlay say, deeper
   * than this mount allows) turns passthrough off for the mount: every later copy would be
   * refused the same way.
   */
  #register(fd: number, path: string): number | null {
    try {
      if (!this.#passthrough || this.#closed) return null;
      return fuseBackingOpen(this.#fd, fd);
    } catch (err) {
      this.#passthrough = false;
      this.#o.onError?.(new Error(`${path}: the kernel refused its local copy as a backing file (${(err as Error).message}); reads of this mount are served by hostpull from now on`));
      return null;
    } finally {
      closeSync(fd);
    }
  }

  #read(req: FuseRequest, path: string): void {
    const { fh, offset, size } = readArgs(req.body);
    // The bytes go straight into the reply, after its header.
    const reply = Buffer.allocUnsafe(OUT_HEADER + size);
    const done = this.#later(req.unique);
    this.#handlers.read(path, fh, reply.subarray(OUT_HEADER), size, offset, (result) => {
      if (!done()) return; // answered ETIMEDOUT already
      if (result < 0) return this.#write(errorReply(req.unique, result));
      reply.writeUInt32LE(OUT_HEADER + result, 0);
      reply.writeInt32LE(0, 4);
      reply.writeBigUInt64LE(req.unique, 8);
      this.#write(reply, OUT_HEADER + result);
    });
  }

  #readdir(req: FuseRequest, path: string): void {
    const { offset, size } = readArgs(req.body);
    this.#handlers.readdir(path, (err, names) => {
      if (err !== 0 || !names) return this.#write(errorReply(req.unique, err || -E.EIO));
      // Each child's inode and type, in the listing's order (a child that vanished is left out).
      const children: (DirEntry | undefined)[] = new Array(names.length);
      let waiting = names.length;
      const answer = () => {
        // glibc's readdir skips an entry whose inode is 0: `.` and `..` carry this directory's.
        const entries: DirEntry[] = [{ name: '.', ino: req.nodeid, mode: S_IFDIR }, { name: '..', ino: req.nodeid, mode: S_IFDIR }, ...children.filter((c) => c !== undefined)];
        this.#write(direntsReply(req.unique, entries, offset, size));
      };
      if (waiting === 0) return answer();
      names.forEach((name, i) => {
        const child = path === '/' ? `/${name}` : `${path}/${name}`;
        this.#handlers.getattr(child, (e, stat) => {
          if (e === 0 && stat) children[i] = { name, ino: stat.ino, mode: stat.mode };
          if (--waiting === 0) answer();
        });
      });
    });
  }
}

function attrOf(s: FuseStat): FuseAttr {
  return { ino: s.ino, size: s.size, blocks: s.blocks, mode: s.mode, nlink: s.nlink, uid: s.uid, gid: s.gid, blksize: s.blksize, mtime: s.mtime.getTime() / 1000 };
}

/** A handler's statfs figures as a STATFS reply carries them (defaults for what it leaves out). */
function figuresOf(s: Record<string, number>): StatfsFigures {
  return { blocks: s.blocks ?? 0, bfree: s.bfree ?? 0, bavail: s.bavail ?? 0, files: s.files ?? 0, ffree: s.ffree ?? 0, bsize: s.bsize ?? 4096, namelen: s.namemax ?? 255, frsize: s.frsize ?? 4096 };
}
