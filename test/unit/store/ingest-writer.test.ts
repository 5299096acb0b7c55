import { randomBytes } from 'node:crypto';
import { openSync, readFileSync, writeFileSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { alignedBuffer } from '../../../src/native/index.js';
import { IngestWriter, type DirectWrites } from '../../../src/store/ingest-writer.js';
import { useTempDir } from '../../helpers/tmp.js';

const BLOCK = 64 * 1024;

/** Chunks of awkward sizes, as a socket delivers them. */
function chunks(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const sizes = [1, 4095, 70_001, 13, 65_536, 200_003];
  for (let i = 0, k = 0; i < data.length; k++) {
    const n = Math.min(sizes[k % sizes.length]!, data.length - i);
    out.push(data.subarray(i, i + n));
    i += n;
  }
  return out;
}

function directOn(path: string, buffers: [Buffer, Buffer]): DirectWrites {
  return { fd: openSync(path, fsc.O_WRONLY | fsc.O_DIRECT), buffers };
}

describe('IngestWriter', () => {
  const tmp = useTempDir('ingest-writer');

  for (const mode of ['buffered', 'O_DIRECT', 'O_DIRECT refused (EINVAL)'] as const) {
    it(`${mode}: writes every byte in order from the resume offset, then commits once`, async () => {
      const path = join(await tmp(), 'partial');
      const prefix = randomBytes(12_345);
      writeFileSync(path, prefix);
      const data = randomBytes(5 * BLOCK + 777);
      const fd = openSync(path, fsc.O_WRONLY);
      // Unaligned memory makes every direct write fail with EINVAL: the writer must fall back.
      const unaligned = () => Buffer.alloc(BLOCK + 1).subarray(1);
      const direct =
        mode === 'buffered'
          ? undefined
          : directOn(path, mode === 'O_DIRECT' ? [alignedBuffer(BLOCK, 4096), alignedBuffer(BLOCK, 4096)] : [unaligned(), unaligned()]);
      let commits = 0;
      const writer = new IngestWriter(fd, async () => void commits++, { offset: prefix.length, ...(direct ? { direct } : {}) });
      await pipeline(Readable.from(chunks(data)), writer);
      expect(commits).toBe(1);
      expect(readFileSync(path).equals(Buffer.concat([prefix, data]))).toBe(true);
    });
  }

  it('fsyncs before the commit unless not durable (a blob kept only until its layer is committed)', async () => {
    // fsync on /dev/null fails (EINVAL) where writes succeed: a commit proves no fsync was asked for.
    const data = randomBytes(3 * BLOCK);
    const durable = new IngestWriter(openSync('/dev/null', fsc.O_WRONLY), async () => expect.unreachable('no commit after a failed fsync'));
    await expect(pipeline(Readable.from(chunks(data)), durable)).rejects.toMatchObject({ code: 'EINVAL', syscall: 'fsync' });
    let commits = 0;
    const transient = new IngestWriter(openSync('/dev/null', fsc.O_WRONLY), async () => void commits++, { durable: false });
    await pipeline(Readable.from(chunks(data)), transient);
    expect(commits).toBe(1);
  });

  it('O_DIRECT: a destroy keeps every byte received so far (a resume starts right after them)', async () => {
    const path = join(await tmp(), 'partial');
    writeFileSync(path, '');
    const data = randomBytes(3 * BLOCK + 5_000);
    const writer = new IngestWriter(openSync(path, fsc.O_WRONLY), async () => expect.unreachable('no commit after a failure'), {
      direct: directOn(path, [alignedBuffer(BLOCK, 4096), alignedBuffer(BLOCK, 4096)]),
    });
    const parts = chunks(data);
    let sent = 0;
    for (const p of parts.slice(0, 5)) {
      await new Promise<void>((resolve, reject) => writer.write(p, (err) => (err ? reject(err) : resolve())));
      sent += p.length;
    }
    const failed = new Promise((resolve) => writer.once('error', resolve));
    const closed = new Promise((resolve) => writer.once('close', resolve));
    writer.destroy(new Error('the connection broke'));
    expect(await failed).toMatchObject({ message: 'the connection broke' });
    await closed;
    expect(sent).toBeGreaterThan(BLOCK);
    expect(readFileSync(path).equals(data.subarray(0, sent))).toBe(true);
  });
});
