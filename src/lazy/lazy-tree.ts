import { HostpullError } from '../errors.js';
import {
  archiveError,
  baseOf,
  EntryChecker,
  expansionBound,
  LAYER_LIMIT_DEFAULTS,
  normalisePrefix,
  parentOf,
  type CheckedEntry,
  type CheckedEntrySink,
  type PackageClaim,
  type TarEntryHeader,
} from '../archive/index.js';
import { type Digest, parseTocBlob, type SeekableToc, type TocEntry } from '../oci/index.js';
import { compareUtf8 } from '../util/index.js';

/** One node of the lazy view: what `stat` shows, and where a file's bytes are in the tar. */
export interface LazyNode {
  /** Inode number, stable for the life of the tree (1 is the root). */
  ino: number;
  path: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  /** Hard links to this node (1 for files without links, 2 + subdirectories for directories). */
  nlink: number;
  /** Files: offset of the data in the tar. */
  dataOffset: number;
  /** Symlinks: the target, verbatim. */
  linkname: string;
  /** Directories: child names, sorted bytewise. */
  children: string[] | undefined;
}

export interface LazyTreeOptions {
  /** Names the layer in messages. */
  where: string;
  /** The package claim the layer is held to, as an unpack would be; undefined for a base layer. */
  claim?: PackageClaim | undefined;
  /** The store's expansion bound (UnpackLimits.maxExpansionRatio). Default: archive's LAYER_LIMIT_DEFAULTS, as an unpack's. */
  maxExpansionRatio?: number;
}

/** Shared by the entries without extended attributes (almost all): the checker only reads it. */
const NO_XATTRS: Map<string, Buffer> = new Map();

/** A TOC entry as the tar reader reported it when the TOC was made (publish/seekable-layer.ts). */
function headerOf(e: TocEntry): TarEntryHeader {
  return {
    name: e.path,
    type: e.type,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size: e.size,
    mtime: e.mtime,
    atime: undefined,
    linkname: e.linkname ?? '',
    devmajor: e.devmajor ?? 0,
    devminor: e.devminor ?? 0,
    xattrs: e.xattrs === undefined ? NO_XATTRS : new Map(Object.entries(e.xattrs).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    offset: e.offset,
  };
}

/**
 * The file tree of a seekable layer, built from its TOC through the entry checker an unpack uses
 * (archive/entry-checker.ts), with the same bounds and the same package claim: a layer that an
 * unpack would refuse (outside its prefix, a device node, a changed ancestor of the prefix,
 * setuid without the catalog's leave, `..`, too deep, too many entries…) throws the same
 * archive error here, before anything of it is mounted or fetched. What passes is laid out as the
 * layer writer would: a later entry replaces an earlier one of the same path, hardlinks only to
 * files seen before, missing parents and the prefix's ancestors as 0755 root-owned directories.
 * A layer whose view would differ from its unpack (whiteouts, which only a real overlay dir can
 * express; device nodes and extended attributes, which this view does not show) is refused with
 * LAZY_REFUSED instead, and is then pulled whole.
 */
export class LazyTree {
  readonly #nodes = new Map<string, LazyNode>();
  /** By inode, built at the first {@link byIno}. */
  #byIno: LazyNode[] | undefined;
  readonly root: LazyNode;
  /** Non-directory paths, for the overlap check between package layers (like an unpack's ownedPaths). */
  readonly ownedPaths: string[];

  private constructor(root: LazyNode, nodes: Map<string, LazyNode>) {
    this.root = root;
    this.#nodes = nodes;
    // By name, not node: hard links share one node under several names.
    this.ownedPaths = [...nodes.entries()]
      .filter(([, n]) => n.type !== 'dir')
      .map(([path]) => path)
      .sort();
  }

  /** The node at a FUSE path (`/`, `/opt/jdk`), or undefined. */
  lookup(fusePath: string): LazyNode | undefined {
    return this.#nodes.get(fusePath === '/' ? '' : fusePath.slice(1));
  }

  /** Node `ino`, by inode number (hard links share one); undefined for an unknown or replaced one. */
  byIno(ino: number): LazyNode | undefined {
    if (!this.#byIno) {
      this.#byIno = [];
      for (const n of this.#nodes.values()) this.#byIno[n.ino] = n;
    }
    return this.#byIno[ino];
  }

  /** Every regular file, once (hard links share one node). */
  *files(): IterableIterator<LazyNode> {
    const seen = new Set<number>();
    for (const n of this.#nodes.values()) {
      if (n.type !== 'file' || seen.has(n.ino)) continue;
      seen.add(n.ino);
      yield n;
    }
  }

  /** Per inode (the index): each file's data offset in the tar and its size; -1 for the size of anything else. */
  fileExtents(): { offsets: Float64Array; sizes: Float64Array } {
    let max = 0;
    for (const n of this.#nodes.values()) max = Math.max(max, n.ino);
    const offsets = new Float64Array(max + 1);
    const sizes = new Float64Array(max + 1).fill(-1);
    for (const n of this.#nodes.values()) {
      if (n.type !== 'file') continue;
      offsets[n.ino] = n.dataOffset;
      sizes[n.ino] = n.size;
    }
    return { offsets, sizes };
  }

  get size(): number {
    return this.#nodes.size;
  }

  /**
   * Builds the tree; throws the unpack's archive error (LAYER_UNSAFE, LAYER_INVALID,
   * LAYER_QUOTA_EXCEEDED) when an unpack would refuse the layer, and LAZY_REFUSED (with the
   * reason) when it cannot be shown lazily.
   */
  static fromToc(toc: SeekableToc, options: LazyTreeOptions): LazyTree {
    const where = options.where;
    const bound = expansionBound(toc.size, options.maxExpansionRatio ?? LAYER_LIMIT_DEFAULTS.maxExpansionRatio);
    if (toc.uncompressedSize > bound.bytes) {
      throw archiveError('LAYER_QUOTA_EXCEEDED', where, bound.rule, `uncompressed stream exceeds ${bound.bytes} bytes: ${bound.why}`);
    }
    const refuse = (path: string | undefined, why: string) =>
      new HostpullError('LAZY_REFUSED', `${where}: ${path !== undefined ? `${JSON.stringify(path)}: ` : ''}${why}`, { details: { reason: why } });
    const nodes = new Map<string, LazyNode>();
    let ino = 1;
    const dir = (path: string, mode = 0o755, uid = 0, gid = 0, mtime = 0): LazyNode => ({
      ino: ino++,
      path,
      type: 'dir',
      mode,
      uid,
      gid,
      size: 4096,
      mtime,
      nlink: 2,
      dataOffset: 0,
      linkname: '',
      children: [],
    });
    const root = dir('');
    nodes.set('', root);
    const ensureDir = (path: string): LazyNode => {
      const existing = nodes.get(path);
      if (existing) {
        if (existing.type !== 'dir') throw refuse(path, 'is the parent of a later entry but not a directory');
        return existing;
      }
      const parent = ensureDir(parentOf(path));
      const made = dir(path);
      parent.children!.push(baseOf(path));
      parent.nlink++; // a subdirectory's `..`
      nodes.set(path, made);
      return made;
    };

    // The TOC entry being checked: the checker hands its header back synchronously to place().
    let current: TocEntry | undefined;
    const place = (c: CheckedEntry): void => {
      const h = c.header;
      const path = c.path;
      if (c.kind !== 'entry') throw refuse(path, 'the layer has whiteouts, which only an unpacked layer can show');
      if (h.type === 'char' || h.type === 'block' || h.type === 'fifo') throw refuse(path, 'the layer has device nodes or fifos, which the lazy view does not show');
      if (h.xattrs.size > 0) throw refuse(path, 'the layer has extended attributes (file capabilities…), which the lazy view does not show');
      // Above a package's prefix the writer creates the directory but takes no metadata from it.
      const keep = !c.prefixAncestor;
      const setAttrs = (n: LazyNode) => {
        n.mode = h.mode & 0o7777;
        n.uid = h.uid;
        n.gid = h.gid;
        n.mtime = h.mtime;
      };
      if (path === '') {
        if (keep) setAttrs(root);
        return;
      }
      const parent = ensureDir(parentOf(path));
      const existing = nodes.get(path);
      if (h.type === 'dir') {
        // A directory entry over an existing directory updates its attributes (tar semantics).
        if (existing?.type === 'dir') {
          if (keep) setAttrs(existing);
          return;
        }
      } else if (existing?.type === 'dir') {
        throw refuse(path, 'replaces a directory with a non-directory');
      }
      let node: LazyNode;
      if (h.type === 'hardlink') {
        const linked = nodes.get(c.linkTarget);
        if (!linked || linked.type !== 'file') throw refuse(path, `hardlink to ${JSON.stringify(h.linkname)}, which is not a file earlier in the layer`);
        linked.nlink++;
        node = linked;
      } else {
        const type = h.type as 'file' | 'dir' | 'symlink';
        node = {
          ino: ino++,
          path,
          type,
          mode: 0o755,
          uid: 0,
          gid: 0,
          mtime: 0,
          size: type === 'file' ? h.size : type === 'symlink' ? Buffer.byteLength(h.linkname) : 4096,
          nlink: type === 'dir' ? 2 : 1,
          dataOffset: type === 'file' ? (current!.dataOffset ?? 0) : 0,
          linkname: type === 'symlink' ? h.linkname : '',
          children: type === 'dir' ? [] : undefined,
        };
        if (keep) setAttrs(node);
        if (type === 'dir') parent.nlink++; // what it replaced (if anything) was not a directory
      }
      if (existing) {
        // Replaced: the old node keeps its inode for open handles, but the name points at the new one.
        if (existing.type === 'file' && existing.nlink > 1) existing.nlink--;
      } else {
        parent.children!.push(baseOf(path));
      }
      nodes.set(path, node);
    };
    const sink: CheckedEntrySink = { entry: place, data: () => undefined, entryEnd: () => undefined };
    const claim = options.claim ? { ...options.claim, prefix: normalisePrefix(options.claim.prefix) } : undefined;
    const checker = new EntryChecker(sink, { where, maxEntries: LAYER_LIMIT_DEFAULTS.maxEntries, maxDepth: LAYER_LIMIT_DEFAULTS.maxDepth, maxBytes: LAYER_LIMIT_DEFAULTS.maxBytes, claim, footprint: false });
    for (const entry of toc.entries) {
      current = entry;
      checker.entry(headerOf(entry));
      checker.entryEnd();
    }
    for (const n of nodes.values()) if (n.type === 'dir') n.children!.sort(compareUtf8);
    return new LazyTree(root, nodes);
  }
}

/**
 * A layer's TOC from its blob as fetched: the blob `tocDigest` names (parseTocBlob), and one that
 * describes `layer` as its manifest gives it (blob digest, diffID, size), else LAZY_REFUSED. What
 * both judges of a TOC start from: the FUSE helper at a mount, and the starting process when the
 * helper cannot judge it.
 */
export function parseLayerToc(blob: Buffer, tocDigest: Digest, layer: { digest: Digest; diffId: Digest; size: number }, where: string): SeekableToc {
  const toc = parseTocBlob(blob, tocDigest, where);
  if (toc.digest !== layer.digest || toc.diffId !== layer.diffId || toc.size !== layer.size) {
    throw new HostpullError('LAZY_REFUSED', `its table of contents ${tocDigest} describes another layer`);
  }
  return toc;
}
