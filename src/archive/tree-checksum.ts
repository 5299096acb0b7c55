import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, constants as fsc, type Stats } from 'node:fs';
import { contentCrc32 } from './content-crc.js';

/**
 * A checksum of an unpacked layer directory as it sits on disk, so `hostpull verify` can tell
 * a layer that bit rot or a stray write changed from one that is intact, without the layer blob
 * (which may be gone after unpack). Covers every path with its type, permission bits, size,
 * symlink target, device number and file content (CRC-32: this detects corruption, not
 * tampering — whoever can write the store can rewrite its database too). Owners and times are
 * left out: they differ between a root and a rootless unpack of the same layer, and nothing
 * corrupts them without also being able to change the record.
 *
 * One SHA-256 over the sorted records of every path, so the walk order (readdir's) does not
 * matter. `hostpull verify` walks the tree; the unpacker computes the same checksum from what it
 * wrote (unpack/layer-writer.ts), with the content CRCs it computed while writing (~105 ms of
 * CPU over the 444 MiB of the demo's Go layer), so a pull reads nothing back.
 */
const TREE_CHECKSUM_VERSION = 'tree1';

const READ_CHUNK = 1 << 20;

/** What the checksum covers of one path: `kind` is f, d, l, c, b, p or s (socket); `extra` as {@link treeChecksum} says. */
export interface TreeEntry {
  kind: string;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  /** Counted for regular files only. */
  size: number;
  /** Content CRC-32 in hex (file), link target (symlink), device number (char, block), else ''. */
  extra: string;
}

/** `tree1:<64 hex>` of the tree under `root`, read from the disk (every file's content included). */
export function treeChecksum(root: string): string {
  const entries = new Map<string, TreeEntry>();
  const buffer = Buffer.allocUnsafe(READ_CHUNK);
  entries.set('', treeEntryOf(lstatSync(root), ''));
  const stack = [''];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const absDir = dir === '' ? root : `${root}/${dir}`;
    for (const name of readdirSync(absDir)) {
      const rel = dir === '' ? name : `${dir}/${name}`;
      const abs = `${root}/${rel}`;
      const st = lstatSync(abs);
      let extra = '';
      if (st.isFile()) extra = fileCrc(abs, st, buffer).toString(16);
      else if (st.isSymbolicLink()) extra = readlinkSync(abs);
      else if (st.isDirectory()) stack.push(rel);
      entries.set(rel, treeEntryOf(st, extra));
    }
  }
  return checksumOfTree(entries);
}

/**
 * The checksum of a tree given as its entries (relative path → entry, '' the root): what
 * {@link treeChecksum} computes from a walk, and what the unpacker computes from what it wrote.
 */
export function checksumOfTree(entries: ReadonlyMap<string, TreeEntry>): string {
  // Records start with their path and paths are unique: a plain sort orders them completely.
  const records: string[] = [];
  for (const [rel, e] of entries) records.push(`${rel}\0${e.kind}\0${e.mode.toString(8)}\0${e.kind === 'f' ? e.size : 0}\0${e.extra}`);
  records.sort();
  const hash = createHash('sha256');
  for (const r of records) hash.update(`${r}\n`);
  return `${TREE_CHECKSUM_VERSION}:${hash.digest('hex')}`;
}

/** The entry of a path from its lstat; `extra` is the file's CRC in hex or the link's target (a device's number is taken from `st`). */
export function treeEntryOf(st: Stats, extra: string): TreeEntry {
  const kind = kindOf(st);
  return { kind, mode: st.mode & 0o7777, size: st.isFile() ? st.size : 0, extra: kind === 'c' || kind === 'b' ? String(st.rdev) : extra };
}

function kindOf(st: Stats): string {
  if (st.isFile()) return 'f';
  if (st.isDirectory()) return 'd';
  if (st.isSymbolicLink()) return 'l';
  if (st.isCharacterDevice()) return 'c';
  if (st.isBlockDevice()) return 'b';
  if (st.isFIFO()) return 'p';
  return 's';
}

/** CRC-32 of a file's content; an empty file is 0 without opening it (a rootless whiteout is mode 000). */
function fileCrc(abs: string, st: Stats, buffer: Buffer): number {
  if (st.size === 0) return 0;
  const fd = openSync(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    let crc = 0;
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) return crc;
      crc = contentCrc32(buffer.subarray(0, n), crc);
    }
  } finally {
    closeSync(fd);
  }
}
