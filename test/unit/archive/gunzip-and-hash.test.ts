import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { constants as zc, crc32, deflateRawSync, gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { gunzipAndHash, GunzipError } from '../../../src/archive/gunzip-and-hash.js';
import { readLayer, type ReadLayerOptions } from '../../../src/archive/read-layer.js';
import { isHostpullError } from '../../../src/errors.js';
import { writeTar } from '../../helpers/tar-writer.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** `bytes` cut into pieces of `size` (the last one shorter), as a stream delivers them. */
function pieces(bytes: Buffer, size: number): Readable {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return Readable.from(out);
}

/** Inflates through the addon; returns the digest and a copy of everything consumed, in order. */
async function inflate(source: Readable): Promise<{ hex: string; out: Buffer }> {
  const seen: Buffer[] = [];
  const hex = await gunzipAndHash(source, (tar) => seen.push(Buffer.from(tar)));
  return { hex, out: Buffer.concat(seen) };
}

/** One gzip member built by hand, with the optional header fields gzip(1) never writes. */
function member(data: Buffer, fields: { extra?: Buffer; name?: string; comment?: string; headerCrc?: boolean } = {}): Buffer {
  let flags = 0;
  const parts: Buffer[] = [];
  if (fields.extra) {
    flags |= 0x04;
    const len = Buffer.alloc(2);
    len.writeUInt16LE(fields.extra.length);
    parts.push(len, fields.extra);
  }
  if (fields.name !== undefined) {
    flags |= 0x08;
    parts.push(Buffer.from(`${fields.name}\0`, 'latin1'));
  }
  if (fields.comment !== undefined) {
    flags |= 0x10;
    parts.push(Buffer.from(`${fields.comment}\0`, 'latin1'));
  }
  const fixed = Buffer.from([0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 3]);
  if (fields.headerCrc) {
    fixed[3] |= 0x02;
    const crc = Buffer.alloc(2);
    crc.writeUInt16LE(crc32(Buffer.concat([fixed, ...parts])) & 0xffff);
    parts.push(crc);
  }
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(data), 0);
  trailer.writeUInt32LE(data.length >>> 0, 4);
  return Buffer.concat([fixed, ...parts, deflateRawSync(data), trailer]);
}

describe('gunzipAndHash (the addon inflating and hashing on the threadpool)', () => {
  // Compressible and incompressible stretches, 4.7 MiB: more than the two 2 MiB output buffers
  // hold. Compressed, 1.3 MB: more than one job's input when the chunks that wait are coalesced.
  const data = Buffer.concat([Buffer.alloc(2_500_000, 'tar block '), randomBytes(1_300_000), Buffer.alloc(1_170_000, 7)]);
  const gz = gzipSync(data);

  it.each([4093, 65_536, 1 << 20, gz.length])('inflates in order and hashes what it inflated, whatever the input pieces (%i bytes)', async (size) => {
    const { hex, out } = await inflate(pieces(gz, size));
    expect(out.equals(data)).toBe(true);
    expect(hex).toBe(sha256(data));
  });

  it('hands every chunk of the source back once, whether it was inflated alone or copied in with others that waited', async () => {
    // Written before the inflater starts, the chunks wait together, as a socket's do while this
    // thread applies a layer: several go to one job, copied into its input. A chunk too big to
    // join others (1.1 MB) goes as it is.
    const sizes = [...Array<number>(8).fill(16_384), 4093, 1, 1_100_000];
    const source = new PassThrough({ highWaterMark: gz.length });
    const written: Buffer[] = [];
    for (let at = 0, i = 0; at < gz.length; i++) {
      const piece = Buffer.from(gz.subarray(at, (at += sizes[i] ?? 16_384)));
      written.push(piece);
      source.write(piece);
    }
    source.end();
    const back: Buffer[] = [];
    const seen: Buffer[] = [];
    const hex = await gunzipAndHash(source, (tar) => seen.push(Buffer.from(tar)), undefined, (chunk) => back.push(chunk));
    expect(Buffer.concat(seen).equals(data)).toBe(true);
    expect(hex).toBe(sha256(data));
    expect(written.length).toBeGreaterThan(10);
    expect(back).toHaveLength(written.length);
    for (const piece of written) expect(back.filter((b) => b === piece)).toHaveLength(1);
  });

  it('takes input a byte at a time (a header, a body and a trailer each split anywhere)', async () => {
    const small = Buffer.concat([Buffer.from('x'.repeat(3000)), randomBytes(500)]);
    const { hex, out } = await inflate(pieces(gzipSync(small), 1));
    expect(out.equals(small)).toBe(true);
    expect(hex).toBe(sha256(small));
  });

  it('inflates what zlib inflates, byte for byte: every level, stored blocks, full flushes, members, any cut', async () => {
    // The inflater is not zlib (native/src/gunzip.c): zlib's own gunzip is the reference here,
    // over streams whose deflate streams end at every bit position (the trailer bytes the
    // inflater read ahead are taken back from its bit buffer) and whose pieces break anywhere.
    let seed = 0x2545f491;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    for (let round = 0; round < 24; round++) {
      // Cut byte by byte, a stream is kept small: each piece is a job on the threadpool.
      const bytewise = round % 3 === 0;
      const parts = Array.from({ length: 1 + (next() % 3) }, () => {
        const length = next() % (bytewise ? 8_000 : 300_000);
        const kind = next() % 3;
        return kind === 0 ? randomBytes(length) : kind === 1 ? Buffer.alloc(length, `layer ${round} `) : Buffer.alloc(length, next() % 256);
      });
      const level = [0, 1, 6, 9][round % 4]!;
      // Full flushes every few KiB, as a seekable layer's spans have them (publish/span-gzip.ts).
      const members = parts.map((part) => gzipSync(part, { level, ...(round % 2 === 0 ? { flush: zc.Z_FULL_FLUSH, chunkSize: 1024 + (next() % 60_000) } : {}) }));
      const stream = Buffer.concat(members);
      const cut = bytewise ? 1 + (next() % 7) : round % 3 === 1 ? 1 + (next() % 5000) : 1 + (next() % 200_000);
      const { hex, out } = await inflate(pieces(stream, cut));
      const expected = gunzipSync(stream);
      expect(out.equals(expected), `round ${round}: level ${level}, cut ${cut}`).toBe(true);
      expect(hex).toBe(sha256(expected));
    }
  });

  it('skips the optional header fields, takes members back to back, and zero padding after the last', async () => {
    const a = Buffer.from('first member ');
    const b = randomBytes(3000);
    const stream = Buffer.concat([member(a, { extra: Buffer.from('xy'), name: 'a.tar', comment: 'made by hand', headerCrc: true }), member(b, { name: '' }), gzipSync(Buffer.alloc(0)), Buffer.alloc(512)]);
    const { hex, out } = await inflate(pieces(stream, 3));
    expect(out.equals(Buffer.concat([a, b]))).toBe(true);
    expect(hex).toBe(sha256(Buffer.concat([a, b])));
  });

  it.each([
    ['not gzip', Buffer.from('this is no gzip stream'), /incorrect header check/],
    ['a method other than deflate', Buffer.from([0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 3]), /unknown compression method/],
    ['reserved header flags', Buffer.from([0x1f, 0x8b, 8, 0x20, 0, 0, 0, 0, 0, 3]), /unknown header flags/],
    ['nothing at all', Buffer.alloc(0), /unexpected end of file/],
    ['a stream cut inside the deflate data', gzipSync(randomBytes(50_000)).subarray(0, 20_000), /unexpected end of file/],
    ['a stream cut inside the trailer', gzipSync(Buffer.from('abc')).subarray(0, -3), /unexpected end of file/],
    ['garbage after the last member', Buffer.concat([gzipSync(Buffer.from('abc')), Buffer.from('junk')]), /trailing garbage/],
    ['garbage after zero padding', Buffer.concat([gzipSync(Buffer.from('abc')), Buffer.alloc(4), Buffer.from('junk')]), /trailing garbage/],
  ])('refuses %s', async (_what, bytes, message) => {
    const err = await inflate(pieces(bytes, 5)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GunzipError);
    expect((err as Error).message).toMatch(message);
  });

  it('refuses corrupt deflate data and a length that does not match the trailer', async () => {
    const corrupt = Buffer.from(gzipSync(Buffer.alloc(100_000, 1)));
    corrupt[15] ^= 0xff;
    await expect(inflate(pieces(corrupt, 1000))).rejects.toBeInstanceOf(GunzipError);
    const wrongLength = Buffer.from(gzipSync(Buffer.from('abc')));
    wrongLength[wrongLength.length - 4] ^= 1;
    await expect(inflate(pieces(wrongLength, 1000))).rejects.toThrow(/incorrect length check/);
  });

  it('passes the consumer error on unchanged and tears the source down with it', async () => {
    const source = pieces(gz, 65_536);
    const refused = new Error('the reader refused an entry');
    let calls = 0;
    const err = await gunzipAndHash(source, () => {
      if (++calls === 2) throw refused;
    }).catch((e: unknown) => e);
    expect(err).toBe(refused);
    expect(calls).toBe(2);
    expect(source.destroyed).toBe(true);
  });

  it("passes the source's error on, and stops waiting for a stalled source when aborted", async () => {
    const failing = new PassThrough();
    const done = gunzipAndHash(failing, () => undefined);
    failing.write(gz.subarray(0, 1000));
    const cut = new Error('connection reset');
    setTimeout(() => failing.destroy(cut), 20);
    await expect(done).rejects.toBe(cut);

    const stalled = new PassThrough();
    const abort = new AbortController();
    const waiting = gunzipAndHash(stalled, () => undefined, abort.signal);
    stalled.write(gz.subarray(0, 1000));
    setTimeout(() => abort.abort(), 20);
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    expect(stalled.destroyed).toBe(true);
  });
});

describe('readLayer inflates gzip the same with the addon and with Node zlib', () => {
  const options = (nativeGunzip: boolean): ReadLayerOptions => ({
    compression: 'gzip',
    where: 'sha256:test',
    maxEntries: 1000,
    maxDepth: 64,
    maxBytes: 1 << 24,
    tarBounds: [{ bytes: 1 << 24, rule: 'too-many-bytes', why: 'test' }],
    nativeGunzip,
  });
  const tar = writeTar([
    { name: 'opt/', type: 'dir' },
    { name: 'opt/a', type: 'file', content: randomBytes(300_000) },
    { name: 'opt/b', type: 'file', content: Buffer.alloc(2_000_000, 'b') },
  ]);

  it('gives the same diffID, size and entries', async () => {
    const [native, zlib] = await Promise.all([true, false].map((n) => readLayer(pieces(gzipSync(tar), 10_000), options(n))));
    expect(native).toEqual(zlib);
    expect(native!.diffId).toBe(`sha256:${sha256(tar)}`);
    expect(native!.uncompressedSize).toBe(tar.length);
  });

  it('reports bad gzip as LAYER_INVALID, naming gzip, either way', async () => {
    for (const nativeGunzip of [true, false]) {
      const err = await readLayer(pieces(gzipSync(tar).subarray(0, 5000), 1000), options(nativeGunzip)).catch((e: unknown) => e);
      expect(isHostpullError(err, 'LAYER_INVALID'), `nativeGunzip ${nativeGunzip}: ${String(err)}`).toBe(true);
      expect((err as Error).message).toMatch(/gzip decompression failed/);
    }
  });
});
