import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { constants as zc, gunzipSync, inflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { digestOf } from '../../../src/oci/digest.js';
import { parseToc, parseTocBlob, spansFor, type SeekableToc } from '../../../src/oci/seekable-toc.js';
import { buildLayerFile } from '../../../src/publish/build-layer.js';
import { writeSpanGzip } from '../../../src/publish/span-gzip.js';
import { TarReader, type TarEntryHeader } from '../../../src/archive/index.js';
import { useTempDir } from '../../helpers/tmp.js';

const exec = promisify(execFile);

/** Collects a Writable's bytes. */
function sink(): { out: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  return {
    out: new Writable({
      write(chunk: Buffer, _e, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
    bytes: () => Buffer.concat(chunks),
  };
}

/** Compressible but not trivial data: words from a small vocabulary. */
function text(bytes: number, seed: string): Buffer {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'jar', 'class', 'module', 'java', '\n'];
  const out: string[] = [];
  let h = createHash('sha256').update(seed).digest();
  let n = 0;
  while (n < bytes) {
    h = createHash('sha256').update(h).digest();
    for (const b of h) {
      const w = words[b % words.length]!;
      out.push(w, ' ');
      n += w.length + 1;
    }
  }
  return Buffer.from(out.join('')).subarray(0, bytes);
}

/** Inflates span i of a blob alone, with raw inflate and no dictionary. */
function inflateSpan(blob: Buffer, toc: Pick<SeekableToc, 'spans' | 'gzip' | 'size'>, i: number): Buffer {
  const s = toc.spans[i]!;
  const from = Math.max(s.c, toc.gzip.headerSize);
  const to = Math.min(s.c + s.cs, toc.size - toc.gzip.trailerSize);
  return inflateRawSync(blob.subarray(from, to), { finishFlush: zc.Z_SYNC_FLUSH });
}

describe('writeSpanGzip', () => {
  it('writes one gzip stream of independently inflatable spans, tiling blob and input', async () => {
    const input = Buffer.concat([text(700_000, 'a'), randomBytes(200_000), text(123_457, 'b')]);
    const { out, bytes } = sink();
    const chunks = Array.from({ length: Math.ceil(input.length / 10_007) }, (_, i) => input.subarray(i * 10_007, (i + 1) * 10_007));
    const r = await writeSpanGzip(Readable.from(chunks), out, { spanSize: 256 * 1024, concurrency: 3 });
    const blob = bytes();
    expect(r.size).toBe(blob.length);
    expect(r.digest).toBe(digestOf(blob));
    expect(r.diffId).toBe(digestOf(input));
    expect(gunzipSync(blob).equals(input)).toBe(true);
    expect(r.spans.length).toBe(Math.ceil(input.length / (256 * 1024)));
    const toc = { spans: r.spans, gzip: { headerSize: r.headerSize, trailerSize: r.trailerSize }, size: r.size };
    for (const [i, s] of r.spans.entries()) {
      expect(createHash('sha256').update(blob.subarray(s.c, s.c + s.cs)).digest('hex')).toBe(s.sha256);
      expect(inflateSpan(blob, toc, i).equals(input.subarray(s.u, s.u + s.us))).toBe(true);
    }
  });

  it('gives the same bytes for the same input whatever the chunking and concurrency', async () => {
    const input = text(600_000, 'same');
    const a = sink();
    const b = sink();
    await writeSpanGzip(Readable.from([input]), a.out, { spanSize: 100_000, concurrency: 1 });
    await writeSpanGzip(Readable.from([input.subarray(0, 1), input.subarray(1, 333_333), input.subarray(333_333)]), b.out, { spanSize: 100_000, concurrency: 4 });
    expect(a.bytes().equals(b.bytes())).toBe(true);
  });

  it('handles an input smaller than one span', async () => {
    const { out, bytes } = sink();
    const r = await writeSpanGzip(Readable.from([Buffer.from('tiny')]), out, { spanSize: 65_536 });
    expect(r.spans).toHaveLength(1);
    expect(gunzipSync(bytes()).toString()).toBe('tiny');
    expect(inflateSpan(bytes(), { spans: r.spans, gzip: { headerSize: r.headerSize, trailerSize: r.trailerSize }, size: r.size }, 0).toString()).toBe('tiny');
  });
});

describe('buildLayerFile (seekable package layer + TOC)', () => {
  const tmp = useTempDir('span-layer');

  async function tree(root: string): Promise<void> {
    await mkdir(join(root, 'bin'), { recursive: true });
    await mkdir(join(root, 'lib', 'x'.repeat(120)), { recursive: true });
    await writeFile(join(root, 'bin', 'tool'), '#!/bin/sh\necho tool\n');
    await chmod(join(root, 'bin', 'tool'), 0o755);
    await writeFile(join(root, 'lib', 'big.txt'), text(900_000, 'big'));
    await writeFile(join(root, 'lib', 'random.bin'), createHash('sha512').update(root.slice(-1) === 'X' ? 'never' : 'seed').digest());
    await writeFile(join(root, 'lib', 'empty'), '');
    await writeFile(join(root, 'lib', 'x'.repeat(120), 'long-path-needs-pax.txt'), 'pax');
    await symlink('../lib/big.txt', join(root, 'bin', 'big'));
  }

  it('is read by gzip, zlib and tar; its diffID is the plain tar digest; its TOC matches the tar', async () => {
    const dir = await tmp();
    await tree(join(dir, 'src'));
    const built = await buildLayerFile({ dir: join(dir, 'src'), prefix: '/opt/tool-1', outFile: join(dir, 'layer.tgz'), spanSize: 128 * 1024 });
    await exec('gzip', ['-t', join(dir, 'layer.tgz')]);
    const blob = await readFile(join(dir, 'layer.tgz'));
    const tar = gunzipSync(blob);
    expect(built.diffId).toBe(digestOf(tar));
    expect(built.digest).toBe(digestOf(blob));
    await mkdir(join(dir, 'x'));
    await exec('tar', ['-xzf', join(dir, 'layer.tgz'), '-C', join(dir, 'x')]);
    expect(await readFile(join(dir, 'x', 'opt', 'tool-1', 'lib', 'big.txt'))).toEqual(await readFile(join(dir, 'src', 'lib', 'big.txt')));

    const toc = parseTocBlob(built.tocBlob, built.tocDigest, 'test TOC');
    expect(toc).toEqual(built.toc);
    expect(toc.spans.length).toBeGreaterThan(5);
    for (let i = 0; i < toc.spans.length; i++) {
      const s = toc.spans[i]!;
      expect(inflateSpan(blob, toc, i).equals(tar.subarray(s.u, s.u + s.us))).toBe(true);
    }
    // The TOC agrees with what the project's tar reader sees in the stream.
    const seen: Array<TarEntryHeader & { dataOffset: number }> = [];
    let pos = 0;
    let pendingData = false;
    const reader = new TarReader(
      {
        entry: (h) => {
          seen.push({ ...h, dataOffset: -1 });
          pendingData = true;
        },
        data: () => undefined,
        entryEnd: () => undefined,
      },
      { where: 'test' },
    );
    // Feed block by block so each entry's data offset is the position after its header block.
    for (; pos < tar.length; pos += 512) {
      reader.write(tar.subarray(pos, pos + 512));
      if (pendingData) {
        seen[seen.length - 1]!.dataOffset = pos + 512;
        pendingData = false;
      }
    }
    expect(toc.entries.map((e) => e.path)).toEqual(seen.map((h) => h.name));
    for (const [i, e] of toc.entries.entries()) {
      const h = seen[i]!;
      expect({ type: e.type, mode: e.mode, size: e.size, uid: e.uid, gid: e.gid, linkname: e.linkname ?? '' }).toEqual({
        type: h.type,
        mode: h.mode,
        size: h.size,
        uid: h.uid,
        gid: h.gid,
        linkname: h.linkname,
      });
      expect(e.offset).toBe(h.offset);
      if (e.type === 'file') {
        expect(e.dataOffset).toBe(h.dataOffset);
        const want = await readFile(join(dir, 'src', e.path.replace(/^opt\/tool-1\/?/, '')));
        expect(tar.subarray(e.dataOffset!, e.dataOffset! + e.size).equals(want)).toBe(true);
      }
    }
  });

  it('is byte-for-byte reproducible from the same tree and options', async () => {
    const dir = await tmp();
    await tree(join(dir, 'a'));
    await tree(join(dir, 'b'));
    const a = await buildLayerFile({ dir: join(dir, 'a'), prefix: '/opt/t', outFile: join(dir, 'a.tgz'), spanSize: 64 * 1024, concurrency: 1 });
    const b = await buildLayerFile({ dir: join(dir, 'b'), prefix: '/opt/t', outFile: join(dir, 'b.tgz'), spanSize: 64 * 1024, concurrency: 4 });
    expect(b.digest).toBe(a.digest);
    expect(b.tocDigest).toBe(a.tocDigest);
    const c = await buildLayerFile({ dir: join(dir, 'a'), prefix: '/opt/t', outFile: join(dir, 'c.tgz'), spanSize: 128 * 1024 });
    expect(c.diffId).toBe(a.diffId);
    expect(c.digest).not.toBe(a.digest);
  });
});

describe('parseToc', () => {
  const good = (): SeekableToc => ({
    version: 1,
    digest: digestOf('blob'),
    diffId: digestOf('tar'),
    size: 30,
    uncompressedSize: 2048,
    gzip: { headerSize: 10, trailerSize: 8 },
    spans: [
      { c: 0, cs: 20, u: 0, us: 1024, sha256: 'a'.repeat(64) },
      { c: 20, cs: 10, u: 1024, us: 1024, sha256: 'b'.repeat(64) },
    ],
    entries: [{ path: 'opt/x', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 100, mtime: 0, offset: 0, dataOffset: 512 }],
  });

  it('accepts a TOC whose spans tile the blob and the tar', () => {
    expect(parseToc(JSON.stringify(good()), 't').spans).toHaveLength(2);
  });

  it.each([
    ['a gap between spans', (t: SeekableToc) => (t.spans[1]!.c = 21), /spans must tile/],
    ['spans short of the blob', (t: SeekableToc) => (t.size = 31), /spans cover/],
    ['file data past the tar', (t: SeekableToc) => (t.entries[0]!.size = 5000), /outside the tar/],
    ['a symlink without target', (t: SeekableToc) => (t.entries[0] = { path: 'l', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 0, offset: 0 }), /without a target/],
    ['a bad span hash', (t: SeekableToc) => (t.spans[0]!.sha256 = 'zz'), /sha256/],
    ['an unknown entry type', (t: SeekableToc) => ((t.entries[0] as { type: string }).type = 'socket'), /entries\.0: type "socket"/],
    ['a mode past 07777', (t: SeekableToc) => (t.entries[0]!.mode = 0o10000), /entries\.0: mode/],
    ['a negative owner', (t: SeekableToc) => (t.entries[0]!.uid = -1), /entries\.0: uid/],
    ['an xattr that is not base64', (t: SeekableToc) => (t.entries[0]!.xattrs = { 'user.x': 'not base64!' }), /entries\.0: an xattr/],
    ['an entry that is not an object', (t: SeekableToc) => ((t.entries as unknown[])[0] = 'opt/x'), /entries\.0: not an object/],
    ['another version', (t: SeekableToc) => ((t as { version: number }).version = 2), /version: 2 is not 1/],
    ['a digest that is not one', (t: SeekableToc) => ((t as { diffId: string }).diffId = 'sha256:xyz'), /diffId: not a valid sha256\/sha512 digest/],
    ['a fractional size', (t: SeekableToc) => (t.size = 30.5), /size: not a whole number/],
    ['no gzip sizes', (t: SeekableToc) => delete (t as { gzip?: unknown }).gzip, /gzip: required/],
    ['no spans', (t: SeekableToc) => (t.spans = []), /spans: empty/],
    ['a span without its offset', (t: SeekableToc) => delete (t.spans[1] as { u?: number }).u, /spans\.1\.u: required/],
    ['entries that are not a list', (t: SeekableToc) => ((t as { entries: unknown }).entries = {}), /entries: not an array/],
    ['JSON that is not an object', (t: SeekableToc) => ((t as { version: unknown }).version = undefined), /version: undefined is not 1/],
  ])('refuses %s with TOC_INVALID', (_name, mutate, message) => {
    const t = good();
    mutate(t);
    expect(() => parseToc(JSON.stringify(t), 'here')).toThrow(message);
    try {
      parseToc(JSON.stringify(t), 'here');
    } catch (err) {
      expect((err as { code: string }).code).toBe('TOC_INVALID');
    }
  });

  it('finds the spans that hold a byte range', () => {
    const spans = good().spans;
    expect(spansFor(spans, 0, 1)).toEqual({ first: 0, last: 0 });
    expect(spansFor(spans, 1000, 100)).toEqual({ first: 0, last: 1 });
    expect(spansFor(spans, 1024, 1024)).toEqual({ first: 1, last: 1 });
  });
});
