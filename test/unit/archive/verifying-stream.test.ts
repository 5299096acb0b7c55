import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import { createDigester, digestOf } from '../../../src/oci/digest.js';
import { VerifyingStream } from '../../../src/archive/verifying-stream.js';

const content = Buffer.from('the quick brown fox jumps over the lazy dog');
const digest = digestOf(content);

/** A sink that records what it received and whether it ever saw the end. */
function recorder(): Writable & { received: Buffer[]; finished: boolean } {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      sink.received.push(chunk);
      cb();
    },
  }) as Writable & { received: Buffer[]; finished: boolean };
  sink.received = [];
  sink.finished = false;
  sink.on('finish', () => {
    sink.finished = true;
  });
  return sink;
}

describe('VerifyingStream', () => {
  it('passes exact content through and finishes', async () => {
    const verifier = new VerifyingStream({ digest, size: content.length, source: 'test' });
    const sink = recorder();
    await pipeline(Readable.from([content.subarray(0, 10), content.subarray(10)]), verifier, sink);
    expect(Buffer.concat(sink.received)).toEqual(content);
    expect(sink.finished).toBe(true);
    expect(verifier.bytes).toBe(content.length);
  });

  it('fails on the first byte too many, before the source ends', async () => {
    const verifier = new VerifyingStream({ digest, size: content.length, source: 'reg.example/pkg/jdk' });
    const source = new PassThrough();
    const sink = recorder();
    const done = pipeline(source, verifier, sink);
    const err = new Promise<unknown>((resolve) => verifier.once('error', resolve));
    source.write(content);
    source.write(Buffer.from('!')); // the source is never ended
    const e = await err;
    expect(isHostpullError(e, 'SIZE_MISMATCH')).toBe(true);
    expect((e as Error).message).toContain(`more than the ${content.length} bytes`);
    expect((e as Error).message).toContain('reg.example/pkg/jdk');
    await expect(done).rejects.toBe(e);
    expect(sink.finished).toBe(false);
    expect(Buffer.concat(sink.received).length).toBeLessThanOrEqual(content.length);
  });

  it('fails a short transfer at the end, with the counts, and the sink never finishes', async () => {
    const verifier = new VerifyingStream({ digest, size: content.length, source: 'test' });
    const sink = recorder();
    const err = await pipeline(Readable.from([content.subarray(0, 20)]), verifier, sink).catch((e: unknown) => e);
    expect(isHostpullError(err, 'SIZE_MISMATCH')).toBe(true);
    expect((err as { details?: unknown }).details).toMatchObject({ expected: content.length, actual: 20 });
    expect(sink.finished).toBe(false);
  });

  it('fails wrong content of the right size at the end, and the sink never sees finish', async () => {
    const wrong = Buffer.from(content);
    wrong[0] = 0x54; // 'T'
    const verifier = new VerifyingStream({ digest, size: content.length, source: 'test' });
    const sink = recorder();
    const err = await pipeline(Readable.from([wrong.subarray(0, 30), wrong.subarray(30)]), verifier, sink).catch((e: unknown) => e);
    expect(isHostpullError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect((err as Error).message).toContain(digestOf(wrong));
    // The chunk that completed the size was held back: the sink holds fewer bytes than declared,
    // so a consumer that counts bytes (an HTTP client) cannot take it for a complete body either.
    expect(Buffer.concat(sink.received)).toEqual(wrong.subarray(0, 30));
    expect(sink.finished).toBe(false);
  });

  it('releases the chunk that completed the size only once the digest matched', async () => {
    const verifier = new VerifyingStream({ digest, size: content.length, source: 'test' });
    const source = new PassThrough();
    const sink = recorder();
    const done = pipeline(source, verifier, sink);
    source.write(content.subarray(0, 30));
    source.write(content.subarray(30));
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(sink.received)).toEqual(content.subarray(0, 30));
    source.end(Buffer.alloc(0));
    await done;
    expect(Buffer.concat(sink.received)).toEqual(content);
    expect(sink.finished).toBe(true);
  });

  it('verifies a resumed transfer with a pre-fed digester and offset', async () => {
    const hash = createDigester('sha256').update(content.subarray(0, 15));
    const verifier = new VerifyingStream({ digest, size: content.length, source: 'test', hash, offset: 15 });
    const sink = recorder();
    await pipeline(Readable.from([content.subarray(15)]), verifier, sink);
    expect(sink.finished).toBe(true);
    expect(verifier.bytes).toBe(content.length);
  });

  it('verifies sha512 digests', async () => {
    const verifier = new VerifyingStream({ digest: digestOf(content, 'sha512'), size: content.length, source: 'test' });
    await pipeline(Readable.from([content]), verifier, recorder());
  });
});
