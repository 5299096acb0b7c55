import { archiveError, type ArchiveErrorCode } from './archive-error.js';
import { baseOf, normaliseEntryPath, parentOf, PATH_MAX } from './entry-path.js';
import { FootprintBuilder, type LayerFootprint } from './layer-footprint.js';
import { CAPABILITY_XATTR, insidePrefix, isNeutralDir, isPrefixAncestor, SETID_BITS, type PackageClaim } from './package-claim.js';
import type { TarEntryHeader, TarEntrySink } from './tar-reader.js';

/** An entry that passed every header-level rule, with its normalised path. */
export interface CheckedEntry {
  header: TarEntryHeader;
  /** Normalised path inside the layer (`''` is the layer root). */
  path: string;
  /**
   * `entry`: an ordinary entry at `path`; `whiteout`: hides `target` of lower layers;
   * `opaque`: hides the lower layers' content of directory `target`.
   */
  kind: 'entry' | 'whiteout' | 'opaque';
  /** For whiteouts and opaque markers: the path (or directory) they act on. */
  target: string;
  /** For hardlinks: the normalised link target. */
  linkTarget: string;
  /** A directory above a package's prefix: created, but it takes no metadata of its own. */
  prefixAncestor: boolean;
}

/** What receives checked entries: the node's layer writer, or nothing on the server. */
export interface CheckedEntrySink {
  entry(entry: CheckedEntry): void;
  /** A slice of the caller's chunk: consume it before returning, do not keep it. */
  data(chunk: Buffer): void;
  entryEnd(): void;
}

export interface EntryCheckerOptions {
  /** Names the layer in messages (a directory on a node, a digest on the server). */
  where: string;
  /** Max entries. Exceeding → LAYER_QUOTA_EXCEEDED. */
  maxEntries: number;
  /** Max path depth in components. Exceeding → LAYER_UNSAFE. */
  maxDepth: number;
  /** Max bytes of regular file data. Exceeding → LAYER_QUOTA_EXCEEDED. */
  maxBytes: number;
  /** The package claim the layer is held to; undefined for a base layer (any path). */
  claim: PackageClaim | undefined;
  /**
   * Whether to collect the {@link LayerFootprint} of what passed. Default true; a lazy view's
   * tree, built on the critical path of a lazy start, has no use for it.
   */
  footprint?: boolean;
}

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_META_PREFIX = '.wh..wh.';
const WHITEOUT_OPAQUE = '.wh..wh..opq';

/**
 * The rules every layer entry is held to before anything is written, shared by the server's
 * registration check and the node's unpack so both give one verdict for one archive: names are
 * normalised (no `..`, not absolute, bounded), whiteouts are classified, overlayfs's own xattrs
 * are refused, and a package layer is held to its claim. The footprint of what passed is
 * collected on the way (see {@link LayerFootprint}).
 *
 * Rules that depend on what is already on disk (a parent that is a symlink, a hardlink to a file
 * that a later entry replaced) belong to the writer, where the data lands.
 */
export class EntryChecker implements TarEntrySink {
  readonly #o: EntryCheckerOptions;
  readonly #inner: CheckedEntrySink | undefined;
  /** Undefined when the caller wants no footprint. */
  readonly #footprint: FootprintBuilder | undefined;
  #entries = 0;
  #bytes = 0;
  /** Tar offset of the entry being checked, for messages. */
  #offset = 0;

  constructor(inner: CheckedEntrySink | undefined, options: EntryCheckerOptions) {
    this.#inner = inner;
    this.#o = options;
    this.#footprint = options.footprint === false ? undefined : new FootprintBuilder();
  }

  get entries(): number {
    return this.#entries;
  }

  /** What passed, as a footprint; throws if the checker was made without one. */
  footprint(): LayerFootprint {
    if (!this.#footprint) throw new Error('this entry checker collects no footprint');
    return this.#footprint.build();
  }

  entry(h: TarEntryHeader): void {
    if (++this.#entries > this.#o.maxEntries) this.#fail('LAYER_QUOTA_EXCEEDED', 'too-many-entries', h.name, `more than ${this.#o.maxEntries} entries`, h.offset);
    const path = normaliseEntryPath(h.name, this.#o.maxDepth);
    if (typeof path !== 'string') this.#fail('LAYER_UNSAFE', path.rule, h.name, path.refused, h.offset);
    for (const name of h.xattrs.keys()) {
      // trusted.* (overlay.opaque, overlay.redirect, overlay.metacopy…) and user.overlay.* are
      // read by overlayfs itself: an archive setting them could redirect lookups across layers.
      if (name.startsWith('trusted.') || name.startsWith('user.overlay.')) {
        this.#fail('LAYER_UNSAFE', 'overlay-xattr', path, `extended attribute ${JSON.stringify(name)} is not allowed in a layer`);
      }
    }
    this.#offset = h.offset;
    const base = baseOf(path);
    const checked: CheckedEntry = { header: h, path, kind: 'entry', target: path, linkTarget: '', prefixAncestor: false };
    if (base.startsWith(WHITEOUT_PREFIX)) this.#whiteout(checked, base);
    else this.#plain(checked);
    this.#inner?.entry(checked);
  }

  data(chunk: Buffer): void {
    this.#inner?.data(chunk);
  }

  entryEnd(): void {
    this.#inner?.entryEnd();
  }

  /**
   * OCI whiteouts (image-spec layer.md "Whiteouts"): `.wh.<name>` hides `<name>` of the layers
   * below, `.wh..wh..opq` hides the directory's lower content; other `.wh..wh.*` names are aufs
   * internals that no layer writer should emit.
   */
  #whiteout(e: CheckedEntry, base: string): void {
    const dir = parentOf(e.path);
    if (base === WHITEOUT_OPAQUE) {
      e.kind = 'opaque';
      e.target = dir;
    } else {
      if (base.startsWith(WHITEOUT_META_PREFIX)) this.#fail('LAYER_UNSAFE', 'whiteout-meta', e.path, 'unsupported whiteout meta entry');
      const name = base.slice(WHITEOUT_PREFIX.length);
      if (name === '' || name === '.' || name === '..') this.#fail('LAYER_UNSAFE', 'whiteout-names-nothing', e.path, 'whiteout names no file');
      e.kind = 'whiteout';
      e.target = dir === '' ? name : `${dir}/${name}`;
    }
    const claim = this.#o.claim;
    if (claim && !insidePrefix(e.target, claim.prefix)) {
      this.#fail('LAYER_UNSAFE', 'outside-prefix', e.path, `${e.kind === 'opaque' ? 'opaque whiteout' : 'whiteout'} outside the package's prefix /${claim.prefix}`);
    }
    this.#footprint?.claiming(e.target);
  }

  #plain(e: CheckedEntry): void {
    const { header: h, path } = e;
    this.#offset = h.offset;
    if (path === '' && h.type !== 'dir') {
      // umoci CVE-2021-29136: a `.` symlink (or file) would replace the layer root itself.
      this.#fail('LAYER_UNSAFE', 'replaces-root', h.name, `a ${h.type} cannot replace the layer root`);
    }
    if (h.type === 'symlink') {
      // The target is stored verbatim: absolute and climbing targets are valid in a layer (they
      // resolve inside the final rootfs); the writer never follows a symlink while extracting.
      if (h.linkname === '') this.#fail('LAYER_INVALID', 'empty-symlink', path, 'symlink has an empty target');
      if (h.linkname.includes('\0')) this.#fail('LAYER_UNSAFE', 'nul-in-name', path, 'symlink target contains NUL');
      if (Buffer.byteLength(h.linkname) >= PATH_MAX) this.#fail('LAYER_UNSAFE', 'name-too-long', path, 'symlink target longer than PATH_MAX');
    }
    if (h.type === 'hardlink') {
      const target = normaliseEntryPath(h.linkname, this.#o.maxDepth);
      if (typeof target !== 'string') this.#fail('LAYER_UNSAFE', target.rule, path, `hardlink target ${JSON.stringify(h.linkname)}: ${target.refused}`);
      e.linkTarget = target;
    }
    if (h.type === 'file') {
      this.#bytes += h.size;
      if (this.#bytes > this.#o.maxBytes) this.#fail('LAYER_QUOTA_EXCEEDED', 'too-many-bytes', path, `layer writes more than ${this.#o.maxBytes} bytes`);
    }
    const neutral = isNeutralDir(h.type, h.mode, h.uid, h.gid, h.xattrs.size);
    const claim = this.#o.claim;
    if (claim) this.#checkClaim(e, claim, neutral);
    this.#record(e, neutral);
  }

  /** A package layer: inside its prefix, nothing above it but neutral directories, no devices, setid only if allowed. */
  #checkClaim(e: CheckedEntry, claim: PackageClaim, neutral: boolean): void {
    const { header: h, path } = e;
    const prefix = claim.prefix;
    if (!insidePrefix(path, prefix)) {
      if (!isPrefixAncestor(path, prefix) || h.type !== 'dir') {
        this.#fail('LAYER_UNSAFE', 'outside-prefix', path, `is outside the package's prefix /${prefix}`);
      }
      if (!neutral) {
        this.#fail(
          'LAYER_UNSAFE',
          'prefix-ancestor-metadata',
          path,
          `would change the mode or owner of /${path} (mode ${(h.mode & 0o7777).toString(8)}, owner ${h.uid}:${h.gid}${h.xattrs.size > 0 ? ', xattrs' : ''}): a package may only hold directories above /${prefix} as 0755 root:root`,
        );
      }
      e.prefixAncestor = true;
    }
    if (h.type === 'char' || h.type === 'block' || h.type === 'fifo') this.#fail('LAYER_UNSAFE', 'device-in-package', path, `${h.type} device node in a package layer`);
    if (e.linkTarget !== '' && !insidePrefix(e.linkTarget, prefix)) {
      this.#fail('LAYER_UNSAFE', 'outside-prefix', path, `hardlink target ${JSON.stringify(h.linkname)} is outside the package's prefix /${prefix}`);
    }
    if (!claim.allowSetuid) {
      if (h.type === 'file' && (h.mode & SETID_BITS) !== 0) {
        this.#fail('LAYER_UNSAFE', 'setid-in-package', path, `is setuid/setgid (mode ${(h.mode & 0o7777).toString(8)}) and the catalog entry of ${claim.code} does not allow it`);
      }
      if (h.xattrs.has(CAPABILITY_XATTR)) {
        this.#fail('LAYER_UNSAFE', 'capability-in-package', path, `has file capabilities and the catalog entry of ${claim.code} does not allow them`);
      }
    }
  }

  #record(e: CheckedEntry, neutral: boolean): void {
    const footprint = this.#footprint;
    if (!footprint) return;
    const { header: h, path } = e;
    if (neutral) footprint.neutralDir(path);
    else if (h.type === 'char' || h.type === 'block' || h.type === 'fifo') footprint.device(path);
    else footprint.claiming(path);
    if (e.linkTarget !== '') footprint.claiming(e.linkTarget);
    if (h.type === 'file' && (h.mode & SETID_BITS) !== 0) footprint.setid(path);
    if (h.type !== 'symlink' && h.xattrs.has(CAPABILITY_XATTR)) footprint.capability(path);
  }

  #fail(code: ArchiveErrorCode, rule: string, entry: string, reason: string, offset = this.#offset): never {
    throw archiveError(code, this.#o.where, rule, reason, { entry, offset });
  }
}
