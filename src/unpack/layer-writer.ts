import { closeSync, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, readlinkSync, chmodSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeSync, constants as fsc, type Stats } from 'node:fs';
import { type ArchiveErrorCode, type CheckedEntry, type LayerSink, type TarEntryHeader, type TreeEntry, archiveError, checksumOfTree, contentCrc32, parentOf, treeEntryOf } from '../archive/index.js';
import { errnoCode, HostpullError, isNoSpace } from '../errors.js';
import { lsetxattr, makedev, mknod, syscallErrno } from '../native/index.js';
import { DIRECT_MIN_BYTES, DirectContent } from './direct-content.js';

export interface LayerWriterOptions {
  /** Absolute path of the (existing, empty) layer directory. */
  root: string;
  allowDevices: boolean;
  rootless: boolean;
}

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
 * Applies checked tar entries (archive/entry-checker.ts has normalised each name and held it to
 * the layer's claim) to one layer directory with synchronous fs calls, in archive order — the
 * shape of containerd's `archive.Apply`. The safety argument rests on one invariant: every path it
 * touches is `root/<normalised name>` and every parent component of it is in `#dirs`, the set of
 * components that were lstat-verified as (or created as) real directories in this run. Nothing
 * else writes into a fresh layer directory, so a component cannot turn into a symlink behind our
 * back, and the final component is only ever created with O_EXCL/O_NOFOLLOW, mkdir, symlink,
 * link or mknod, none of which follows a symlink.
 */
export class LayerWriter implements LayerSink {
  readonly #o: LayerWriterOptions;
  readonly #isRoot = process.getuid?.() === 0;
  readonly #uid = process.geteuid?.() ?? -1;
  readonly #gid = process.getegid?.() ?? -1;
  readonly #inheritsGroup: boolean;
  /** Real directories inside the layer ('' is the root). */
  readonly #dirs = new Set<string>(['']);
  /** Regular files written by this layer and still present: the only valid hardlink targets. */
  readonly #files = new Set<string>();
  /** Non-directory paths written (files, links, devices). */
  readonly #owned = new Set<string>();
  /** Whiteout target path → whiteout entry name. */
  readonly #whiteouts = new Map<string, string>();
  /** Opaque directory → `.wh..wh..opq` entry name. */
  readonly #opaque = new Map<string, string>();
  /** Directories whose mode and times are set at the end (creating children changes mtime). */
  readonly #dirMeta = new Map<string, DirMeta>();
  /** CRC-32 and length of the current file's content written so far. */
  #crc = 0;
  #written = 0;
  /**
   * What the tree checksum covers of every path in the layer, as this writer left it (a file's
   * `extra` is the CRC-32 of its content as written).
   */
  readonly #tree = new Map<string, TreeEntry>();
  /** Paths of #tree whose outcome is not certain without an lstat (see #exactMode). */
  readonly #unsure = new Set<string>();
  #fileCount = 0;
  /** Open fd of the regular file whose data is streaming, or -1. */
  #fd = -1;
  /** The big files' content, through O_DIRECT (direct-content.ts). */
  readonly #directContent = new DirectContent();
  #current: TarEntryHeader | undefined;
  #currentPath = '';

  constructor(options: LayerWriterOptions) {
    this.#o = options;
    // Under a setgid layer root, new inodes (and new directories' setgid bit) inherit its group.
    const rootStat = lstatSync(options.root);
    this.#inheritsGroup = (rootStat.mode & 0o2000) !== 0;
    this.#tree.set('', treeEntryOf(rootStat, ''));
  }

  get files(): number {
    return this.#fileCount;
  }

  /**
   * What the layer claims for the overlap check between package layers (rootfs/conflicts.ts): the
   * non-directory paths it wrote, and the paths it hides from the layers below it (a whiteout's
   * target, an opaque directory). Without the hidden ones, a package whose prefix holds another's
   * (`/opt/tools` and `/opt/tools/java`) could blank that package out with `.wh.java` or an opaque
   * marker, in an order-dependent way, and the check would pass.
   */
  ownedPaths(): string[] {
    return [...new Set([...this.#owned, ...this.#whiteouts.keys(), ...this.#opaque.keys()])].sort();
  }

  whiteoutEntries(): string[] {
    return [...this.#whiteouts.values(), ...this.#opaque.values()].sort();
  }

  /**
   * The layer's tree checksum (archive/tree-checksum.ts) as a walk of the directory would find it
   * once finish() has run, from what this writer did rather than from a walk: a walk costs an
   * lstat per entry at the end of the unpack, on its critical path (~8 ms for a layer of 940
   * entries, ~28 ms for one of 4,264, in a process that had not walked a tree before). Only the
   * entries whose outcome is not certain are read back.
   */
  treeChecksum(): string {
    const entries = new Map<string, TreeEntry>();
    for (const [path, entry] of this.#tree) entries.set(path, this.#unsure.has(path) ? this.#entryOnDisk(path, entry) : entry);
    return checksumOfTree(entries);
  }

  // ── TarEntrySink ────────────────────────────────────────────────────────────────────────────

  entry(e: CheckedEntry): void {
    const h = e.header;
    const path = e.path;
    this.#current = h;
    this.#currentPath = path;
    if (e.kind === 'whiteout') {
      this.#whiteout(path, e.target);
      return;
    }
    if (e.kind === 'opaque') {
      this.#opaqueDir(path, e.target);
      return;
    }
    if (e.prefixAncestor) {
      // A directory above a package's prefix (`./`, `opt/`): created, but without metadata of
      // its own (the checker only lets neutral ones through), so the package cannot change `/`
      // or `/opt` of the composite rootfs.
      this.#ensureDir(path);
      return;
    }
    switch (h.type) {
      case 'file':
        this.#file(path);
        break;
      case 'dir':
        this.#dir(path, h);
        break;
      case 'symlink':
        this.#symlink(path, h);
        break;
      case 'hardlink':
        this.#hardlink(path, h, e.linkTarget);
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
    this.#crc = contentCrc32(chunk, this.#crc);
    this.#written += chunk.length;
    try {
      if (this.#directContent.active) this.#directContent.write(chunk);
      else for (let off = 0; off < chunk.length; ) off += writeSync(this.#fd, chunk, off, chunk.length - off);
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
    this.#record(path, { kind: 'f', mode: h.mode & 0o7777, size: this.#written, extra: this.#crc.toString(16) }, this.#exactMode(h.mode));
    try {
      if (this.#directContent.active) {
        try {
          this.#directContent.end();
        } catch (err) {
          this.#ioFail(path, 'write', err);
        }
      }
      this.#setMetadata(path, h, {
        chown: (uid, gid) => fchownSync(fd, uid, gid),
        chmod: (mode) => fchmodSync(fd, mode),
        utimes: (atime, mtime) => futimesSync(fd, atime, mtime),
      });
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Owner, xattrs, mode and times of a new entry, through `on` (its fd for a file, its path for
   * other kinds; a symlink has no mode of its own). Order matters: chown clears setuid/setgid, so
   * chmod comes after it; xattrs before chmod so a read-only mode cannot block them; times last
   * because every other step changes ctime only.
   */
  #setMetadata(path: string, h: TarEntryHeader, on: { chown(uid: number, gid: number): void; chmod?(mode: number): void; utimes(atime: number, mtime: number): void }): void {
    try {
      if (this.#needsChown(h)) on.chown(h.uid, h.gid);
      this.#xattrs(path, h);
      on.chmod?.(h.mode);
      on.utimes(h.atime ?? h.mtime, h.mtime);
    } catch (err) {
      if (err instanceof HostpullError) throw err;
      this.#ioFail(path, 'set metadata on', err);
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
        this.#record(path, dirEntry(meta.mode), this.#exactMode(meta.mode));
      } catch (err) {
        this.#ioFail(path, 'set metadata on directory', err);
      }
    }
  }

  /** Releases an open file after a failure (the caller discards the directory). */
  abort(): void {
    if (this.#directContent.active) {
      try {
        this.#directContent.close();
      } catch {
        // already failing; the first error is the one reported
      }
    }
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

  #file(path: string): void {
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
    if (this.#current!.size >= DIRECT_MIN_BYTES) this.#directContent.begin(fd);
    this.#crc = 0;
    this.#written = 0;
    // As created, until entryEnd sets its mode.
    this.#record(path, { kind: 'f', mode: 0o600, size: 0, extra: '0' }, false);
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
    // The target is stored verbatim (the checker bounded it); we never follow a symlink here.
    this.#ensureParent(path);
    const abs = this.#abs(path);
    this.#create(path, () => symlinkSync(h.linkname, abs), 'symlink');
    this.#owned.add(path);
    // Linux gives every symlink mode 0777.
    this.#record(path, { kind: 'l', mode: 0o777, size: 0, extra: h.linkname });
    this.#setMetadata(path, h, { chown: (uid, gid) => lchownSync(abs, uid, gid), utimes: (atime, mtime) => lutimesSync(abs, atime, mtime) });
  }

  #hardlink(path: string, h: TarEntryHeader, target: string): void {
    // Only a regular file this layer wrote and still holds: never a symlink (linking "through" it
    // would pin an outside inode), a directory, a device or something outside the root.
    if (!this.#files.has(target)) {
      this.#fail('LAYER_UNSAFE', 'hardlink-target', path, `hardlink target ${JSON.stringify(h.linkname)} is not a regular file extracted earlier in this layer`);
    }
    if (target === path) return; // a link to itself: nothing to do (GNU tar does the same)
    const st = this.#lstat(target);
    if (!st?.isFile()) this.#fail('LAYER_UNSAFE', 'hardlink-target', path, `hardlink target ${JSON.stringify(h.linkname)} is not a regular file`);
    this.#ensureParent(path);
    const abs = this.#abs(path);
    this.#create(path, () => linkSync(this.#abs(target), abs), 'hardlink');
    // The same inode as the target's (a file of #files, so in #tree): the same entry.
    this.#record(path, this.#tree.get(target)!, !this.#unsure.has(target));
    this.#files.add(path);
    this.#owned.add(path);
  }

  #device(path: string, h: TarEntryHeader): void {
    if (!this.#o.allowDevices) this.#fail('LAYER_UNSAFE', 'device-refused', path, `${h.type} device node refused (devices are only created in a root-owned store)`);
    const type = h.type === 'char' ? S_IFCHR : h.type === 'block' ? S_IFBLK : S_IFIFO;
    const dev = h.type === 'fifo' ? 0 : makedev(h.devmajor, h.devminor);
    this.#ensureParent(path);
    const abs = this.#abs(path);
    this.#create(path, () => mknod(abs, type | (h.mode & 0o777), dev), 'mknod');
    this.#owned.add(path);
    this.#setMetadata(path, h, {
      chown: (uid, gid) => lchownSync(abs, uid, gid),
      // chmod follows symlinks, but `abs` is the node mknod just created under verified parents.
      chmod: (mode) => chmodSync(abs, mode),
      utimes: (atime, mtime) => lutimesSync(abs, atime, mtime),
    });
    const kind = h.type === 'char' ? 'c' : h.type === 'block' ? 'b' : 'p';
    this.#record(path, { kind, mode: h.mode & 0o7777, size: 0, extra: kind === 'p' ? '' : String(dev) }, this.#exactMode(h.mode));
  }

  /**
   * OCI whiteouts (image-spec layer.md "Whiteouts") → overlayfs whiteouts (kernel
   * Documentation/filesystems/overlayfs.rst "whiteouts and opaque directories"). The checker has
   * classified the entry and refused meta whiteouts and ones outside a package's prefix.
   */
  #opaqueDir(path: string, dir: string): void {
    this.#ensureDir(dir);
    this.#setxattr(dir, this.#o.rootless ? 'user.overlay.opaque' : 'trusted.overlay.opaque', Buffer.from('y'));
    this.#opaque.set(dir, path);
  }

  #whiteout(path: string, target: string): void {
    const dir = parentOf(target);
    this.#ensureParent(target);
    // A whiteout hides lower layers only; an entry of this layer with the same name stays
    // (image-spec: "files that are present in the same layer as a whiteout file can only be
    // hidden by whiteout files in subsequent layers").
    if (this.#lstat(target) !== undefined) return;
    const abs = this.#abs(target);
    try {
      mknod(abs, S_IFCHR, makedev(0, 0));
      this.#record(target, { kind: 'c', mode: 0, size: 0, extra: String(makedev(0, 0)) });
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
      this.#record(target, { kind: 'f', mode: 0, size: 0, extra: '0' });
      if (!this.#opaque.has(dir)) this.#setxattr(dir, this.#o.rootless ? 'user.overlay.opaque' : 'trusted.overlay.opaque', Buffer.from('x'));
    }
    this.#whiteouts.set(target, path);
  }

  // ── helpers ─────────────────────────────────────────────────────────────────────────────────

  /**
   * Whether a chmod to `mode` leaves exactly those bits: not for a setuid or setgid bit, which
   * the kernel drops for a caller outside the file's group without CAP_FSETID, and not under a
   * setgid layer root, whose new directories inherit the bit.
   */
  #exactMode(mode: number): boolean {
    return (mode & 0o6000) === 0 && !this.#inheritsGroup;
  }

  /** What the checksum covers of `path` from here on; `exact` false when only an lstat can tell (see #tree). */
  #record(path: string, entry: TreeEntry, exact = true): void {
    this.#tree.set(path, entry);
    if (exact) this.#unsure.delete(path);
    else this.#unsure.add(path);
  }

  /** An unsure path's tree entry read back from the disk; a file keeps the CRC of what was written. */
  #entryOnDisk(path: string, written: TreeEntry): TreeEntry {
    const abs = this.#abs(path);
    const st = lstatSync(abs);
    if (st.isFile()) return treeEntryOf(st, written.kind === 'f' ? written.extra : '0');
    return treeEntryOf(st, st.isSymbolicLink() ? readlinkSync(abs) : '');
  }

  #abs(path: string): string {
    return path === '' ? this.#o.root : `${this.#o.root}/${path}`;
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
      this.#record(component, dirEntry(0o755), this.#exactMode(0o755));
    } else if (st.isSymbolicLink()) {
      this.#fail('LAYER_UNSAFE', 'symlink-parent', forPath, `parent ${JSON.stringify(component)} is a symlink (refusing to write through it)`);
    } else if (!st.isDirectory()) {
      if (!this.#whiteouts.has(component)) this.#fail('LAYER_INVALID', 'parent-not-directory', forPath, `parent ${JSON.stringify(component)} is not a directory`);
      this.#remove(component, st);
      try {
        mkdirSync(this.#abs(component), 0o755);
      } catch (err) {
        this.#ioFail(component, 'mkdir', err);
      }
      this.#record(component, dirEntry(0o755), false); // the umask applies
    } else if (!this.#tree.has(component)) {
      this.#record(component, treeEntryOf(st, ''));
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
      if (!this.#tree.has(path)) this.#record(path, treeEntryOf(st, ''));
      return;
    }
    if (st !== undefined) this.#remove(path, st);
    try {
      mkdirSync(this.#abs(path), forEntry ? 0o700 : 0o755);
      if (!forEntry) chmodSync(this.#abs(path), 0o755); // whatever the umask
    } catch (err) {
      this.#ioFail(path, 'mkdir', err);
    }
    // A directory entry's mode is recorded when finish() sets it; until then the umask applies.
    this.#record(path, dirEntry(forEntry ? 0o700 : 0o755), !forEntry && this.#exactMode(0o755));
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
    if (path === '') this.#fail('LAYER_UNSAFE', 'replaces-root', path, 'cannot replace the layer root');
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
    this.#tree.delete(path);
    this.#unsure.delete(path);
  }

  /** The checker has refused trusted.* and user.overlay.* (overlayfs reads those itself). */
  #xattrs(path: string, h: TarEntryHeader): void {
    for (const [name, value] of h.xattrs) this.#setxattr(path, name, value);
  }

  #setxattr(path: string, name: string, value: Buffer): void {
    try {
      lsetxattr(this.#abs(path), name, value, 0);
    } catch (err) {
      this.#ioFail(path, `set extended attribute ${JSON.stringify(name)} on`, err);
    }
  }

  #fail(code: ArchiveErrorCode, rule: string, entry: string, reason: string): never {
    throw archiveError(code, this.#o.root, rule, reason, { entry, offset: this.#current?.offset ?? 0 });
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

function dirEntry(mode: number): TreeEntry {
  return { kind: 'd', mode: mode & 0o7777, size: 0, extra: '' };
}

function depth(path: string): number {
  let n = 0;
  for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) === 0x2f) n++;
  return path === '' ? -1 : n;
}
