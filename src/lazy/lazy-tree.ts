import { HostpullError } from '../errors.js';
import type { SeekableToc, TocEntry } from '../oci/seekable-toc.js';
import { baseOf, normaliseEntryPath, parentOf } from '../archive/index.js';

/** Same depth limit as an unpack: a deeper name is refused there, so it is here. */
const MAX_DEPTH = 256;

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

/**
 * The file tree of a seekable layer, built from its TOC with the rules an unpack applies: names
 * normalised (no absolute names, `..`, NUL, over-long names), a later entry replacing an earlier
 * one of the same path, hardlinks only to files seen before, missing parents created as 0755
 * root-owned directories (as an unpack's mkdir would). A layer whose view would differ from its
 * unpack — whiteouts, which only a real overlay dir can express — is refused, and is then pulled
 * whole: {@link LazyRefusal} says why.
 */
export class LazyTree {
  readonly #nodes = new Map<string, LazyNode>();
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

  get size(): number {
    return this.#nodes.size;
  }

  /** Builds the tree; throws LAZY_REFUSED (with the reason) when the layer cannot be shown lazily. */
  static fromToc(toc: SeekableToc, where: string): LazyTree {
    const refuse = (entry: TocEntry | undefined, why: string) =>
      new HostpullError('LAZY_REFUSED', `${where}: ${entry ? `${JSON.stringify(entry.path)}: ` : ''}${why}`, { details: { reason: why } });
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
    const ensureDir = (path: string, entry: TocEntry): LazyNode => {
      const existing = nodes.get(path);
      if (existing) {
        if (existing.type !== 'dir') throw refuse(entry, `its parent ${path} is not a directory`);
        return existing;
      }
      const parent = ensureDir(parentOf(path), entry);
      const made = dir(path);
      parent.children!.push(baseOf(path));
      nodes.set(path, made);
      return made;
    };

    for (const entry of toc.entries) {
      const path = normaliseEntryPath(entry.path, MAX_DEPTH);
      if (typeof path !== 'string') throw refuse(entry, path.refused);
      if (baseOf(path).startsWith('.wh.')) throw refuse(entry, 'the layer has whiteouts, which only an unpacked layer can show');
      const attrs = { mode: entry.mode & 0o7777, uid: entry.uid, gid: entry.gid, mtime: entry.mtime };
      if (path === '') {
        if (entry.type !== 'dir') throw refuse(entry, 'the layer root is not a directory');
        Object.assign(root, attrs);
        continue;
      }
      const parent = ensureDir(parentOf(path), entry);
      const existing = nodes.get(path);
      if (entry.type === 'dir') {
        // A directory entry over an existing directory updates its attributes (tar semantics).
        if (existing?.type === 'dir') {
          Object.assign(existing, attrs);
          continue;
        }
      } else if (existing?.type === 'dir') {
        throw refuse(entry, 'replaces a directory with a non-directory');
      }
      let node: LazyNode;
      if (entry.type === 'hardlink') {
        const target = normaliseEntryPath(entry.linkname ?? '', MAX_DEPTH);
        const linked = typeof target === 'string' ? nodes.get(target) : undefined;
        if (!linked || linked.type !== 'file') throw refuse(entry, `hardlink to ${JSON.stringify(entry.linkname)}, which is not a file earlier in the layer`);
        linked.nlink++;
        node = linked;
      } else {
        node = {
          ino: ino++,
          path,
          type: entry.type,
          ...attrs,
          size: entry.type === 'file' ? entry.size : entry.type === 'symlink' ? Buffer.byteLength(entry.linkname ?? '') : 4096,
          nlink: entry.type === 'dir' ? 2 : 1,
          dataOffset: entry.dataOffset ?? 0,
          linkname: entry.type === 'symlink' ? entry.linkname! : '',
          children: entry.type === 'dir' ? [] : undefined,
        };
      }
      if (existing) {
        // Replaced: the old node keeps its inode for open handles, but the name points at the new one.
        if (existing.type === 'file' && existing.nlink > 1) existing.nlink--;
      } else {
        parent.children!.push(baseOf(path));
      }
      nodes.set(path, node);
    }
    for (const n of nodes.values()) {
      if (n.type !== 'dir') continue;
      n.children!.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      n.nlink = 2 + n.children!.filter((c) => nodes.get(n.path === '' ? c : `${n.path}/${c}`)?.type === 'dir').length;
    }
    return new LazyTree(root, nodes);
  }
}
