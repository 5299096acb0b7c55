import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { Tee } from '../../../src/pull/tee.js';

function collector(options: { highWaterMark?: number; slow?: boolean; failAt?: number; failFinal?: boolean } = {}) {
  const chunks: Buffer[] = [];
  let pending: (() => void) | undefined;
  let writes = 0;
  const sink = new Writable({
    highWaterMark: options.highWaterMark ?? 16 * 1024,
    write(chunk: Buffer, _enc, cb) {
      writes++;
      if (options.failAt !== undefined && writes === options.failAt) return cb(new Error('disk full'));
      chunks.push(Buffer.from(chunk));
      if (options.slow) pending = () => cb();
      else cb();
    },
    final(cb) {
      if (options.failFinal) setImmediate(() => cb(new Error('commit failed')));
      else cb();
    },
  });
  return {
    sink,
    chunks,
    bytes: () => Buffer.concat(chunks),
    /** Completes the slow sink's outstanding write, if any. */
    releaseOne: () => {
      const p = pending;
      pending = undefined;
      p?.();
      return p !== undefined;
    },
  };
}

function data(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

describe('Tee', () => {
  it('gives both sinks identical bytes and finishes after both', async () => {
    const a = collector();
    const b = collector();
    const input = data(300_000);
    const chunks = [input.subarray(0, 1), input.subarray(1, 70_000), input.subarray(70_000)];
    await pipeline(Readable.from(chunks), new Tee(a.sink, b.sink));
    // Buffer.equals: vitest's deep equality walks large buffers byte by byte, slowly.
    expect(a.bytes().equals(input)).toBe(true);
    expect(b.bytes().equals(input)).toBe(true);
    expect(a.sink.writableFinished && b.sink.writableFinished).toBe(true);
  });

  it('advances at the pace of the slower sink (backpressure)', async () => {
    const fast = collector();
    const slow = collector({ slow: true, highWaterMark: 1 });
    const tee = new Tee(fast.sink, slow.sink);
    const chunk = data(64 * 1024);
    // Write until the tee pushes back. The slow sink holds its first write, so the tee holds its
    // first chunk, buffers up to its highWaterMark (1 MiB) and then says stop.
    let accepted = 0;
    while (tee.write(chunk)) {
      accepted++;
      expect(accepted).toBeLessThan(100);
    }
    await tick();
    expect(accepted).toBeGreaterThan(0);
    // Neither sink got ahead of the other: both have the first chunk only.
    expect(fast.chunks).toHaveLength(1);
    expect(slow.chunks).toHaveLength(1);
    // Release the slow sink one write at a time: the fast one never runs more than a chunk ahead.
    let drained = false;
    tee.once('drain', () => (drained = true));
    while (!drained) {
      slow.releaseOne();
      await tick();
      expect(fast.chunks.length - slow.chunks.length).toBeLessThanOrEqual(1);
    }
    const ended = new Promise<void>((resolve, reject) => {
      tee.once('error', reject);
      tee.end(() => resolve());
    });
    while (!tee.writableFinished) {
      slow.releaseOne();
      await tick();
    }
    await ended;
    expect(fast.chunks).toHaveLength(accepted + 1);
    expect(fast.bytes().equals(slow.bytes())).toBe(true);
  });

  it('fails when one sink fails a write, destroys the other, and raises no unhandled error', async () => {
    const bad = collector({ failAt: 2 });
    const good = collector();
    const tee = new Tee(bad.sink, good.sink);
    const err = await pipeline(Readable.from([data(10), data(10), data(10)]), tee).catch((e: unknown) => e);
    expect((err as Error).message).toBe('disk full');
    expect(good.sink.destroyed).toBe(true);
    expect(good.sink.writableFinished).toBe(false);
    await tick();
  });

  it('fails when a sink errors on its own, outside a write', async () => {
    const a = collector();
    const b = collector();
    const tee = new Tee(a.sink, b.sink);
    const failed = new Promise((resolve) => tee.once('error', resolve));
    b.sink.destroy(new Error('unpacker refused an entry'));
    expect(((await failed) as Error).message).toBe('unpacker refused an entry');
    expect(a.sink.destroyed).toBe(true);
  });

  it('fails, and never finishes, when a sink fails while ending (the blob commit)', async () => {
    const committing = collector({ failFinal: true });
    const other = collector();
    const tee = new Tee(committing.sink, other.sink);
    let finished = false;
    tee.on('finish', () => (finished = true));
    const err = await pipeline(Readable.from([data(100)]), tee).catch((e: unknown) => e);
    expect((err as Error | undefined)?.message).toBe('commit failed');
    await tick();
    expect(finished).toBe(false);
  });
});
