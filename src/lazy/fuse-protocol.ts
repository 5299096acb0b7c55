/**
 * The FUSE kernel protocol's messages that a read-only file system exchanges (Linux's
 * include/uapi/linux/fuse.h, protocol 7.x, little-endian): decoding requests read from
 * /dev/fuse and encoding replies. Pure functions over Buffers, so they are tested without a
 * mount; fuse-session.ts does the I/O.
 */

/** Opcodes this server answers or recognises. */
export const FuseOp = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  READLINK: 5,
  OPEN: 14,
  READ: 15,
  STATFS: 17,
  RELEASE: 18,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  INTERRUPT: 36,
  DESTROY: 38,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
} as const;

/** INIT flags (`flags`, and `flags2` shifted by 32 with FUSE_INIT_EXT). */
export const InitFlag = {
  ASYNC_READ: 1 << 0,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  INIT_EXT: 1 << 30,
} as const;

/** INIT's `flags2` (bit n is capability 1 << (32 + n)). */
export const InitFlag2 = {
  PASSTHROUGH: 1 << 5,
} as const;

/** Open reply flags. */
export const OpenFlag = {
  KEEP_CACHE: 1 << 1,
  CACHE_DIR: 1 << 3,
  PASSTHROUGH: 1 << 7,
} as const;

/** Size of `struct fuse_in_header`, before every request's own arguments. */
const IN_HEADER = 40;
/** Size of `struct fuse_out_header`, before every reply's own data. */
export const OUT_HEADER = 16;
/** Size of `struct fuse_attr`. */
const ATTR = 88;

/** The oldest minor version spoken here: 7.31 (Linux 5.4) has every field this module uses. */
const MIN_MINOR = 31;
/** The newest minor version this module knows the INIT reply of. */
const MAX_MINOR = 40;

export interface FuseRequest {
  opcode: number;
  unique: bigint;
  /** The inode the request is about (1: the root). */
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
  /** The opcode's arguments, after the header. */
  body: Buffer;
}

export function parseRequest(msg: Buffer): FuseRequest {
  if (msg.length < IN_HEADER) throw new Error(`FUSE request of ${msg.length} bytes is shorter than its header`);
  const len = msg.readUInt32LE(0);
  if (len !== msg.length) throw new Error(`FUSE request says ${len} bytes, ${msg.length} were read`);
  return {
    opcode: msg.readUInt32LE(4),
    unique: msg.readBigUInt64LE(8),
    nodeid: Number(msg.readBigUInt64LE(16)),
    uid: msg.readUInt32LE(24),
    gid: msg.readUInt32LE(28),
    pid: msg.readUInt32LE(32),
    body: msg.subarray(IN_HEADER),
  };
}

/** A name argument (LOOKUP): the bytes up to the terminating NUL. */
export function nameArg(body: Buffer): string {
  const end = body.indexOf(0);
  return body.toString('utf8', 0, end < 0 ? body.length : end);
}

/** `struct fuse_read_in` (READ, READDIR). */
export function readArgs(body: Buffer): { fh: number; offset: number; size: number } {
  return { fh: Number(body.readBigUInt64LE(0)), offset: Number(body.readBigUInt64LE(8)), size: body.readUInt32LE(16) };
}

/** `struct fuse_open_in` (OPEN, OPENDIR). */
export function openArgs(body: Buffer): { flags: number } {
  return { flags: body.readUInt32LE(0) };
}

/** `struct fuse_release_in` (RELEASE, RELEASEDIR). */
export function releaseArgs(body: Buffer): { fh: number } {
  return { fh: Number(body.readBigUInt64LE(0)) };
}

/** Writes the out header into the first OUT_HEADER bytes of `reply` (whose length is the reply's). */
function finishReply(reply: Buffer, unique: bigint, error = 0): Buffer {
  reply.writeUInt32LE(reply.length, 0);
  reply.writeInt32LE(error, 4);
  reply.writeBigUInt64LE(unique, 8);
  return reply;
}

/** A reply that carries only an error: `errno` negative (-ENOENT), as the kernel wants it. */
export function errorReply(unique: bigint, errno: number): Buffer {
  return finishReply(Buffer.alloc(OUT_HEADER), unique, errno);
}

/** A reply carrying `data` as it is (READLINK's target, READ's bytes). */
export function dataReply(unique: bigint, data: Buffer): Buffer {
  const reply = Buffer.allocUnsafe(OUT_HEADER + data.length);
  data.copy(reply, OUT_HEADER);
  return finishReply(reply, unique);
}

/** What a getattr answers (the subset of `struct stat` FUSE carries), times in seconds. */
export interface FuseAttr {
  ino: number;
  size: number;
  blocks: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  blksize: number;
  /** Seconds since the epoch (all three times). */
  mtime: number;
}

/** A u64 from a safe integer, without a BigInt: {@link namesTable} writes tens of thousands. */
function writeU64(b: Buffer, value: number, at: number): void {
  b.writeUInt32LE(value % 0x1_0000_0000, at);
  b.writeUInt32LE(Math.floor(value / 0x1_0000_0000), at + 4);
}

function writeAttr(b: Buffer, at: number, a: FuseAttr): void {
  writeU64(b, a.ino, at);
  writeU64(b, a.size, at + 8);
  writeU64(b, a.blocks, at + 16);
  const seconds = Math.max(0, Math.floor(a.mtime));
  writeU64(b, seconds, at + 24); // atime
  writeU64(b, seconds, at + 32); // mtime
  writeU64(b, seconds, at + 40); // ctime
  b.fill(0, at + 48, at + 60); // nanoseconds of the three
  b.writeUInt32LE(a.mode, at + 60);
  b.writeUInt32LE(a.nlink, at + 64);
  b.writeUInt32LE(a.uid, at + 68);
  b.writeUInt32LE(a.gid, at + 72);
  b.writeUInt32LE(0, at + 76); // rdev
  b.writeUInt32LE(a.blksize, at + 80);
  b.writeUInt32LE(0, at + 84); // flags
}

/**
 * LOOKUP's reply (`struct fuse_entry_out`). Without `attr` it is a negative entry (nodeid 0):
 * the kernel then remembers for `validSeconds` that the name does not exist.
 */
export function entryReply(unique: bigint, attr: FuseAttr | undefined, validSeconds: number): Buffer {
  const reply = Buffer.alloc(OUT_HEADER + 40 + ATTR);
  const at = OUT_HEADER;
  reply.writeBigUInt64LE(BigInt(attr?.ino ?? 0), at);
  reply.writeBigUInt64LE(0n, at + 8); // generation: inode numbers are never reused in a mount
  reply.writeBigUInt64LE(BigInt(validSeconds), at + 16);
  reply.writeBigUInt64LE(BigInt(validSeconds), at + 24);
  if (attr) writeAttr(reply, at + 40, attr);
  return finishReply(reply, unique);
}

/** GETATTR's reply (`struct fuse_attr_out`). */
export function attrReply(unique: bigint, attr: FuseAttr, validSeconds: number): Buffer {
  const reply = Buffer.alloc(OUT_HEADER + 16 + ATTR);
  reply.writeBigUInt64LE(BigInt(validSeconds), OUT_HEADER);
  writeAttr(reply, OUT_HEADER + 16, attr);
  return finishReply(reply, unique);
}

/**
 * One name of a mount for {@link namesTable}: the inode of its directory (0 for a record that is
 * only its inode's: the root, or a directory whose children follow), its name there, its
 * attributes, a symlink's target, whether the native thread answers a read-only OPEN of it (a
 * file never passed through to a local copy: fh 0, page cache kept), and, for a directory,
 * whether every name in it is in the table (a LOOKUP of any other is answered as missing).
 */
export interface MountName {
  parent: number;
  name: string;
  attr: FuseAttr;
  link?: string | undefined;
  openHere?: boolean;
  childrenKnown?: boolean;
}

/** Bytes of a names-table record before its name: parent inode, name and target lengths, flags, padding, `struct fuse_attr`. */
const NAME_RECORD = 24 + ATTR;
/** A names-table record's flags: {@link MountName.openHere}, {@link MountName.childrenKnown}. */
const NAME_OPEN_HERE = 1;
const NAME_CHILDREN_KNOWN = 2;

/**
 * A table of a mount's names that the channel's native thread answers LOOKUP, GETATTR and more from
 * (native/src/fuse_channel.c, fuseChannelNames): per name, its directory's inode (u64), the
 * name's length in bytes (u32), flags (u32), the symlink target's length in bytes (u32), 4 bytes
 * of padding, its `struct fuse_attr` as the replies here carry it, then the name and the target
 * in UTF-8 (READLINK's reply here), padded together to a multiple of 8 bytes.
 */
export function namesTable(names: readonly MountName[]): Buffer {
  // Each string's bytes are counted, then written in place: no Buffer per name.
  const lengths = new Uint32Array(names.length * 2);
  let size = 0;
  names.forEach((n, k) => {
    const name = (lengths[2 * k] = Buffer.byteLength(n.name, 'utf8'));
    const link = (lengths[2 * k + 1] = n.link ? Buffer.byteLength(n.link, 'utf8') : 0);
    size += NAME_RECORD + ((name + link + 7) & ~7);
  });
  const table = Buffer.alloc(size);
  let at = 0;
  names.forEach((n, k) => {
    const name = lengths[2 * k]!;
    const link = lengths[2 * k + 1]!;
    writeU64(table, n.parent, at);
    table.writeUInt32LE(name, at + 8);
    table.writeUInt32LE((n.openHere ? NAME_OPEN_HERE : 0) | (n.childrenKnown ? NAME_CHILDREN_KNOWN : 0), at + 12);
    table.writeUInt32LE(link, at + 16);
    writeAttr(table, at + 24, n.attr);
    table.write(n.name, at + NAME_RECORD, 'utf8');
    if (n.link) table.write(n.link, at + NAME_RECORD + name, 'utf8');
    at += NAME_RECORD + ((name + link + 7) & ~7);
  });
  return table;
}

/**
 * OPEN's and OPENDIR's reply (`struct fuse_open_out`); with `backingId` (from
 * FUSE_DEV_IOC_BACKING_OPEN) the kernel reads and maps that file itself (FOPEN_PASSTHROUGH).
 */
export function openReply(unique: bigint, fh: number, openFlags: number, backingId?: number): Buffer {
  const reply = Buffer.alloc(OUT_HEADER + 16);
  reply.writeBigUInt64LE(BigInt(fh), OUT_HEADER);
  reply.writeUInt32LE(backingId === undefined ? openFlags : openFlags | OpenFlag.PASSTHROUGH, OUT_HEADER + 8);
  reply.writeInt32LE(backingId ?? 0, OUT_HEADER + 12);
  return finishReply(reply, unique);
}

export interface StatfsFigures {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

/** A file system's figures as a `struct fuse_kstatfs` (STATFS's reply body; the native thread's answer, fuseChannelStatfs). */
export function statfsFigures(s: StatfsFigures): Buffer {
  const body = Buffer.alloc(80);
  writeU64(body, s.blocks, 0);
  writeU64(body, s.bfree, 8);
  writeU64(body, s.bavail, 16);
  writeU64(body, s.files, 24);
  writeU64(body, s.ffree, 32);
  body.writeUInt32LE(s.bsize, 40);
  body.writeUInt32LE(s.namelen, 44);
  body.writeUInt32LE(s.frsize, 48);
  return body;
}

/** STATFS's reply (`struct fuse_statfs_out`). */
export function statfsReply(unique: bigint, s: StatfsFigures): Buffer {
  return finishReply(Buffer.concat([Buffer.alloc(OUT_HEADER), statfsFigures(s)]), unique);
}

export interface DirEntry {
  name: string;
  ino: number;
  /** The file type bits of the mode (S_IFDIR…). */
  mode: number;
}

/**
 * READDIR's reply: the entries from index `offset` on (`struct fuse_dirent`, each padded to 8
 * bytes, its `off` the index of the next), as many as fit in `size` bytes.
 */
export function direntsReply(unique: bigint, entries: readonly DirEntry[], offset: number, size: number): Buffer {
  const parts: Buffer[] = [];
  let used = 0;
  for (let i = offset; i < entries.length; i++) {
    const e = entries[i]!;
    const name = Buffer.from(e.name, 'utf8');
    const length = (24 + name.length + 7) & ~7;
    if (used + length > size) break;
    const d = Buffer.alloc(length);
    d.writeBigUInt64LE(BigInt(e.ino), 0);
    d.writeBigUInt64LE(BigInt(i + 1), 8);
    d.writeUInt32LE(name.length, 16);
    d.writeUInt32LE((e.mode >>> 12) & 0o17, 20); // DT_* is the S_IFMT bits shifted down
    name.copy(d, 24);
    parts.push(d);
    used += length;
  }
  const reply = Buffer.allocUnsafe(OUT_HEADER + used);
  let at = OUT_HEADER;
  for (const p of parts) at += p.copy(reply, at);
  return finishReply(reply, unique);
}

export interface InitParameters {
  /** Largest read the kernel may ask for, in 4 KiB pages (FUSE_MAX_PAGES; 32 without it). */
  maxPages: number;
  /** Ask for passthrough to backing files (granted by Linux ≥ 6.9 to a server with CAP_SYS_ADMIN). */
  passthrough: boolean;
}

/**
 * The reply to the kernel's INIT: the protocol version both speak, and the capabilities this
 * server wants among those the kernel offers, and whether passthrough was agreed. Throws for a
 * kernel older than 7.31.
 */
export function initReply(unique: bigint, body: Buffer, p: InitParameters): { reply: Buffer; passthrough: boolean } {
  const major = body.readUInt32LE(0);
  const minor = body.readUInt32LE(4);
  if (major !== 7 || minor < MIN_MINOR) throw new Error(`the kernel speaks FUSE ${major}.${minor}; hostpull's FUSE server needs 7.${MIN_MINOR} or later (Linux 5.4)`);
  const maxReadahead = body.readUInt32LE(8);
  const offered = body.readUInt32LE(12);
  const wanted = InitFlag.ASYNC_READ | InitFlag.PARALLEL_DIROPS | InitFlag.MAX_PAGES | InitFlag.CACHE_SYMLINKS;
  // flags2 is there from 7.36 on, when the kernel sets INIT_EXT.
  const offered2 = minor >= 36 && (offered & InitFlag.INIT_EXT) !== 0 ? body.readUInt32LE(16) : 0;
  const passthrough = p.passthrough && (offered2 & InitFlag2.PASSTHROUGH) !== 0;
  const reply = Buffer.alloc(OUT_HEADER + 64);
  const at = OUT_HEADER;
  reply.writeUInt32LE(7, at);
  reply.writeUInt32LE(Math.min(minor, MAX_MINOR), at + 4);
  reply.writeUInt32LE(maxReadahead, at + 8);
  reply.writeUInt32LE((offered & (passthrough ? wanted | InitFlag.INIT_EXT : wanted)) >>> 0, at + 12);
  reply.writeUInt16LE(16, at + 16); // max_background: reads waiting for spans at once
  reply.writeUInt16LE(12, at + 18); // congestion_threshold
  reply.writeUInt32LE(4096, at + 20); // max_write: the mount is read-only
  reply.writeUInt32LE(1, at + 24); // time_gran: nanoseconds
  reply.writeUInt16LE(p.maxPages, at + 28);
  if (passthrough) {
    reply.writeUInt32LE(InitFlag2.PASSTHROUGH, at + 32);
    // Backing files sit on a plain file system (depth 0); an overlay over this mount is then at
    // depth 2, the kernel's limit.
    reply.writeUInt32LE(1, at + 36); // max_stack_depth
  }
  return { reply: finishReply(reply, unique), passthrough };
}
