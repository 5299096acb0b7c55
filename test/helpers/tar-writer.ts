/**
 * A tiny tar writer with exact control over every header field, for building deterministic
 * layers and for crafting malicious archives in tests (`..` names, absolute names, links out of
 * the root, device nodes, whiteouts, PAX records, lying sizes). node-tar's Pack reads from the
 * filesystem and normalises names, which is exactly what a hostile-archive test must avoid.
 *
 * Format: POSIX ustar headers (POSIX.1-2001 pax "ustar Interchange Format"), with a pax extended
 * header (typeflag 'x') in front of an entry when it carries pax records or a field does not fit.
 */

export type RawEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface RawEntryHeader {
  /** Written verbatim (no normalisation): `../x`, `/etc/passwd` and `a/./b` stay as given. */
  name: string;
  type: RawEntryType;
  /** Permission bits incl. setuid/setgid/sticky. Default: 0o755 for dirs, 0o777 symlinks, 0o644 else. */
  mode?: number;
  /** Default 0. */
  uid?: number;
  /** Default 0. */
  gid?: number;
  /** Seconds since the epoch. Default 1577836800 (2020-01-01T00:00:00Z). */
  mtime?: number;
  /** Target of a symlink or hardlink, verbatim. */
  linkname?: string;
  /** Default ''. */
  uname?: string;
  /** Default ''. */
  gname?: string;
  /** For char/block devices. Default 0. */
  devmajor?: number;
  devminor?: number;
  /** Extra pax records (`SCHILY.xattr.security.capability`, `path`, `linkpath`, …). Values as given. */
  pax?: Record<string, string | Buffer>;
  /** Overrides the header's size field (the body is written as given anyway): for lying headers. */
  size?: number;
  /** Overrides the typeflag character (e.g. 'L', 'g', 'V'): for entries the type union cannot say. */
  typeflag?: string;
  /** Overrides the 6-byte magic at 257 (default `ustar\0`; GNU is `ustar `, v7 all NULs). */
  magic?: string;
  /** Overrides the 2-byte version at 263 (default `00`; GNU is ` \0`). */
  version?: string;
  /** Raw bytes for the ustar prefix field at 345 (155 bytes): for prefix/magic differentials. */
  prefixField?: string;
}

export interface RawEntry extends RawEntryHeader {
  /** Body, written after the header and padded, whatever the type (so links with data can be made). */
  content?: string | Buffer;
}

export const DEFAULT_MTIME = Date.UTC(2020, 0, 1) / 1000;

const BLOCK = 512;

const TYPEFLAG: Record<RawEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

function defaultMode(type: RawEntryType): number {
  if (type === 'dir') return 0o755;
  if (type === 'symlink') return 0o777;
  return 0o644;
}

/** Octal field of `width` bytes: width-1 digits then NUL; undefined when it does not fit. */
function octal(value: number, width: number): Buffer | undefined {
  if (!Number.isInteger(value) || value < 0) return undefined;
  const digits = value.toString(8);
  if (digits.length > width - 1) return undefined;
  return Buffer.from(`${digits.padStart(width - 1, '0')}\0`, 'ascii');
}

function padBlock(len: number): number {
  return (BLOCK - (len % BLOCK)) % BLOCK;
}

/** One pax record: "<len> <key>=<value>\n" where <len> counts the whole record, itself included. */
export function paxRecord(key: string, value: string | Buffer): Buffer {
  const val = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const rest = Buffer.byteLength(key, 'utf8') + val.length + 3; // ' ', '=', '\n'
  let len = rest + 1;
  while (String(len).length + rest !== len) len = String(len).length + rest;
  return Buffer.concat([Buffer.from(`${len} ${key}=`, 'utf8'), val, Buffer.from('\n')]);
}

interface HeaderFields {
  magic?: string | undefined;
  version?: string | undefined;
  prefixField?: string | undefined;
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: Buffer;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

/** A 512-byte ustar header. Fields that do not fit must have been moved to pax records already. */
function headerBlock(f: HeaderFields): Buffer {
  const h = Buffer.alloc(BLOCK);
  f.name.copy(h, 0, 0, Math.min(f.name.length, 100));
  const num = (v: number, off: number, width: number) => (octal(v, width) ?? octal(0, width)!).copy(h, off);
  num(f.mode, 100, 8);
  num(f.uid, 108, 8);
  num(f.gid, 116, 8);
  num(f.size, 124, 12);
  num(f.mtime, 136, 12);
  h.write(f.typeflag.slice(0, 1), 156, 'latin1');
  f.linkname.copy(h, 157, 0, Math.min(f.linkname.length, 100));
  h.write((f.magic ?? 'ustar\0').slice(0, 6), 257, 'latin1');
  h.write((f.version ?? '00').slice(0, 2), 263, 'latin1');
  h.write(f.uname.slice(0, 31), 265, 'utf8');
  h.write(f.gname.slice(0, 31), 297, 'utf8');
  num(f.devmajor, 329, 8);
  num(f.devminor, 337, 8);
  if (f.prefixField !== undefined) h.write(f.prefixField.slice(0, 155), 345, 'latin1');
  // Checksum: sum of all header bytes with the checksum field read as eight spaces.
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  Buffer.from(`${sum.toString(8).padStart(6, '0')}\0 `, 'ascii').copy(h, 148);
  return h;
}

/**
 * Header block(s) and padded body of one entry. A pax extended header is emitted first when the
 * entry has `pax` records, or when the name/linkname exceed 100 bytes, or a number does not fit
 * its octal field (then the ustar field holds a truncated name or 0 and the pax record the truth).
 */
export function tarEntry(header: RawEntryHeader, body?: string | Buffer): Buffer {
  const content = body === undefined ? Buffer.alloc(0) : typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const name = Buffer.from(header.name, 'utf8');
  const linkname = Buffer.from(header.linkname ?? '', 'utf8');
  const uid = header.uid ?? 0;
  const gid = header.gid ?? 0;
  const mtime = header.mtime ?? DEFAULT_MTIME;
  const size = header.size ?? content.length;

  const pax: Record<string, string | Buffer> = {};
  if (name.length > 100) pax['path'] = header.name;
  if (linkname.length > 100) pax['linkpath'] = header.linkname ?? '';
  if (!octal(uid, 8)) pax['uid'] = String(uid);
  if (!octal(gid, 8)) pax['gid'] = String(gid);
  if (!octal(size, 12)) pax['size'] = String(size);
  if (!octal(mtime, 12)) pax['mtime'] = String(mtime);
  // Caller's records win over the automatic ones: a test may want a pax path that differs.
  Object.assign(pax, header.pax ?? {});

  const parts: Buffer[] = [];
  const keys = Object.keys(pax);
  if (keys.length > 0) {
    const paxBody = Buffer.concat(keys.map((k) => paxRecord(k, pax[k]!)));
    const base = header.name.replace(/\/+$/, '').split('/').pop() ?? '';
    parts.push(
      headerBlock({
        name: Buffer.from(`PaxHeaders.0/${base}`.slice(0, 100), 'utf8'),
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: paxBody.length,
        mtime: octal(mtime, 12) ? mtime : 0,
        typeflag: 'x',
        linkname: Buffer.alloc(0),
        uname: '',
        gname: '',
        devmajor: 0,
        devminor: 0,
      }),
      paxBody,
      Buffer.alloc(padBlock(paxBody.length)),
    );
  }

  parts.push(
    headerBlock({
      name,
      mode: header.mode ?? defaultMode(header.type),
      uid,
      gid,
      size,
      mtime,
      typeflag: header.typeflag ?? TYPEFLAG[header.type],
      linkname,
      uname: header.uname ?? '',
      gname: header.gname ?? '',
      devmajor: header.devmajor ?? 0,
      devminor: header.devminor ?? 0,
      magic: header.magic,
      version: header.version,
      prefixField: header.prefixField,
    }),
    content,
    Buffer.alloc(padBlock(content.length)),
  );
  return Buffer.concat(parts);
}

/** End-of-archive marker: two zero blocks. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}

/** A whole archive, entries in the given order (no sorting, no implied directories). */
export function writeTar(entries: RawEntry[]): Buffer {
  return Buffer.concat([...entries.map((e) => tarEntry(e, e.content)), tarEnd()]);
}

/**
 * A raw meta entry (`x` or `g` PAX header, `L`/`K` GNU long name) with exactly the body given:
 * for records a Record cannot hold (the same keyword twice) and for headers in odd orders.
 */
export function metaEntry(typeflag: 'x' | 'g' | 'L' | 'K', body: Buffer | string): Buffer {
  const name = typeflag === 'L' || typeflag === 'K' ? '././@LongLink' : 'PaxHeaders.0/meta';
  return tarEntry({ name, type: 'file', typeflag, mode: 0o644 }, body);
}

/** A PAX body from records in order, duplicates allowed. */
export function paxBody(records: Array<[string, string | Buffer]>): Buffer {
  return Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
}
