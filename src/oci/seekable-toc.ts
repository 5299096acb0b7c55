import { promisify } from 'node:util';
import { constants as zc, gunzipSync, inflateRaw } from 'node:zlib';
import { HostpullError } from '../errors.js';
import { digestHex, digestOf, type Digest } from './digest.js';
import { array, checked, digest, field, natural, object, ShapeError } from './json-shape.js';

/**
 * The table of contents of a seekable package layer (DESIGN §7): where each tar entry is, and how
 * the gzip blob splits into spans that inflate on their own. `hostpull publish` writes it; the
 * server names it in the composite manifest; a node builds a lazy (FUSE) view of the layer from it.
 */

/** artifactType of the referrer manifest that attaches a TOC to a package image. */
export const TOC_ARTIFACT_TYPE = 'application/vnd.hostpull.toc.v1+json';
/** Media type of the TOC blob: gzip-compressed JSON (Go 1.19's 13.6k entries and 112 spans: 0.24 MB gzipped). */
export const TOC_MEDIA_TYPE = 'application/vnd.hostpull.toc.v1+gzip';
/** Layer descriptor annotation (composite and referrer manifests): the digest of the layer's TOC blob. */
export const TOC_ANNOTATION = 'dev.hostpull.toc';
/** Referrer manifest annotation: the layer blob the TOC describes. */
export const TOC_LAYER_ANNOTATION = 'dev.hostpull.toc.layer';

/** A TOC blob is metadata: bounded so a hostile server cannot make a node inflate gigabytes. */
export const MAX_TOC_BLOB_BYTES = 64 * 1024 * 1024;
export const MAX_TOC_JSON_BYTES = 512 * 1024 * 1024;

/** One span: bytes [c, c+cs) of the blob inflate (raw, no dictionary) to bytes [u, u+us) of the tar. */
export interface TocSpan {
  /** Offset of the span in the compressed blob. Spans partition the blob, header and trailer included. */
  c: number;
  /** Compressed size. */
  cs: number;
  /** Offset of what it inflates to in the tar. */
  u: number;
  /** Uncompressed size. */
  us: number;
  /** sha256 (hex) of the span's compressed bytes [c, c+cs). */
  sha256: string;
}

/** A span's {@link TocSpan.sha256}: the hex sha256 of its compressed bytes, as publish wrote it and every reader checks it. */
export function spanSha256(compressed: Uint8Array): string {
  return digestHex(digestOf(compressed));
}

const inflateRawAsync = promisify(inflateRaw);

/**
 * Inflates raw deflate data expected to come to `length` bytes: what it returns may be shorter or
 * longer (up to a few bytes more), and the caller judges that.
 */
export type RawInflater = (deflate: Buffer, length: number) => Promise<Buffer>;

/** Node's zlib on the threadpool. */
export const zlibRawInflater: RawInflater = (deflate, length) => inflateRawAsync(deflate, { finishFlush: zc.Z_SYNC_FLUSH, chunkSize: Math.max(length, 64) + 64 });

/**
 * The raw deflate data of span `index` within its compressed bytes [c, c+cs) as the TOC names
 * them: the gzip header (first span) and trailer (last) cut off. It inflates on its own: publish
 * ended the previous span with a full flush.
 */
export function spanDeflate(toc: SeekableToc, index: number, compressed: Buffer): Buffer {
  const span = toc.spans[index]!;
  const from = Math.max(span.c, toc.gzip.headerSize) - span.c;
  const to = Math.min(span.c + span.cs, toc.size - toc.gzip.trailerSize) - span.c;
  return compressed.subarray(from, to);
}

/** TOC_INVALID: span `index` inflated to `got` bytes where the TOC says `expected`. */
export function spanSizeMismatch(index: number, got: number, expected: number): HostpullError {
  return new HostpullError('TOC_INVALID', `span ${index} inflates to ${got} bytes, the table of contents says ${expected}`);
}

/**
 * The tar bytes of span `index` from its compressed bytes ({@link spanDeflate}), inflated by
 * `inflate` (default: Node's zlib). TOC_INVALID if it does not inflate to `us` bytes.
 */
export async function inflateSpan(toc: SeekableToc, index: number, compressed: Buffer, inflate: RawInflater = zlibRawInflater): Promise<Buffer> {
  const span = toc.spans[index]!;
  const bytes = await inflate(spanDeflate(toc, index, compressed), span.us);
  if (bytes.length !== span.us) throw spanSizeMismatch(index, bytes.length, span.us);
  return bytes;
}

/** The tar reader's entry types (archive/tar-reader.ts): a TOC describes whatever the tar holds. */
export type TocEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/**
 * One tar entry as the project's tar reader sees it (publish records the TOC by reading the tar
 * it wrote with that reader), so a node can hold a layer to the same rules from its TOC as from
 * its bytes: names are kept as stored and normalised where they are checked.
 */
export interface TocEntry {
  /** Name as stored in the tar (`opt/jdk-17.0/bin/java`, `opt/` for a directory). */
  path: string;
  type: TocEntryType;
  /** Permission bits including setuid/setgid/sticky (`& 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** Data bytes (files only; 0 otherwise). */
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Symlink target as stored, or the path a hardlink points at. */
  linkname?: string;
  /** Device numbers (char and block devices only). */
  devmajor?: number;
  devminor?: number;
  /** `SCHILY.xattr.*` records: name → value, base64. Absent when the entry has none. */
  xattrs?: Record<string, string>;
  /** Offset of the entry's (ustar) header block in the tar; PAX and GNU headers come before it. */
  offset: number;
  /** Offset of the entry's data in the tar (files only). */
  dataOffset?: number;
}

export interface SeekableToc {
  version: 1;
  /** The layer blob (gzip) this TOC describes. */
  digest: Digest;
  /** The uncompressed tar's digest (the config's diff_id). */
  diffId: Digest;
  /** Size of the blob. */
  size: number;
  /** Size of the tar. */
  uncompressedSize: number;
  /** Bytes of gzip header before the first deflate byte, and of trailer after the last. */
  gzip: { headerSize: number; trailerSize: number };
  spans: TocSpan[];
  entries: TocEntry[];
}

function invalid(where: string, why: string): HostpullError {
  return new HostpullError('TOC_INVALID', `${where}: ${why}`, {
    hint: 'the package was published with a broken table of contents; publish it again, or pull without --lazy',
  });
}

const ENTRY_TYPES: ReadonlySet<string> = new Set<TocEntryType>(['file', 'dir', 'symlink', 'hardlink', 'char', 'block', 'fifo']);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function isNat(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * The shape of everything but the entries, naming the first field that is wrong (json-shape.ts,
 * as for manifests): this is on the critical path of a lazy start, twice (here and in the FUSE
 * helper), where loading a schema library cost ~25 ms.
 */
function checkHeader(raw: unknown, where: string): void {
  checked(() => {
    const t = object(raw, '');
    if (t.version !== 1) throw new ShapeError('version', `${JSON.stringify(t.version)} is not 1`);
    field(t, 'digest', '', digest);
    field(t, 'diffId', '', digest);
    field(t, 'size', '', natural);
    field(t, 'uncompressedSize', '', natural);
    const gzip = field(t, 'gzip', '', object);
    field(gzip, 'headerSize', 'gzip', natural);
    field(gzip, 'trailerSize', 'gzip', natural);
    const spans = field(t, 'spans', '', (v, path) =>
      array(v, path, (span, p) => {
        const sp = object(span, p);
        for (const k of ['c', 'cs', 'u', 'us']) field(sp, k, p, natural);
        field(sp, 'sha256', p, (h, hp) => {
          if (typeof h !== 'string' || !SHA256_HEX.test(h)) throw new ShapeError(hp, 'not 64 lowercase hex digits');
        });
      }),
    );
    if (spans.length === 0) throw new ShapeError('spans', 'empty');
    field(t, 'entries', '', (v, path) => array(v, path, () => undefined));
  }, (why) => invalid(where, why));
}

/** The shape of each entry (what the schema would say of it), naming the first one that is wrong. */
function checkEntries(entries: unknown[], where: string): void {
  for (const [i, raw] of entries.entries()) {
    const bad = (what: string) => invalid(where, `entries.${i}: ${what}`);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('not an object');
    const e = raw as Record<string, unknown>;
    if (typeof e.path !== 'string') throw bad('path is not a string');
    if (typeof e.type !== 'string' || !ENTRY_TYPES.has(e.type)) throw bad(`type ${JSON.stringify(e.type)} is not one of ${[...ENTRY_TYPES].join(', ')}`);
    if (!isNat(e.mode) || e.mode > 0o7777) throw bad('mode is not a number from 0 to 07777');
    for (const k of ['uid', 'gid', 'size', 'offset'] as const) if (!isNat(e[k])) throw bad(`${k} is not a whole number ≥ 0`);
    if (typeof e.mtime !== 'number' || !Number.isFinite(e.mtime)) throw bad('mtime is not a number');
    if (e.linkname !== undefined && typeof e.linkname !== 'string') throw bad('linkname is not a string');
    for (const k of ['devmajor', 'devminor', 'dataOffset'] as const) if (e[k] !== undefined && !isNat(e[k])) throw bad(`${k} is not a whole number ≥ 0`);
    if (e.xattrs !== undefined) {
      if (typeof e.xattrs !== 'object' || e.xattrs === null || Array.isArray(e.xattrs)) throw bad('xattrs is not an object');
      for (const v of Object.values(e.xattrs)) if (typeof v !== 'string' || !BASE64.test(v)) throw bad('an xattr value is not base64');
    }
  }
}

/** The whole-file checks the schema cannot express: spans tile the blob and the tar, entries lie inside the tar. */
function checkToc(toc: SeekableToc, where: string): void {
  let c = 0;
  let u = 0;
  for (const [i, s] of toc.spans.entries()) {
    if (s.c !== c || s.u !== u) throw invalid(where, `span ${i} starts at ${s.c}/${s.u}, expected ${c}/${u}: spans must tile the blob and the tar`);
    if (s.cs === 0) throw invalid(where, `span ${i} is empty`);
    c += s.cs;
    u += s.us;
  }
  if (c !== toc.size || u !== toc.uncompressedSize) throw invalid(where, `spans cover ${c}/${u} bytes, the blob has ${toc.size}/${toc.uncompressedSize}`);
  if (toc.gzip.headerSize > toc.spans[0]!.cs || toc.gzip.trailerSize > toc.spans[toc.spans.length - 1]!.cs) throw invalid(where, 'gzip header or trailer larger than its span');
  for (const e of toc.entries) {
    if (e.type === 'file') {
      if (e.dataOffset === undefined || e.dataOffset + e.size > toc.uncompressedSize || e.dataOffset < e.offset) {
        throw invalid(where, `${e.path}: data [${e.dataOffset}, +${e.size}) lies outside the tar`);
      }
    } else if (e.size !== 0) {
      throw invalid(where, `${e.path}: a ${e.type} has no data`);
    }
    if ((e.type === 'symlink' || e.type === 'hardlink') && e.linkname === undefined) throw invalid(where, `${e.path}: ${e.type} without a target`);
  }
}

/** Parses and checks TOC JSON (already inflated). Throws TOC_INVALID naming `where`. */
export function parseToc(json: Buffer | string, where: string): SeekableToc {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof json === 'string' ? json : json.toString('utf8'));
  } catch (err) {
    throw invalid(where, `not JSON (${(err as Error).message})`);
  }
  checkHeader(raw, where);
  checkEntries((raw as { entries: unknown[] }).entries, where);
  const toc = raw as SeekableToc;
  checkToc(toc, where);
  return toc;
}

/** Parses a TOC blob as fetched (gzip JSON), after checking it is the blob `digest` names. */
export function parseTocBlob(blob: Buffer, digest: Digest, where: string): SeekableToc {
  if (digestOf(blob) !== digest) throw new HostpullError('DIGEST_MISMATCH', `${where}: TOC blob is not ${digest}`);
  let json: Buffer;
  try {
    json = gunzipSync(blob, { maxOutputLength: MAX_TOC_JSON_BYTES });
  } catch (err) {
    throw invalid(where, `not gzip, or larger than ${MAX_TOC_JSON_BYTES} bytes inflated (${(err as Error).message})`);
  }
  return parseToc(json, where);
}

/** The spans [first, last] that hold tar bytes [offset, offset+length) (length > 0). */
export function spansFor(spans: readonly TocSpan[], offset: number, length: number): { first: number; last: number } {
  const find = (pos: number): number => {
    let lo = 0;
    let hi = spans.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (spans[mid]!.u <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  return { first: find(offset), last: find(offset + Math.max(length, 1) - 1) };
}
