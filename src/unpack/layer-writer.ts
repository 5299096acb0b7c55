import {
  closeSync,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  chmodSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
  constants as fsc,
  type Stats,
} from 'node:fs';
import { errnoCode, HostpullError, isNoSpace } from '../errors.js';
import { lsetxattr, makedev, mknod, syscallErrno } from '../native/index.js';
import { baseOf, isWithin, normaliseEntryPath, parentOf, PATH_MAX } from './entry-path.js';
import type { TarEntryHeader, TarEntrySink } from './tar-reader.js';

export interface LayerWriterOptions {
  /** Absolute path of the (existing, empty) layer directory. */
  root: string;
  maxBytes: number;
  maxEntries: number;
  maxDepth: number;
  /** Normalised prefixes (no leading/trailing slash); undefined = any path. */
  allowedPrefixes: string[] | undefined;
  allowDevices: boolean;
  rootless: boolean;
}

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_META_PREFIX = '.wh..wh.';
const WHITEOUT_OPAQUE = '.wh..wh..opq';

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

/** O_NOFOLLOW|O_EXCL: never write through a symlink or into a file that is already there. */
const CREATE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;

interface DirMeta {
  mode: number;
  atime: number;
  mtime: number;
}

/**
 * Applies tar entries to one layer directory with synchronous fs calls, in archive order — the
 * shape of containerd's `archive.Apply`. The safety argument rests on one invariant: every path it
 * touches is `root/<normalised name>` and every parent component of it is in `#dirs`, the set of
 * components that were lstat-verified as (or created as) real directories in this run. Nothing
 * else writes into a fresh layer directory, so a component cannot turn into a symlink behind our
 * back, and the final component is only ever created with O_EXCL/O_NOFOLLOW, mkdir, symlink,
 * link or mknod, none of which follows a symlink.
 */
export class LayerWriter implements TarEntrySink {
  readonly #o: LayerWriterOptions;
  readonly #isRoot = process.getuid?.() === 0;
  readonly #uid = process.geteuid?.() ?? -1;
  readonly #gid = process.getegid?.() ?? -1;
  readonly #inheritsGroup: boolean;
  /** Real directories inside the layer ('' is the root). */
  readonly #dirs = new Set<string>(['']);
  /** Regular files written by this layer and still present: the only valid hardlink targets. */
  readonly #files = new Set<string>();
  /** Non-directory paths written (files, links, devices), for `ownedPaths`. */
  readonly #owned = new Set<string>();
  /** Whiteout target path → whiteout entry name. */
  readonly #whiteouts = new Map<string, string>();
  /** Opaque directory → `.wh..wh..opq` entry name. */
  readonly #opaque = new Map<string, string>();
  /** Directories whose mode and times are set at the end (creating children changes mtime). */
  readonly #dirMeta = new Map<string, DirMeta>();
  #bytes = 0;
  #entries = 0;
  #fileCount = 0;
  /** Open fd of the regular file whose data is streaming, or -1. */
  #fd = -1;
  #current: TarEntryHeader | undefined;
  #currentPath = '';

  constructor(options: LayerWriterOptions) {
    this.#o = options;
    // Under a setgid layer root, new inodes (and new directories' setgid bit) inherit its group.
    this.#inheritsGroup = (lstatSync(options.root).mode & 0o2000) !== 0;
  }

  get entries(): number {
    return this.#entries;
  }

  get files(): number {
    return this.#fileCount;
  }

  ownedPaths(): string[] {
    return [...this.#owned].sort();
  }

  whiteoutEntries(): string[] {
    return [...this.#whiteouts.values(), ...this.#opaque.values()].sort();
  }

  // ── TarEntrySink ────────────────────────────────────────────────────────────────────────────

  entry(h: TarEntryHeader): void {
    this.#current = h;
    this.#currentPath = h.name;
    if (++this.#entries > this.#o.maxEntries) {
      this.#fail('LAYER_QUOTA_EXCEEDED', h.name, `more than ${this.#o.maxEntries} entries`);
    }
    const path = normaliseEntryPath(h.name, this.#o.maxDepth);
    if (typeof path !== 'string') this.#fail('LAYER_UNSAFE', h.name, path.refused);
    this.#currentPath = path;

    const base = baseOf(path);
    if (base.startsWith(WHITEOUT_PREFIX)) {
      this.#whiteout(path, base);
      return;
    }
    if (!this.#allowed(path)) {
      // Directories above a package's prefix (`./`, `opt/`) are part of every package archive;
      // they are created but take no metadata, so a package cannot chmod `/` or `/opt` of the
      // composite rootfs (the top-most layer's directory attributes win in overlayfs).
      if (h.type === 'dir' && this.#isPrefixAncestor(path)) {
        this.#ensureDir(path);
        return;
      }
      this.#fail('LAYER_UNSAFE', path, `is outside the layer's allowed prefixes (${this.#o.allowedPrefixes!.join(', ')})`);
    }
    if (path === '' && h.type !== 'dir') {
      // umoci CVE-2021-29136: a `.` symlink (or file) would replace the layer root itself.
      this.#fail('LAYER_UNSAFE', h.name, `a ${h.type} cannot replace the layer root`);
    }

    switch (h.type) {
      case 'file':
        this.#file(path, h);
        break;
      case 'dir':
        this.#dir(path, h);
        break;
      case 'symlink':
        this.#symlink(path, h);
        break;
      case 'hardlink':
        this.#hardlink(path, h);
        break;
      case 'char':
      case 'block':
      case 'fifo':
        this.#device(path, h);
        break;
    }
  }

  data(chunk: Buffer): void {
    if (this.#fd < 0) return; // data of a whiteout entry: hashed by the caller, not written
    let off = 0;
    try {
      while (off < chunk.length) off += writeSync(this.#fd, chunk, off, chunk.length - off);
    } catch (err) {
      this.#ioFail(this.#currentPath, 'write', err);
    }
  }

  entryEnd(): void {
    if (this.#fd < 0) return;
    const h = this.#current!;
    const fd = this.#fd;
    const path = this.#currentPath;
    this.#fd = -1;
    try {
      // Order matters: chown clears setuid/setgid, so chmod comes after it; xattrs before chmod so
      // a read-only mode cannot block them; times last because every other step changes ctime only.
      if (this.#needsChown(h)) fchownSync(fd, h.uid, h.gid);
      this.#xattrs(path, h);
      fchmodSync(fd, h.mode);
      futimesSync(fd, h.atime ?? h.mtime, h.mtime);
    } catch (err) {
      if (err instanceof HostpullError) throw err;
      this.#ioFail(path, 'set metadata on', err);
    } finally {
      closeSync(fd);
    }
  }

  /** After the last entry: directory modes and times, deepest first (a 0555 parent would block). */
  finish(): void {
    const dirs = [...this.#dirMeta.entries()].sort((a, b) => depth(b[0]) - depth(a[0]));
    for (const [path, meta] of dirs) {
      const abs = this.#abs(path);
      try {
        chmodSync(abs, meta.mode);
        utimesSync(abs, meta.atime, meta.mtime);
      } catch (err) {
        this.#ioFail(path, 'set metadata on directory', err);
      }
    }
  }

  /** Releases an open file after a failure (the caller discards the directory). */
  abort(): void {
    if (this.#fd >= 0) {
      try {
        closeSync(this.#fd);
      } catch {
        // already failing; the first error is the one reported
      }
      this.#fd = -1;
    }
  }

  // ── entry kinds ─────────────────────────────────────────────────────────────────────────────

  #file(path: string, h: TarEntryHeader): void {
    this.#bytes += h.size;
    if (this.#bytes > this.#o.maxBytes) {
      this.#fail('LAYER_QUOTA_EXCEEDED', path, `layer writes more than ${this.#o.maxBytes} bytes`);
    }
    this.#ensureParent(path);
    const abs = this.#abs(path);
    let fd: number;
    try {
      fd = openSync(abs, CREATE_FLAGS, 0o600);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') this.#ioFail(path, 'create', err);
      this.#replace(path);
      try {
        fd = openSync(abs, CREATE_FLAGS, 0o600);
      } catch (err2) {
        this.#ioFail(path, 'create', err2);
      }
    }
    this.#fd = fd;
    this.#files.add(path);
    this.#owned.add(path);
    this.#fileCount++;
  }

  #dir(path: string, h: TarEntryHeader): void {
    this.#ensureDir(path, true);
    const abs = this.#abs(path);
    try {
      if (this.#needsChown(h)) lchownSync(abs, h.uid, h.gid);
    } catch (err) {
      this.#ioFail(path, 'chown', err);
    }
    this.#xattrs(path, h);
    this.#dirMeta.set(path, { mode: h.mode, atime: h.atime ?? h.mtime, mtime: h.mtime });
  }

  #symlink(path: string, h: TarEntryHeader): void {
    // The target is stored verbatim: absolute and climbing targets are valid in a layer (they
    // resolve inside the final rootfs) and we never follow a symlink while extracting.
    if (h.linkname === '') this.#fail('LAYER_INVALID', path, 'symlink has an empty target');
    if (h.linkname.includes('\0')) this.#fail('LAYER_UNSAFE', path, 'symlink target contains NUL');
    if (Buffer.byteLength(h.linkname) >= PATH_MAX) this.#fail('LAYER_UNSAFE', path, 'symlink target longer than PATH_MAX');
    this.#ensureParent(path);
    const abs = this.#abs(path);
    this.#create(path, () => symlinkSync(h.linkname, abs), 'symlink');
    this.#owned.add(path);
    try {
      if (this.#needsChown(h)) lchownSync(abs, h.uid, h.gid);
      this.#xattrs(path, h);
      lutimesSync(abs, h.atime ?? h.mtime, h.mtime);
    } catch (err) {
      if (err instanceof HostpullError) throw err;
      this.#ioFail(path, 'set metadata on', err);
    }
  }

  #hardlink(path: string, h: TarEntryHeader): void {
    const target = normaliseEntryPath(h.linkname, this.#o.maxDepth);
    if (typeof target !== 'string') this.#fail('LAYER_UNSAFE', path, `hardlink target ${JSON.stringify(h.linkname)}: ${target.refused}`);
    // Only a regular file this layer wrote and still holds: never a symlink (linking "through" it
    // would pin an outside inode), a directory, a device or something outside the root.
    if (!this.#files.has(target)) {
      this.#fail('LAYER_UNSAFE', path, `hardlink target ${JSON.stringify(h.linkname)} is not a regular file extracted earlier in this layer`);
    }
    if (target === path) return; // a link to itself: nothing to do (GNU tar does the same)
    const st = this.#lstat(target);
    if (!st?.isFile()) this.#fail('LAYER_UNSAFE', path, `hardlink target ${JSON.stringify(h.linkname)} is not a regular file`);
    this.#ensureParent(path);
    const abs = this.#abs(path);
    this.#create(path, () => linkSync(this.#abs(target), abs), 'hardlink');
    this.#files.add(path);
    this.#owned.add(path);
  }

  #device(path: string, h: TarEntryHeader): void {
    if (this.#o.allowedPrefixes !== undefined) this.#fail('LAYER_UNSAFE', path, `${h.type} device node in a package layer`);
    if (!this.#o.allowDevices) this.#fail('LAYER_UNSAFE', path, `${h.type} device node refused (devices are only created in a root-owned store)`);
    const type = h.type === 'char' ? S_IFCHR : h.type === 'block' ? S_IFBLK : S_IFIFO;
    const dev = h.type === 'fifo' ? 0 : makedev(h.devmajor, h.devminor);
    this.#ensureParent(path);
    const abs = this.#abs(path);
    this.#create(path, () => mknod(abs, type | (h.mode & 0o777), dev), 'mknod');
    this.#owned.add(path);
    try {
      if (this.#needsChown(h)) lchownSync(abs, h.uid, h.gid);
      this.#xattrs(path, h);
      // chmod follows symlinks, but `abs` is the node mknod just created under verified parents.
      chmodSync(abs, h.mode);
      lutimesSync(abs, h.atime ?? h.mtime, h.mtime);
    } catch (err) {
      if (err instanceof HostpullError) throw err;
      this.#ioFail(path, 'set metadata on', err);
    }
  }

  /**
   * OCI whiteouts (image-spec layer.md "Whiteouts") → overlayfs whiteouts (kernel
   * Documentation/filesystems/overlayfs.rst "whiteouts and opaque directories").
   */
  #whiteout(path: string, base: string): void {
    const dir = parentOf(path);
    const opaqueXattr = this.#o.rootless ? 'user.overlay.opaque' : 'trusted.overlay.opaque';
    if (base === WHITEOUT_OPAQUE) {
      if (!this.#allowed(dir)) this.#fail('LAYER_UNSAFE', path, 'opaque whiteout outside the layer\'s allowed prefixes');
      this.#ensureDir(dir);
      this.#setxattr(dir, opaqueXattr, Buffer.from('y'));
      this.#opaque.set(dir, path);
      return;
    }
    if (base.startsWith(WHITEOUT_META_PREFIX)) {
      // `.wh..wh.plnk` and friends are aufs internals; no layer writer should emit them.
      this.#fail('LAYER_UNSAFE', path, 'unsupported whiteout meta entry');
    }
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === '' || name === '.' || name === '..') this.#fail('LAYER_UNSAFE', path, 'whiteout names no file');
    const target = dir === '' ? name : `${dir}/${name}`;
    if (!this.#allowed(target)) this.#fail('LAYER_UNSAFE', path, 'whiteout outside the layer\'s allowed prefixes');
    this.#ensureParent(target);
    // A whiteout hides lower layers only; an entry of this layer with the same name stays
    // (image-spec: "files that are present in the same layer as a whiteout file can only be
    // hidden by whiteout files in subsequent layers").
    if (this.#lstat(target) !== undefined) return;
    const abs = this.#abs(target);
    try {
      mknod(abs, S_IFCHR, makedev(0, 0));
    } catch (err) {
      if (!(this.#o.rootless && syscallErrno(err) === 'EPERM')) this.#ioFail(target, 'create whiteout', err);
      // Without CAP_MKNOD: a zero-size file with overlay.whiteout, and the parent marked "x"
      // so overlayfs (userxattr, Linux ≥ 6.7) looks for such whiteouts in it.
      try {
        closeSync(openSync(abs, CREATE_FLAGS, 0o000));
      } catch (err2) {
        this.#ioFail(target, 'create whiteout', err2);
      }
      this.#setxattr(target, 'user.overlay.whiteout', Buffer.from('y'));
      if (!this.#opaque.has(dir)) this.#setxattr(dir, opaqueXattr, Buffer.from('x'));
    }
    this.#whiteouts.set(target, path);
  }

  // ── helpers ─────────────────────────────────────────────────────────────────────────────────

  #abs(path: string): string {
    return path === '' ? this.#o.root : `${this.#o.root}/${path}`;
  }

  #allowed(path: string): boolean {
    const prefixes = this.#o.allowedPrefixes;
    return prefixes === undefined || prefixes.some((p) => isWithin(path, p));
  }

  #isPrefixAncestor(path: string): boolean {
    return this.#o.allowedPrefixes!.some((p) => path === '' || p.startsWith(`${path}/`));
  }

  /**
   * chown only as root in a root store, and only when the owner differs from the one the new
   * inode already has: ours, because no directory of the layer has its setgid bit until finish()
   * (saves a syscall per file in the common all-root layer).
   */
  #needsChown(h: TarEntryHeader): boolean {
    return this.#isRoot && !this.#o.rootless && (this.#inheritsGroup || h.uid !== this.#uid || h.gid !== this.#gid);
  }

  #lstat(path: string): Stats | undefined {
    try {
      return lstatSync(this.#abs(path), { throwIfNoEntry: false });
    } catch (err) {
      this.#ioFail(path, 'lstat', err);
    }
  }

  /**
   * Makes every parent component of `path` a real directory: missing ones are created 0755, an
   * existing symlink is refused (never followed: containerd's "symlink parent then write through
   * it" breakout), a whiteout of this layer is replaced, any other non-directory is an error.
   */
  #ensureParent(path: string): void {
    const parent = parentOf(path);
    if (this.#dirs.has(parent)) return;
    let i = 0;
    for (;;) {
      const slash = parent.indexOf('/', i);
      const component = slash < 0 ? parent : parent.slice(0, slash);
      if (!this.#dirs.has(component)) this.#makeRealDir(component, path);
      if (slash < 0) return;
      i = slash + 1;
    }
  }

  #makeRealDir(component: string, forPath: string): void {
    const st = this.#lstat(component);
    if (st === undefined) {
      try {
        mkdirSync(this.#abs(component), 0o755);
        // Explicit chmod: an implied parent is 0755 whatever the daemon's umask is.
        chmodSync(this.#abs(component), 0o755);
      } catch (err) {
        this.#ioFail(component, 'mkdir', err);
      }
    } else if (st.isSymbolicLink()) {
      this.#fail('LAYER_UNSAFE', forPath, `parent ${JSON.stringify(component)} is a symlink (refusing to write through it)`);
    } else if (!st.isDirectory()) {
      if (!this.#whiteouts.has(component)) this.#fail('LAYER_INVALID', forPath, `parent ${JSON.stringify(component)} is not a directory`);
      this.#remove(component, st);
      try {
        mkdirSync(this.#abs(component), 0o755);
      } catch (err) {
        this.#ioFail(component, 'mkdir', err);
      }
    }
    this.#dirs.add(component);
  }

  /**
   * A directory entry: keep an existing directory (metadata is updated), replace anything else.
   * A directory entry's own directory is created 0700 until finish() applies the archive's mode
   * (that mode could forbid creating the children that follow); directories that take no
   * metadata from the archive (above a package prefix, parent of an opaque marker) get 0755.
   */
  #ensureDir(path: string, forEntry = false): void {
    if (this.#dirs.has(path)) return;
    this.#ensureParent(path);
    const st = this.#lstat(path);
    if (st?.isDirectory()) {
      this.#dirs.add(path);
      return;
    }
    if (st !== undefined) this.#remove(path, st);
    try {
      mkdirSync(this.#abs(path), forEntry ? 0o700 : 0o755);
      if (!forEntry) chmodSync(this.#abs(path), 0o755); // whatever the umask
    } catch (err) {
      this.#ioFail(path, 'mkdir', err);
    }
    this.#dirs.add(path);
  }

  /** Runs a create call; on EEXIST the later entry wins: remove what is there and retry once. */
  #create(path: string, create: () => void, what: string): void {
    try {
      create();
      return;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST' && syscallErrno(err) !== 'EEXIST') this.#ioFail(path, what, err);
    }
    this.#replace(path);
    try {
      create();
    } catch (err) {
      this.#ioFail(path, what, err);
    }
  }

  #replace(path: string): void {
    const st = this.#lstat(path);
    if (st !== undefined) this.#remove(path, st);
  }

  /**
   * Removes an existing entry of this layer. A directory tree is removed with rmSync, which
   * unlinks symlinks inside it rather than following them; the tree is inside the root because
   * its path's parents are verified directories.
   */
  #remove(path: string, st: Stats): void {
    if (path === '') this.#fail('LAYER_UNSAFE', path, 'cannot replace the layer root');
    const isDir = st.isDirectory();
    try {
      // The subtree is listed before it goes so the bookkeeping forgets exactly what was removed:
      // cost proportional to the subtree, so replacing many directories stays linear overall
      // (scanning every set per replacement would let a crafted layer go quadratic).
      const removed = isDir ? this.#listTree(path) : [];
      if (isDir) rmSync(this.#abs(path), { recursive: true, force: true });
      else unlinkSync(this.#abs(path));
      this.#forget(path);
      for (const p of removed) this.#forget(p);
    } catch (err) {
      this.#ioFail(path, 'remove', err);
    }
  }

  /** Relative paths below a directory; dirent types come from readdir, so symlinks are not entered. */
  #listTree(path: string): string[] {
    const out: string[] = [];
    const stack = [path];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      for (const d of readdirSync(this.#abs(dir), { withFileTypes: true })) {
        const p = `${dir}/${d.name}`;
        out.push(p);
        if (d.isDirectory()) stack.push(p);
      }
    }
    return out;
  }

  #forget(path: string): void {
    this.#dirs.delete(path);
    this.#files.delete(path);
    this.#owned.delete(path);
    this.#whiteouts.delete(path);
    this.#opaque.delete(path);
    this.#dirMeta.delete(path);
  }

  #xattrs(path: string, h: TarEntryHeader): void {
    for (const [name, value] of h.xattrs) {
      // trusted.* (overlay.opaque, overlay.redirect, overlay.metacopy…) and user.overlay.* are
      // read by overlayfs itself: an archive setting them could redirect lookups across layers.
      if (name.startsWith('trusted.') || name.startsWith('user.overlay.')) {
        this.#fail('LAYER_UNSAFE', path, `extended attribute ${JSON.stringify(name)} is not allowed in a layer`);
      }
      this.#setxattr(path, name, value);
    }
  }

  #setxattr(path: string, name: string, value: Buffer): void {
    try {
      lsetxattr(this.#abs(path), name, value, 0);
    } catch (err) {
      this.#ioFail(path, `set extended attribute ${JSON.stringify(name)} on`, err);
    }
  }

  #fail(code: string, entry: string, reason: string): never {
    throw new HostpullError(code, `layer ${this.#o.root}: entry ${JSON.stringify(entry)}: ${reason}`, {
      details: { layerDir: this.#o.root, entry },
    });
  }

  #ioFail(path: string, what: string, err: unknown): never {
    if (err instanceof HostpullError && err.code !== 'SYSCALL_FAILED') throw err;
    const errno = errnoCode(err) ?? syscallErrno(err) ?? 'error';
    // The what-to-do of a full disk is added where errors are shown (hintFor).
    const noSpace = isNoSpace(err) ? ' (no space left on the device)' : '';
    throw new HostpullError('LAYER_WRITE_FAILED', `layer ${this.#o.root}: cannot ${what} ${JSON.stringify(path)}: ${errno}${noSpace}`, {
      cause: err,
      details: { layerDir: this.#o.root, entry: path, errno },
    });
  }
}

function depth(path: string): number {
  let n = 0;
  for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) === 0x2f) n++;
  return path === '' ? -1 : n;
}
