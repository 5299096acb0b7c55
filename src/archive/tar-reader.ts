import { archiveError, type ArchiveErrorCode } from './archive-error.js';
import { PATH_MAX } from './entry-path.js';
import { mergePaxRecords, PaxRecordError, parsePaxRecords, paxRecordsSize, type PaxRecords } from './pax.js';

/**
 * A synchronous, push-based tar reader (ustar, GNU long names, PAX `x`/`g` headers). It exists
 * because node-tar's Parser decodes PAX values as strings and keeps only the keywords it knows
 * (no `SCHILY.xattr.*`, so `security.capability` would be lost), and because a push parser that
 * calls the applier synchronously keeps one ordered pipeline with no per-entry promises.
 *
 * Strict by design: a bad checksum, a malformed number or PAX record, an unknown entry type, a
 * sparse file, or a stream that ends inside an entry is an error, never a skipped entry (node-tar's
 * lenient default skips bad entries with a warning).
 *
 * One reader, one verdict: the server's registration check and the node's unpack both read layers
 * with this class, and whatever tar readers disagree about is refused as LAYER_AMBIGUOUS rather
 * than interpreted — a keyword twice in one PAX header, a PAX path and a GNU long name for one
 * entry, two extended headers of one kind in a row, a global header that sets a path or size,
 * a newline in a name or a text PAX value, a ustar prefix field without the "00" version, data on
 * a header-only entry, a trailing slash on a non-directory. PAX and GNU headers are bounded in
 * size and count, so a small archive cannot make the reader hold much memory.
 */
export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarEntryHeader {
  /** Name as stored (PAX `path` > GNU `L` > ustar prefix/name); not yet normalised. */
  name: string;
  type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky (`& 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** Data bytes that follow (0 for every type but `file`). */
  size: number;
  /** Seconds since the epoch, fractional when PAX gives sub-second precision. */
  mtime: number;
  atime: number | undefined;
  /** Link target as stored (PAX `linkpath` > GNU `K` > ustar linkname). */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** `SCHILY.xattr.<name>` records, values byte-exact. */
  xattrs: Map<string, Buffer>;
  /** Byte offset of the entry's header in the uncompressed stream, for messages. */
  offset: number;
}

/** What the reader drives; every call is synchronous and may throw to stop the stream. */
export interface TarEntrySink {
  entry(header: TarEntryHeader): void;
  /** A slice of the caller's chunk: consume it before returning, do not keep it. */
  data(chunk: Buffer): void;
  entryEnd(): void;
}

export interface TarReaderOptions {
  /** Names the layer in error messages (its target directory on a node, its digest on the server). */
  where: string;
  /** Largest PAX extended header (`x`) body. Default 1 MiB (a file's xattrs and ACLs stay far below). */
  maxPaxHeaderSize?: number;
  /** Global PAX headers (`g`) in one archive. Default 16. */
  maxGlobalHeaders?: number;
  /** Bytes of keys and values that global headers may accumulate. Default 64 KiB. */
  maxGlobalBytes?: number;
}

const BLOCK = 512;

/** The PAX keywords that carry numbers, and how each is read (an integer, or seconds with a fraction). */
type PaxNumberKey = 'size' | 'uid' | 'gid' | 'mtime' | 'atime';
const PAX_NUMBERS: ReadonlyMap<string, 'integer' | 'time'> = new Map<PaxNumberKey, 'integer' | 'time'>([
  ['size', 'integer'],
  ['uid', 'integer'],
  ['gid', 'integer'],
  ['mtime', 'time'],
  ['atime', 'time'],
]);

const enum State {
  Header,
  Data,
  Meta,
  Padding,
  /** One zero block seen: the next must be zero too. */
  EndFirst,
  /** End-of-archive marker seen: the rest is padding to the record size, hashed but ignored. */
  Done,
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export class TarReader {
  readonly #sink: TarEntrySink;
  readonly #where: string;
  readonly #maxPaxHeaderSize: number;
  readonly #maxGlobalHeaders: number;
  readonly #maxGlobalBytes: number;
  #globalHeaders = 0;
  #state = State.Header;
  readonly #header = Buffer.alloc(BLOCK);
  #headerFill = 0;
  #remain = 0;
  #padding = 0;
  #offset = 0;
  #entryOffset = 0;
  #meta: Buffer | undefined;
  #metaFill = 0;
  #metaType = 0;
  #globalPax: PaxRecords = new Map();
  #pax: PaxRecords | undefined;
  #longName: string | undefined;
  #longLink: string | undefined;

  constructor(sink: TarEntrySink, options: TarReaderOptions) {
    this.#sink = sink;
    this.#where = options.where;
    this.#maxPaxHeaderSize = options.maxPaxHeaderSize ?? 1024 * 1024;
    this.#maxGlobalHeaders = options.maxGlobalHeaders ?? 16;
    this.#maxGlobalBytes = options.maxGlobalBytes ?? 64 * 1024;
  }

  /** True once the end-of-archive marker was read. */
  get ended(): boolean {
    return this.#state === State.Done || this.#state === State.EndFirst;
  }

  write(chunk: Buffer): void {
    const base = this.#offset;
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      switch (this.#state) {
        case State.Header: {
          if (this.#headerFill === 0 && len - pos >= BLOCK) {
            // Fast path: parse straight from the chunk, no copy.
            const block = chunk.subarray(pos, pos + BLOCK);
            pos += BLOCK;
            this.#onHeader(block, base + pos - BLOCK);
          } else {
            const n = Math.min(BLOCK - this.#headerFill, len - pos);
            chunk.copy(this.#header, this.#headerFill, pos, pos + n);
            this.#headerFill += n;
            pos += n;
            if (this.#headerFill === BLOCK) {
              this.#headerFill = 0;
              this.#onHeader(this.#header, base + pos - BLOCK);
            }
          }
          break;
        }
        case State.Data: {
          const n = Math.min(this.#remain, len - pos);
          this.#sink.data(chunk.subarray(pos, pos + n));
          this.#remain -= n;
          pos += n;
          if (this.#remain === 0) {
            this.#sink.entryEnd();
            this.#state = this.#padding > 0 ? State.Padding : State.Header;
          }
          break;
        }
        case State.Meta: {
          const meta = this.#meta!;
          const n = Math.min(meta.length - this.#metaFill, len - pos);
          chunk.copy(meta, this.#metaFill, pos, pos + n);
          this.#metaFill += n;
          pos += n;
          if (this.#metaFill === meta.length) {
            this.#onMeta(meta);
            this.#state = this.#padding > 0 ? State.Padding : State.Header;
          }
          break;
        }
        case State.Padding: {
          const n = Math.min(this.#padding, len - pos);
          this.#padding -= n;
          pos += n;
          if (this.#padding === 0) this.#state = State.Header;
          break;
        }
        case State.EndFirst: {
          const n = Math.min(BLOCK - this.#headerFill, len - pos);
          for (let i = pos; i < pos + n; i++) {
            if (chunk[i] !== 0) this.#fail('a lone zero block is followed by data (corrupt archive)', base + i);
          }
          this.#headerFill += n;
          pos += n;
          if (this.#headerFill === BLOCK) {
            this.#headerFill = 0;
            this.#state = State.Done;
          }
          break;
        }
        case State.Done:
          pos = len;
          break;
      }
    }
    this.#offset += len;
  }

  /** Call at end of stream: throws if it ended inside an entry or a header. */
  end(): void {
    if (this.#state === State.Done || this.#state === State.EndFirst) return;
    // A stream cut cleanly at a header boundary with no end marker is accepted (Go's archive/tar,
    // which produced most layers, accepts it too); one cut inside an entry is truncated.
    if (this.#state === State.Header && this.#headerFill === 0 && !this.#pax && this.#longName === undefined && this.#longLink === undefined) {
      return;
    }
    this.#fail('archive is truncated (stream ended inside an entry)', this.#entryOffset);
  }

  #fail(message: string, offset: number, name?: string, rule = 'malformed', code: ArchiveErrorCode = 'LAYER_INVALID'): never {
    throw archiveError(code, this.#where, rule, message, { offset, ...(name === undefined ? {} : { entry: name }) });
  }

  #ambiguous(rule: string, message: string, offset: number, name?: string): never {
    this.#fail(message, offset, name, rule, 'LAYER_AMBIGUOUS');
  }

  #tooLarge(rule: string, message: string, offset: number): never {
    this.#fail(message, offset, undefined, rule, 'LAYER_QUOTA_EXCEEDED');
  }

  /** A meta header of a kind already pending, or a global header between an extended header and its entry. */
  #checkMetaOrder(typeflag: number, offset: number): void {
    const pending = this.#pax !== undefined || this.#longName !== undefined || this.#longLink !== undefined;
    if (typeflag === 0x67 /* g */) {
      if (pending) this.#ambiguous('global-header-between', 'a global PAX header sits between an extended header and its entry', offset);
      if (++this.#globalHeaders > this.#maxGlobalHeaders) this.#tooLarge('too-many-global-headers', `more than ${this.#maxGlobalHeaders} global PAX headers`, offset);
      return;
    }
    const repeated = (typeflag === 0x78 && this.#pax !== undefined) || (typeflag === 0x4c && this.#longName !== undefined) || (typeflag === 0x4b && this.#longLink !== undefined);
    if (repeated) {
      this.#ambiguous('repeated-extended-header', `two ${String.fromCharCode(typeflag)} headers for one entry (readers keep either the first or the last)`, offset);
    }
  }

  /** The largest body a meta header of this type may have. */
  #metaLimit(typeflag: number): number {
    if (typeflag === 0x78) return this.#maxPaxHeaderSize;
    if (typeflag === 0x67) return this.#maxGlobalBytes;
    return PATH_MAX; // L/K: a name longer than PATH_MAX is refused anyway
  }

  /**
   * The ustar prefix field (bytes 345..500) is a name part only under magic "ustar\0" with version
   * "00"; GNU headers keep atime/ctime there and v7 headers nothing. A reader that applies the
   * prefix without checking the version sees another name than one that does not, so anything in
   * that area that is not what the header's format says is refused.
   */
  #checkFormat(block: Buffer, offset: number): 'ustar' | 'gnu' | 'v7' {
    const magic = block.toString('latin1', 257, 263);
    const version = block.toString('latin1', 263, 265);
    if (magic === 'ustar\0') {
      if (version !== '00') this.#ambiguous('prefix-without-ustar00', `ustar magic with version ${JSON.stringify(version)} instead of "00"`, offset);
      return 'ustar';
    }
    const gnu = magic === 'ustar ' && version === ' \0';
    // GNU: atime and ctime (12 bytes each) may be set; the rest (sparse maps) must be empty.
    const from = gnu ? 369 : 345;
    if (gnu && (parseNumeric(block, 345, 12) === undefined || parseNumeric(block, 357, 12) === undefined)) {
      this.#ambiguous('prefix-without-ustar00', 'GNU header with garbage in its atime/ctime fields (the ustar prefix position)', offset);
    }
    for (let i = from; i < 500; i++) {
      if (block[i] !== 0) this.#ambiguous('prefix-without-ustar00', 'header has bytes in the ustar prefix field without the ustar "00" magic', offset);
    }
    return gnu ? 'gnu' : 'v7';
  }

  #onHeader(block: Buffer, offset: number): void {
    this.#entryOffset = offset;
    if (isZeroBlock(block)) {
      if (this.#pax || this.#longName !== undefined || this.#longLink !== undefined) {
        this.#fail('extended header is not followed by an entry', offset);
      }
      this.#state = State.EndFirst;
      return;
    }
    verifyChecksum(block, (m) => this.#fail(m, offset));
    const num = (off: number, size: number, field: string): number => {
      const v = parseNumeric(block, off, size);
      if (v === undefined) this.#fail(`malformed ${field} field`, offset);
      return v;
    };
    const typeflag = block[156]!;
    const size = num(124, 12, 'size');

    // Meta entries: their body describes the next entry.
    if (typeflag === 0x78 /* x */ || typeflag === 0x67 /* g */ || typeflag === 0x4c /* L */ || typeflag === 0x4b /* K */) {
      this.#checkMetaOrder(typeflag, offset);
      const limit = this.#metaLimit(typeflag);
      if (size > limit) this.#tooLarge('extended-header-too-large', `${String.fromCharCode(typeflag)} header of ${size} bytes exceeds ${limit}`, offset);
      this.#metaType = typeflag;
      this.#meta = Buffer.alloc(size);
      this.#metaFill = 0;
      this.#padding = pad(size);
      if (size === 0) {
        this.#onMeta(this.#meta);
        this.#state = this.#padding > 0 ? State.Padding : State.Header;
      } else {
        this.#state = State.Meta;
      }
      return;
    }

    const format = this.#checkFormat(block, offset);
    let name = this.#cstring(block, 0, 100, offset);
    if (format === 'ustar') {
      const prefix = this.#cstring(block, 345, 155, offset);
      if (prefix !== '') name = `${prefix}/${name}`;
    }
    if (this.#longName !== undefined) name = this.#longName;
    let linkname = this.#cstring(block, 157, 100, offset);
    if (this.#longLink !== undefined) linkname = this.#longLink;

    const local = this.#pax;
    if (local) {
      if ((local.has('path') && this.#longName !== undefined) || (local.has('linkpath') && this.#longLink !== undefined)) {
        this.#ambiguous('pax-and-gnu-name', 'both a PAX path and a GNU long name name this entry (readers pick different ones)', offset, name);
      }
      for (const key of ['path', 'linkpath', 'size']) {
        // An empty value means "use the header field" to POSIX and "empty" to Go's archive/tar.
        if (local.get(key)?.length === 0) this.#ambiguous('empty-pax-value', `PAX ${key} record with an empty value`, offset, name);
      }
    }
    const pax = local ? mergePaxRecords(this.#globalPax, local) : this.#globalPax;
    this.#pax = undefined;
    this.#longName = undefined;
    this.#longLink = undefined;

    // The header's own fields are read (and checked) whether or not a PAX record overrides them.
    const headerUid = num(108, 8, 'uid');
    const headerGid = num(116, 8, 'gid');
    const headerMtime = num(136, 12, 'mtime');
    // Numbers PAX records override, read in record order (so the first bad record is the one reported).
    const numbers = new Map<PaxNumberKey, number>();
    const xattrs = new Map<string, Buffer>();
    for (const [key, value] of pax) {
      const kind = PAX_NUMBERS.get(key);
      if (key === 'path') {
        name = this.#utf8(value, offset, 'PAX path');
      } else if (key === 'linkpath') {
        linkname = this.#utf8(value, offset, 'PAX linkpath');
      } else if (kind !== undefined) {
        numbers.set(key as PaxNumberKey, kind === 'time' ? this.#paxTime(value, offset, name, key) : this.#paxInteger(value, offset, name, key));
      } else if (key.startsWith('SCHILY.xattr.')) {
        xattrs.set(key.slice('SCHILY.xattr.'.length), value);
      } else if (key.startsWith('GNU.sparse.')) {
        // Sparse files store a map before the data; extracting them as plain files would
        // silently produce wrong content.
        this.#fail('GNU sparse files are not supported', offset, name);
      }
      // Other keywords (uname, gname, ctime, charset, comment, LIBARCHIVE.*…) do not affect
      // what we write.
    }
    const dataSize = numbers.get('size') ?? size;
    const uid = numbers.get('uid') ?? headerUid;
    const gid = numbers.get('gid') ?? headerGid;
    const mtime = numbers.get('mtime') ?? headerMtime;
    const atime = numbers.get('atime');

    let type: TarEntryType;
    switch (typeflag) {
      case 0x30: // '0'
      case 0x37: // '7' contiguous file: a regular file everywhere but on a few old systems
        type = 'file';
        break;
      case 0x00: // '\0' old regular file: a trailing slash means a directory (pre-POSIX tar)
        type = name.endsWith('/') ? 'dir' : 'file';
        break;
      case 0x31:
        type = 'hardlink';
        break;
      case 0x32:
        type = 'symlink';
        break;
      case 0x33:
        type = 'char';
        break;
      case 0x34:
        type = 'block';
        break;
      case 0x35:
        type = 'dir';
        break;
      case 0x36:
        type = 'fifo';
        break;
      default:
        this.#fail(`unsupported entry type ${JSON.stringify(String.fromCharCode(typeflag))}`, offset, name);
    }
    if (type !== 'file' && dataSize !== 0) {
      // Readers disagree on whether such data is skipped (Go ignores the size, GNU tar honours
      // it): a parser differential an attacker could use to hide entries, so refuse it.
      this.#ambiguous('data-on-header-only-entry', `${type} entry carries ${dataSize} data bytes`, offset, name);
    }
    if (type !== 'dir' && name.endsWith('/')) {
      // GNU tar makes a directory of it, others a file: either way not what the type says.
      this.#ambiguous('slash-on-non-directory', `${type} entry whose name ends with "/"`, offset, name);
    }
    if (name.includes('\n') || linkname.includes('\n')) {
      // Line-oriented tools and records (the store keeps owned paths one per line) would read
      // such a name as two.
      this.#ambiguous('newline-in-name', 'name or link target contains a newline', offset, name);
    }

    const header: TarEntryHeader = {
      name,
      type,
      mode: num(100, 8, 'mode') & 0o7777,
      uid,
      gid,
      size: dataSize,
      mtime,
      atime,
      linkname,
      devmajor: format !== 'v7' ? num(329, 8, 'devmajor') : 0,
      devminor: format !== 'v7' ? num(337, 8, 'devminor') : 0,
      xattrs,
      offset,
    };
    this.#sink.entry(header);
    if (dataSize === 0) {
      this.#sink.entryEnd();
      this.#state = State.Header;
    } else {
      this.#remain = dataSize;
      this.#padding = pad(dataSize);
      this.#state = State.Data;
    }
  }

  #onMeta(body: Buffer): void {
    const offset = this.#entryOffset;
    this.#meta = undefined;
    switch (this.#metaType) {
      case 0x78:
      case 0x67: {
        let records: PaxRecords;
        try {
          records = parsePaxRecords(body);
        } catch (err) {
          if (!(err instanceof PaxRecordError)) throw err;
          if (err.ambiguous) this.#ambiguous(err.rule, err.message, offset);
          this.#fail(err.message, offset, undefined, err.rule, err.rule === 'pax-too-many-records' ? 'LAYER_QUOTA_EXCEEDED' : 'LAYER_INVALID');
        }
        if (this.#metaType === 0x67) {
          for (const key of ['path', 'linkpath', 'size']) {
            if (records.has(key)) this.#ambiguous('global-path', `a global PAX header sets ${key} for every following entry`, offset);
          }
          this.#globalPax = mergePaxRecords(this.#globalPax, records);
          if (paxRecordsSize(this.#globalPax) > this.#maxGlobalBytes) {
            this.#tooLarge('global-headers-too-large', `global PAX records exceed ${this.#maxGlobalBytes} bytes`, offset);
          }
        } else {
          this.#pax = records;
        }
        break;
      }
      case 0x4c:
        this.#longName = this.#cstring(body, 0, body.length, offset);
        break;
      case 0x4b:
        this.#longLink = this.#cstring(body, 0, body.length, offset);
        break;
    }
  }

  #cstring(buf: Buffer, off: number, size: number, offset: number): string {
    let end = buf.indexOf(0, off);
    if (end < 0 || end > off + size) end = off + size;
    return this.#utf8(buf.subarray(off, end), offset, 'name');
  }

  #utf8(bytes: Uint8Array, offset: number, what: string): string {
    try {
      return utf8.decode(bytes);
    } catch {
      // Decoding with replacement characters would write a different name than the archive's.
      this.#fail(`${what} is not valid UTF-8`, offset);
    }
  }

  #paxInteger(value: Buffer, offset: number, name: string, key: string): number {
    const text = value.toString('latin1');
    if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
      this.#fail(`malformed PAX ${key} ${JSON.stringify(text)}`, offset, name);
    }
    return Number(text);
  }

  #paxTime(value: Buffer, offset: number, name: string, key: string): number {
    const text = value.toString('latin1');
    if (!/^-?[0-9]{1,19}(\.[0-9]{1,19})?$/.test(text)) this.#fail(`malformed PAX ${key} ${JSON.stringify(text)}`, offset, name);
    return Number(text);
  }
}

function pad(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i += 8) {
    if (block.readBigUInt64LE(i) !== 0n) return false;
  }
  return true;
}

/** The checksum counts the checksum field as spaces; historic writers summed signed bytes. */
function verifyChecksum(block: Buffer, fail: (message: string) => never): void {
  const stored = parseNumeric(block, 148, 8);
  if (stored === undefined) fail('malformed header checksum field');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  if (stored !== unsigned && stored !== signed) fail(`header checksum mismatch (stored ${stored}, computed ${unsigned})`);
}

/**
 * An octal field (NUL/space terminated, leading spaces allowed) or GNU base-256 (high bit set).
 * Returns undefined when malformed or negative.
 */
export function parseNumeric(buf: Buffer, off: number, size: number): number | undefined {
  const first = buf[off]!;
  if (first & 0x80) {
    if (first === 0xff) return undefined; // negative base-256
    let v = first & 0x7f;
    for (let i = 1; i < size; i++) {
      v = v * 256 + buf[off + i]!;
      if (v > Number.MAX_SAFE_INTEGER) return undefined;
    }
    return v;
  }
  let i = off;
  const end = off + size;
  while (i < end && buf[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) return undefined;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  // After the terminator only NULs or spaces may follow.
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c !== 0 && c !== 0x20) return undefined;
  }
  return digits === 0 ? 0 : v;
}
