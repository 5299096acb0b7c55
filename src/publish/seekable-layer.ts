import type { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { TarReader, type TarEntryHeader, type TarEntrySink } from '../archive/index.js';
import { digestOf, type Digest } from '../oci/index.js';
import type { SeekableToc, TocEntry } from '../oci/index.js';
import { writeSpanGzip, type SpanGzipOptions } from './span-gzip.js';

export interface SeekableLayer {
  /** Digest and size of the gzip blob. */
  digest: Digest;
  size: number;
  /** Digest of the uncompressed tar (config rootfs.diff_ids). */
  diffId: Digest;
  /** The layer's table of contents, and its blob (gzip JSON) as pushed. */
  toc: SeekableToc;
  tocBlob: Buffer;
  tocDigest: Digest;
}

const BLOCK = 512;

/**
 * Records each entry the way the project's tar reader reports it: the TOC is what a node's entry
 * checker would see in the tar, so a node can hold a lazy layer to its claim from the TOC alone.
 */
class TocRecorder implements TarEntrySink {
  readonly entries: TocEntry[] = [];

  entry(h: TarEntryHeader): void {
    const e: TocEntry = { path: h.name, type: h.type, mode: h.mode, uid: h.uid, gid: h.gid, size: h.size, mtime: h.mtime, offset: h.offset };
    if (h.type === 'symlink' || h.type === 'hardlink') e.linkname = h.linkname;
    if (h.type === 'char' || h.type === 'block') {
      e.devmajor = h.devmajor;
      e.devminor = h.devminor;
    }
    if (h.xattrs.size > 0) e.xattrs = Object.fromEntries([...h.xattrs].map(([k, v]) => [k, v.toString('base64')]));
    if (h.type === 'file') e.dataOffset = h.offset + BLOCK;
    this.entries.push(e);
  }

  data(): void {}
  entryEnd(): void {}
}

/**
 * Compresses a tar into a seekable gzip layer (span-gzip.ts: independently inflatable spans, on
 * all cores) written to `out`, and builds its table of contents by reading the same bytes with
 * the project's tar reader as they pass (headers only: data is skipped). The one way a TOC is
 * made, for package layers (`hostpull publish`) and base layers (the demo's base) alike; the tar
 * must be one the reader accepts. Deterministic: the same tar and options give the same blob and TOC.
 */
export async function writeSeekableLayer(tar: AsyncIterable<Buffer>, out: Writable, options: SpanGzipOptions & { where: string }): Promise<SeekableLayer> {
  const recorder = new TocRecorder();
  const reader = new TarReader(recorder, { where: options.where });
  async function* read(): AsyncGenerator<Buffer> {
    for await (const chunk of tar) {
      reader.write(chunk);
      yield chunk;
    }
    reader.end();
  }
  const gz = await writeSpanGzip(read(), out, options);
  const toc: SeekableToc = {
    version: 1,
    digest: gz.digest,
    diffId: gz.diffId,
    size: gz.size,
    uncompressedSize: gz.uncompressedSize,
    gzip: { headerSize: gz.headerSize, trailerSize: gz.trailerSize },
    spans: gz.spans,
    entries: recorder.entries,
  };
  const tocBlob = gzipSync(JSON.stringify(toc), { level: 9 });
  return { digest: gz.digest, size: gz.size, diffId: gz.diffId, toc, tocBlob, tocDigest: digestOf(tocBlob) };
}
