import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { spanInflater } from '../../../src/lazy/span-inflater.js';
import { inflateSpan, type SeekableToc } from '../../../src/oci/index.js';
import { isHostpullError } from '../../../src/errors.js';
import { writeSpanGzip } from '../../../src/publish/span-gzip.js';

/** A seekable gzip stream of `input` as publish writes it, with the TOC fields inflateSpan reads. */
async function seekable(input: Buffer, spanSize: number): Promise<{ blob: Buffer; toc: SeekableToc }> {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _e, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  const r = await writeSpanGzip(Readable.from([input]), out, { spanSize });
  const blob = Buffer.concat(chunks);
  return { blob, toc: { spans: r.spans, gzip: { headerSize: r.headerSize, trailerSize: r.trailerSize }, size: r.size } as unknown as SeekableToc };
}

const spanBytes = (blob: Buffer, toc: SeekableToc, i: number) => blob.subarray(toc.spans[i]!.c, toc.spans[i]!.c + toc.spans[i]!.cs);

describe('spanInflater (a lazy layer inflating its spans with the addon)', () => {
  it('is the addon here, and inflates every span to the same bytes as zlib', async () => {
    const inflater = spanInflater();
    expect(inflater).toBeDefined();
    const input = Buffer.concat([Buffer.alloc(700_000, 'tar block '), randomBytes(400_000), Buffer.alloc(300_001, 0)]);
    const { blob, toc } = await seekable(input, 256 * 1024);
    expect(toc.spans.length).toBeGreaterThan(4);
    for (const [i, s] of toc.spans.entries()) {
      const native = await inflateSpan(toc, i, spanBytes(blob, toc, i), inflater);
      expect(native.equals(input.subarray(s.u, s.u + s.us)), `span ${i}`).toBe(true);
      expect(native.equals(await inflateSpan(toc, i, spanBytes(blob, toc, i)))).toBe(true);
    }
  });

  it('refuses a span that inflates to more or fewer bytes than the TOC says, or does not inflate', async () => {
    const inflater = spanInflater();
    const { blob, toc } = await seekable(Buffer.alloc(600_000, 'abc'), 100_000);
    const longer = { ...toc, spans: toc.spans.map((s, i) => (i === 1 ? { ...s, us: s.us - 1 } : s)) } as SeekableToc;
    const shorter = { ...toc, spans: toc.spans.map((s, i) => (i === 1 ? { ...s, us: s.us + 1 } : s)) } as SeekableToc;
    for (const t of [longer, shorter]) {
      const err = await inflateSpan(t, 1, spanBytes(blob, toc, 1), inflater).catch((e: unknown) => e);
      expect(isHostpullError(err, 'TOC_INVALID')).toBe(true);
      expect((err as Error).message).toMatch(/span 1 inflates to \d+ bytes, the table of contents says \d+/);
    }
    const corrupt = Buffer.from(spanBytes(blob, toc, 1));
    corrupt.fill(0xff, 0, 16);
    await expect(inflateSpan(toc, 1, corrupt, inflater)).rejects.toThrow(/invalid/);
  });
});
