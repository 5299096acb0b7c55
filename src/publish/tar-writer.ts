import { Header, Pax, type HeaderData } from 'tar';

/**
 * The one tar writer of src/: header blocks from node-tar's Header (ustar), with a PAX extended
 * header in front only when a field does not fit ustar (a long or non-ASCII path or link target),
 * so plain trees stay plain ustar; data padding; the end-of-archive marker. What is written is
 * decided by the caller (publish's deterministic package layers, the bench's synthetic layers);
 * the reader that judges it is archive/'s tar reader.
 */

const TAR_BLOCK = 512;

/** Two zero blocks: the end-of-archive marker. */
export const TAR_END: Buffer = Buffer.alloc(TAR_BLOCK * 2);

/** The header of one entry: one ustar block, preceded by a PAX header when needed. */
export function tarHeader(data: HeaderData): Buffer[] {
  const header = new Header(data);
  const block = Buffer.alloc(TAR_BLOCK);
  // encode() reports when a field does not fit ustar: only then is a PAX record added.
  const needPax = header.encode(block);
  if (!needPax) return [block];
  const pax = new Pax({ path: data.path, linkpath: data.linkpath || undefined, mtime: data.mtime, uid: data.uid, gid: data.gid } as HeaderData).encode();
  return [pax, block];
}

/** The zeros that pad `size` bytes of data to a whole block. */
export function tarPadding(size: number): Buffer {
  const rest = size % TAR_BLOCK;
  return rest === 0 ? Buffer.alloc(0) : TAR_END.subarray(0, TAR_BLOCK - rest);
}
