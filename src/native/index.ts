/**
 * Typed access to the native addon (native/, built with `npm run build:native`): the Linux syscalls
 * Node 20 lacks — mount/umount2, the new mount API for overlays, mknod and the l*xattr family.
 *
 * The addon is loaded on first use, not at import time, so modules that merely import this one
 * (the CLI, unit tests without root) work where the addon was not built. The loaded module is
 * kept here: require() resolves its path again on every call (URL, stat, cache lookup), which a
 * gunzip job per input chunk and a FUSE span per read would pay each time.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

import { HostpullError } from '../errors.js';

export { constants } from './constants.js';

/** Options of {@link overlayMount}. */
export interface OverlayMountOptions {
  /** Lower directories, top-most first (the order of the classic `lowerdir=a:b:c`). At least one. */
  lowerdirs: readonly string[];
  /** Writable upper directory; without it the overlay is read-only. */
  upperdir?: string;
  /** Work directory on the same filesystem as `upperdir`; required with it. */
  workdir?: string;
  /**
   * Extra overlay parameters: `key=value` (e.g. `index=off`, `redirect_dir=off`, `metacopy=off`) or a
   * bare flag (e.g. `userxattr`). Default: none.
   */
  options?: readonly string[];
  /** Mount read-only (superblock `ro` and MOUNT_ATTR_RDONLY). Default: false. */
  readonly?: boolean;
  /** The mount's source as shown in /proc/self/mountinfo. Default: "overlay". */
  source?: string;
  /** MOUNT_ATTR_* bits of {@link constants} for the mount (nosuid, nodev…). Default: 0. */
  mountAttributes?: number;
}

/** The raw addon surface, as exported by native/src/hostpull_native.c. */
interface Addon {
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
  umount2(target: string, flags: number): void;
  mknod(path: string, mode: number, dev: number): void;
  makedev(major: number, minor: number): number;
  major(dev: number): number;
  minor(dev: number): number;
  lsetxattr(path: string, name: string, value: Uint8Array, flags: number): void;
  lgetxattr(path: string, name: string): Buffer | null;
  llistxattr(path: string): string[];
  lremovexattr(path: string, name: string): void;
  overlayMount(target: string, options: OverlayMountOptions): void;
  alignedBuffer(size: number, alignment: number): ArrayBuffer;
  fuseChannel(fd: number, onMessage: (msg: Buffer | null, detail: boolean | number) => void): FuseChannel;
  fuseChannelLayout(channel: FuseChannel, fileOffsets: Float64Array, fileSizes: Float64Array, spanStarts: Float64Array): void;
  fuseChannelSpan(channel: FuseChannel, index: number, bytes: Buffer | null): void;
  fuseChannelNames(channel: FuseChannel, table: Buffer, validSeconds: number): void;
  fuseChannelStatfs(channel: FuseChannel, figures: Buffer): void;
  fuseBackingOpen(devFd: number, fileFd: number): number;
  gunzipOpen(): Gunzip;
  gunzipRun(handle: Gunzip, input: Buffer, offset: number, output: Buffer): Promise<[number, number]>;
  gunzipEnd(handle: Gunzip): string;
  gunzipClose(handle: Gunzip): void;
  crc32(data: Uint8Array, crc: number): number;
  inflateRawOpen(): RawInflation;
  inflateRawRun(handle: RawInflation, input: Buffer, output: Buffer, until: number): Promise<number>;
  constants: Record<string, number>;
}

/** Error properties the addon sets on a failed syscall. */
interface NativeErrorLike {
  code?: unknown;
  errno?: unknown;
  syscall?: unknown;
  path?: unknown;
  key?: unknown;
  value?: unknown;
  fsLog?: unknown;
  message?: unknown;
}

/**
 * Path of the compiled addon. This file lives at src/native/index.ts (vitest) or
 * dist/native/index.js (built): both are two levels below the package root.
 */
export function addonPath(): string {
  return fileURLToPath(new URL('../../native/build/Release/hostpull_native.node', import.meta.url));
}

/** The addon once loaded, or why it does not load: asked once per process. */
let loaded: Addon | undefined;
let unloadable: HostpullError | undefined;

/** What to do about an addon that does not load: build it, with ISA-L installed (scripts/provision does both). */
export const NATIVE_MISSING_HINT = "run npm run build:native (it links ISA-L: Debian's libisal-dev, which scripts/provision installs)";

/**
 * The addon, loaded on the first call. A failure is kept too: the callers that fall back to
 * JavaScript without it (readLayer, the content CRC, a lazy layer's spans) ask per layer, per
 * file or per span, and a require() that fails searches the disk again each time.
 */
function addon(): Addon {
  if (loaded) return loaded;
  if (unloadable) throw unloadable;
  const path = addonPath();
  try {
    loaded = createRequire(import.meta.url)(path) as Addon;
    return loaded;
  } catch (err) {
    // The loader's own first line says which: not built, or a library it links (libisal) gone.
    const why = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    unloadable = new HostpullError('NATIVE_MISSING', `native addon not loadable: ${path}: ${why}`, {
      hint: NATIVE_MISSING_HINT,
      cause: err,
      details: { path },
    });
    throw unloadable;
  }
}

/** True when the addon is built and loads. */
export function isNativeAvailable(): boolean {
  try {
    addon();
    return true;
  } catch {
    return false;
  }
}

/**
 * Turns the addon's errno error into HostpullError('SYSCALL_FAILED'); the errno name stays in
 * `details.errno` so callers can branch on it (see {@link syscallErrno}). Argument-type errors
 * (programming errors) pass through unchanged.
 */
function wrap(err: unknown): unknown {
  const e = (typeof err === 'object' && err !== null ? err : {}) as NativeErrorLike;
  if (typeof e.errno !== 'number' || typeof e.syscall !== 'string') return err;
  const details: Record<string, unknown> = {
    errno: e.code,
    errnoNumber: e.errno,
    syscall: e.syscall,
  };
  if (typeof e.path === 'string') details.path = e.path;
  if (typeof e.key === 'string') details.key = e.key;
  if (typeof e.value === 'string') details.value = e.value;
  if (typeof e.fsLog === 'string') details.fsLog = e.fsLog;
  return new HostpullError('SYSCALL_FAILED', String(e.message), { cause: err, details });
}

function call<T>(fn: (a: Addon) => T): T {
  const a = addon();
  try {
    return fn(a);
  } catch (err) {
    throw wrap(err);
  }
}

/** errno name (`ENOENT`, `EEXIST`…) of an error thrown by this module, or undefined. */
export function syscallErrno(err: unknown): string | undefined {
  if (err instanceof HostpullError && err.code === 'SYSCALL_FAILED') {
    const errno = err.details?.errno;
    return typeof errno === 'string' ? errno : undefined;
  }
  return undefined;
}

/** mount(2). `flags` from {@link constants} (MS_*). */
export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null = null,
): void {
  call((a) => a.mount(source, target, fstype, flags, data));
}

/** umount2(2). `flags`: 0 or MNT_DETACH / MNT_FORCE / UMOUNT_NOFOLLOW. */
export function umount2(target: string, flags = 0): void {
  call((a) => a.umount2(target, flags));
}

/** mknod(2); `mode` includes the type bits (S_IFCHR | 0o000 for an overlay whiteout). */
export function mknod(path: string, mode: number, dev: number): void {
  call((a) => a.mknod(path, mode, dev));
}

/**
 * glibc's makedev(3) in JS (no addon needed): major bits 0–11 at 8–19 and 12–31 at 44–63,
 * minor bits 0–7 at 0–7 and 8–31 at 20–43. Kept in JS so tar unpacking can compute device numbers without loading the addon.
 */
export function makedev(major: number, minor: number): number {
  const lo = ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xfff00) << 12)) >>> 0;
  const hi = (((minor >>> 20) & 0xfff) | ((major >>> 12) << 12)) >>> 0;
  // Multiply instead of shifting: JS bit operators are 32-bit, the result is a 64-bit dev_t
  // (exact in a double for any device number below 2^53, i.e. every real one).
  return hi * 0x1_0000_0000 + lo;
}

/** The native side of one FUSE connection (an opaque handle of the addon). */
export interface FuseChannel {
  readonly __fuseChannel: never;
}

/** What a {@link fuseChannel} tells its owner, on the event loop. */
export interface FuseChannelListener {
  /** A request; `answered` when the thread answered it itself (a READ from lent spans). */
  request(msg: Buffer, answered: boolean): void;
  /** The connection ended: errno 0 when unmounted, else why reading it failed. */
  end(errno: number): void;
}

/**
 * Starts a thread that reads FUSE requests from `fd` (an open, mounted /dev/fuse) and hands each
 * to `listener` on the event loop, until the connection ends. Keeps the process alive until then.
 */
export function fuseChannel(fd: number, listener: FuseChannelListener): FuseChannel {
  return call((a) => a.fuseChannel(fd, (msg, detail) => (msg ? listener.request(msg, detail === true) : listener.end(typeof detail === 'number' ? detail : 0))));
}

/**
 * What READs the channel's thread may answer itself: per inode (the index), a file's data offset
 * in the layer's tar and its size (negative: not a file it serves); and the spans' starts in the
 * tar, ascending, with one past the last. Takes back every span lent before.
 */
export function fuseChannelLayout(channel: FuseChannel, fileOffsets: Float64Array, fileSizes: Float64Array, spanStarts: Float64Array): void {
  call((a) => a.fuseChannelLayout(channel, fileOffsets, fileSizes, spanStarts));
}

/**
 * Lends span `index`'s inflated, verified bytes to the channel's thread (exactly the span's
 * length; kept alive until taken back), or takes them back with null. A READ whose bytes all lie
 * in lent spans is answered by the thread, without waiting for the event loop.
 */
export function fuseChannelSpan(channel: FuseChannel, index: number, bytes: Buffer | null): void {
  call((a) => a.fuseChannelSpan(channel, index, bytes));
}

/**
 * More of the mount's names (a directory's, typically), which the channel's thread then answers
 * LOOKUP, GETATTR, READLINK and the opens marked for it from itself (and OPENDIR, RELEASEDIR,
 * FLUSH, GETXATTR and LISTXATTR), without the event loop hearing of them: `table` as
 * fuse-protocol.ts's namesTable encodes it, and how long the kernel may keep those answers. A name
 * or inode given again replaces the one before.
 */
export function fuseChannelNames(channel: FuseChannel, table: Buffer, validSeconds: number): void {
  call((a) => a.fuseChannelNames(channel, table, validSeconds));
}

/**
 * The mount's STATFS answer (`figures`: a struct fuse_kstatfs, as fuse-protocol.ts's statfsFigures
 * encodes it), which the channel's thread gives from then on without the event loop hearing of it:
 * an overlay's mount(2) asks each lower layer, and waited up to 40 ms for an event loop busy with a
 * learned prefetch.
 */
export function fuseChannelStatfs(channel: FuseChannel, figures: Buffer): void {
  call((a) => a.fuseChannelStatfs(channel, figures));
}

/**
 * FUSE_DEV_IOC_BACKING_OPEN on a /dev/fuse fd whose connection agreed to passthrough: registers
 * `fileFd`'s file as a backing file and returns its id, for an OPEN reply with FOPEN_PASSTHROUGH.
 * The kernel holds its own reference: `fileFd` may be closed at once. Needs CAP_SYS_ADMIN.
 */
export function fuseBackingOpen(devFd: number, fileFd: number): number {
  return call((a) => a.fuseBackingOpen(devFd, fileFd));
}

/** One gzip stream being inflated and hashed by the addon (an opaque handle). */
export interface Gunzip {
  readonly __gunzip: never;
}

/**
 * Starts inflating a gzip stream (one or more members, then nothing or zero padding) whose
 * inflated bytes are hashed with sha256 as they come out (native/src/gunzip.c).
 */
export function gunzipOpen(): Gunzip {
  return call((a) => a.gunzipOpen());
}

/**
 * Inflates `input` from `offset` into `output` (from its start) on libuv's threadpool, until the
 * input is used up or the output is full: resolves to the input offset reached and the bytes
 * written. Rejects with the framing or deflate error (`incorrect header check`…). One call per
 * handle at a time; both buffers must stay unchanged until it settles.
 */
export function gunzipRun(handle: Gunzip, input: Buffer, offset: number, output: Buffer): Promise<[number, number]> {
  return call((a) => a.gunzipRun(handle, input, offset, output));
}

/** The sha256 (hex) of everything inflated; throws `unexpected end of file` when the input stopped inside a member. */
export function gunzipEnd(handle: Gunzip): string {
  return call((a) => a.gunzipEnd(handle));
}

/** Frees the handle's inflate state now rather than at garbage collection (not while a run is pending). */
export function gunzipClose(handle: Gunzip): void {
  call((a) => a.gunzipClose(handle));
}

/** zlib's crc32(crc, data), computed by ISA-L (native/src/checksum.c). */
export function crc32(data: Uint8Array, crc: number): number {
  return call((a) => a.crc32(data, crc));
}

/** A raw deflate stretch being inflated in steps on libuv's threadpool with ISA-L (native/src/inflate_raw.c; an opaque handle). */
export interface RawInflation {
  readonly __rawInflation: never;
}

/** Starts inflating a raw deflate stretch in steps ({@link inflateRawRun}); its state is freed by the step that ends the stretch, else with the handle. */
export function inflateRawOpen(): RawInflation {
  return call((a) => a.inflateRawOpen());
}

/**
 * One step of `handle`'s inflation on libuv's threadpool: from where the last step stopped until
 * `output` holds `until` bytes (or is full), the input is used up or the deflate stream ends.
 * Resolves to the bytes `output` holds. One step per handle at a time, every step with the same
 * `input` and `output`, which must stay unchanged until it settles.
 */
export function inflateRawRun(handle: RawInflation, input: Buffer, output: Buffer, until: number): Promise<number> {
  return call((a) => a.inflateRawRun(handle, input, output, until));
}

/** lsetxattr(2) on the path itself (never follows a symlink). `flags`: 0, XATTR_CREATE or XATTR_REPLACE. */
export function lsetxattr(path: string, name: string, value: Uint8Array, flags = 0): void {
  call((a) => a.lsetxattr(path, name, value, flags));
}

/** lgetxattr(2): the value, or null when the attribute is absent (ENODATA). */
export function lgetxattr(path: string, name: string): Buffer | null {
  return call((a) => a.lgetxattr(path, name));
}

/** llistxattr(2): attribute names the caller may see (trusted.* only with CAP_SYS_ADMIN). */
export function llistxattr(path: string): string[] {
  return call((a) => a.llistxattr(path));
}

/** lremovexattr(2). */
export function lremovexattr(path: string, name: string): void {
  call((a) => a.lremovexattr(path, name));
}

/**
 * Mounts an overlay at `target` with the new mount API (fsopen/fsconfig/fsmount/move_mount): each
 * lower dir is one `lowerdir+` parameter (Linux ≥ 6.8), so neither the one-page limit of mount(2)
 * data nor `:`/`,` escaping applies. Paths of 256 bytes or more are passed as O_PATH fds (Linux ≥ 6.13).
 * A failing parameter is named in the error together with the kernel's reasons.
 */
export function overlayMount(target: string, options: OverlayMountOptions): void {
  call((a) => a.overlayMount(target, options));
}

/** O_DIRECT offsets, lengths and buffer addresses: a multiple of the largest common block size. */
export const DIRECT_IO_ALIGNMENT = 4096;

/**
 * Memory starting at a multiple of `alignment` (a power of two), for O_DIRECT writes: Node 20's own
 * ArrayBuffers are only 16-byte aligned. Freed when the buffer is garbage collected.
 */
export function alignedBuffer(size: number, alignment: number): Buffer {
  return Buffer.from(call((a) => a.alignedBuffer(size, alignment)));
}

/** The constants as compiled into the addon (for checking {@link constants} against the C headers). */
export function addonConstants(): Record<string, number> {
  return call((a) => a.constants);
}
