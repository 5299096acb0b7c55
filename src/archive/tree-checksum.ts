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
 * matter. The unpacker passes the content CRCs it computed while writing, so a pull reads no file
 * back: it costs one lstat per entry (measured: 13,620 entries of the demo's Go layer in ~110 ms
 * of CPU, plus ~105 ms of CRC-32 over its 444 MiB while writing).
 */
const TREE_CHECKSUM_VERSION = 'tree1';

const READ_CHUNK = 1 << 20;

/** `tree1:<64 hex>`; `contentCrcs` maps relative paths of regular files to their CRC-32 (read from disk when missing). */
export function treeChecksum(root: string, contentCrcs?: ReadonlyMap<string, number>): string {
  const records: string[] = [];
  const add = (record: string) => records.push(record);
  const buffer = Buffer.allocUnsafe(READ_CHUNK);
  add(entryRecord('', lstatSync(root), '', ''));
  const stack = [''];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const absDir = dir === '' ? root : `${root}/${dir}`;
    for (const name of readdirSync(absDir)) {
      const rel = dir === '' ? name : `${dir}/${name}`;
      const abs = `${root}/${rel}`;
      const st = lstatSync(abs);
      let extra = '';
      if (st.isFile()) extra = (contentCrcs?.get(rel) ?? fileCrc(abs, st, buffer)).toString(16);
      else if (st.isSymbolicLink()) extra = readlinkSync(abs);
      else if (st.isCharacterDevice() || st.isBlockDevice()) extra = String(st.rdev);
      else if (st.isDirectory()) stack.push(rel);
      add(entryRecord(rel, st, kindOf(st), extra));
    }
  }
  // Records start with their path and paths are unique: a plain sort orders them completely.
  records.sort();
  const hash = createHash('sha256');
  for (const r of records) hash.update(`${r}\n`);
  return `${TREE_CHECKSUM_VERSION}:${hash.digest('hex')}`;
}

function entryRecord(rel: string, st: Stats, kind: string, extra: string): string {
  return `${rel}\0${kind || 'd'}\0${(st.mode & 0o7777).toString(8)}\0${st.isFile() ? st.size : 0}\0${extra}`;
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
