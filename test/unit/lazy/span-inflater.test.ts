import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { InflatingSpan } from '../../../src/lazy/inflating-span.js';
import { spanInflater, steppedInflater } from '../../../src/lazy/span-inflater.js';
import { inflateRawOpen, inflateRawRun } from '../../../src/native/index.js';
import { inflateSpan, spanDeflate, type SeekableToc } from '../../../src/oci/index.js';
import { isHostpullError } from '../../../src/errors.js';
import { writeSpanGzip } from '../../../src/publish/span-gzip.js';
import { heldSteps } from '../../helpers/held-steps.js';
import { noise } from '../../helpers/noise.js';

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

/** Whether `p` has settled by the time the pool and the event loop have had a moment. */
async function settledSoon(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((r) => setTimeout(r, 20));
  return settled;
}

describe('inflating a span in steps (the addon)', () => {
  it('stops each step where it is asked to and goes on from there: any split gives the bytes of one inflation', async () => {
    // Zeros compress so well that the first step uses up all of the input: the rest of the
    // output waits in the inflater's own buffer for the next steps.
    const input = Buffer.concat([Buffer.alloc(300_000, 0), noise(200_000, 'span middle'), Buffer.alloc(400_000, 'tar ')]);
    const { blob, toc } = await seekable(input, 1024 * 1024);
    expect(toc.spans.length).toBe(1);
    const deflate = spanDeflate(toc, 0, spanBytes(blob, toc, 0));
    for (const stops of [[1], [4096, 4096, 300_001], [299_999, 500_000, 899_999], [65_536, 131_072, 196_608]]) {
      const out = Buffer.alloc(input.length + 1);
      const handle = inflateRawOpen();
      for (const stop of stops) expect(await inflateRawRun(handle, deflate, out, stop)).toBe(stop);
      expect(await inflateRawRun(handle, deflate, out, out.length)).toBe(input.length);
      expect(out.subarray(0, input.length).equals(input), `stops ${stops.join(',')}`).toBe(true);
      // Nothing more to come: a further step changes nothing.
      expect(await inflateRawRun(handle, deflate, out, out.length)).toBe(input.length);
    }
  });

  it('refuses a second step while one runs, and a handle that is not one of its own', async () => {
    const { blob, toc } = await seekable(Buffer.alloc(500_000, 'abc'), 1024 * 1024);
    const deflate = spanDeflate(toc, 0, spanBytes(blob, toc, 0));
    const out = Buffer.alloc(500_001);
    const handle = inflateRawOpen();
    // A stop that is not a positive number is a step that inflates nothing.
    expect(await inflateRawRun(handle, deflate, out, Number.NaN)).toBe(0);
    expect(await inflateRawRun(handle, deflate, out, -1)).toBe(0);
    const running = inflateRawRun(handle, deflate, out, out.length);
    expect(() => inflateRawRun(handle, deflate, out, out.length)).toThrow(/still running/);
    expect(await running).toBe(500_000);
    expect(() => inflateRawRun({} as never, deflate, out, 1)).toThrow(/expected \(handle, Buffer, Buffer, number\)/);
    // A stretch that failed stays failed, step after step.
    const bad = Buffer.from(deflate);
    bad.fill(0xff, 0, 16);
    const broken = inflateRawOpen();
    await expect(inflateRawRun(broken, bad, out, 100)).rejects.toThrow(/invalid/);
    await expect(inflateRawRun(broken, bad, out, out.length)).rejects.toThrow(/invalid/);
  });

  it('answers a read of the first bytes before the rest of the span is inflated, and every read with the tar bytes', async () => {
    const input = Buffer.concat([noise(300_000, 'span head'), Buffer.alloc(700_000, 'block ')]);
    const { blob, toc } = await seekable(input, 1024 * 1024);
    // The step to the end waits until the test lets it go.
    const { inflater, stops, release } = heldSteps((until) => until > toc.spans[0]!.us);
    const span = new InflatingSpan(Promise.resolve(spanBytes(blob, toc, 0)), toc, 0, inflater);
    const early = span.prefix(10_000);
    const first = await early;
    expect(first.subarray(0, 10_000).equals(input.subarray(0, 10_000))).toBe(true);
    expect(await settledSoon(span.whole)).toBe(false); // the rest waits for the held step
    expect(stops).toEqual([10_000, input.length + 1]);
    // A read within what is out already is answered at once; one further on waits for the rest.
    expect((await span.prefix(5_000)).subarray(0, 5_000).equals(input.subarray(0, 5_000))).toBe(true);
    const later = span.prefix(900_000);
    expect(await settledSoon(later)).toBe(false);
    release();
    expect((await later).subarray(0, 900_000).equals(input.subarray(0, 900_000))).toBe(true);
    expect((await span.whole).equals(input)).toBe(true);
  });

  it('with no read waiting, inflates the span in one step; with zlib (no addon), at once', async () => {
    const input = Buffer.alloc(600_000, 'xyz');
    const { blob, toc } = await seekable(input, 1024 * 1024);
    for (const inflater of [steppedInflater(), steppedInflater(false)]) {
      const span = new InflatingSpan(Promise.resolve(spanBytes(blob, toc, 0)), toc, 0, inflater);
      const part = await span.prefix(100);
      expect(part.subarray(0, 100).equals(input.subarray(0, 100))).toBe(true);
      expect((await span.whole).equals(input)).toBe(true);
      expect((await span.prefix(599_999)).equals(input)).toBe(true);
    }
  });

  it('fails every read, waiting or to come, with the span: a size the TOC does not say, bad deflate data, a failed fetch', async () => {
    const { blob, toc } = await seekable(Buffer.alloc(600_000, 'abc'), 100_000);
    const longer = { ...toc, spans: toc.spans.map((s, i) => (i === 1 ? { ...s, us: s.us - 1 } : s)) } as SeekableToc;
    const shorter = { ...toc, spans: toc.spans.map((s, i) => (i === 1 ? { ...s, us: s.us + 1 } : s)) } as SeekableToc;
    for (const t of [longer, shorter]) {
      const span = new InflatingSpan(Promise.resolve(spanBytes(blob, toc, 1)), t, 1, steppedInflater());
      const whole = span.prefix(t.spans[1]!.us);
      await expect(whole).rejects.toMatchObject({ code: 'TOC_INVALID', message: expect.stringMatching(/span 1 inflates to \d+ bytes, the table of contents says \d+/) });
      await expect(span.prefix(10)).rejects.toMatchObject({ code: 'TOC_INVALID' });
    }
    const corrupt = Buffer.from(spanBytes(blob, toc, 1));
    corrupt.fill(0xff, 0, 16);
    const bad = new InflatingSpan(Promise.resolve(corrupt), toc, 1, steppedInflater());
    await expect(bad.prefix(10)).rejects.toThrow(/invalid/);
    await expect(bad.whole).rejects.toThrow(/invalid/);
    const gone = new InflatingSpan(Promise.reject(new Error('span 1: registry gone')), toc, 1, steppedInflater());
    await expect(gone.prefix(10)).rejects.toThrow('span 1: registry gone');
    await expect(gone.whole).rejects.toThrow('span 1: registry gone');
  });
});
