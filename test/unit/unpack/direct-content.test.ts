import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DirectContent } from '../../../src/unpack/direct-content.js';
import { useTempDir } from '../../helpers/tmp.js';

const tempDir = useTempDir('direct-content');
const MiB = 1024 * 1024;
const open: number[] = [];
afterEach(() => {
  for (const fd of open.splice(0)) closeSync(fd);
});

function create(path: string): number {
  const fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  open.push(fd);
  return fd;
}

/** Writes `content` in pieces of 1 byte to 300 KB through `direct`, as the tar reader hands them over. */
function writeInPieces(direct: DirectContent, content: Buffer): void {
  let off = 0;
  for (let i = 0; off < content.length; i++) {
    const n = Math.min(content.length - off, [1, 4095, 300_000, 65_536, 7, 1 << 20][i % 6]!);
    direct.write(content.subarray(off, off + n));
    off += n;
  }
}

describe('DirectContent', () => {
  it.each([1, 4095, 4096, 4097, MiB - 1, MiB, MiB + 1, 3 * MiB + 12_345])('a file of %i bytes holds exactly what was written, its aligned part written direct', async (size) => {
    const dir = await tempDir();
    const path = join(dir, 'f');
    const content = randomBytes(size);
    const direct = new DirectContent({ minBytesPerSecond: 0 });
    expect(direct.begin(create(path))).toBe(true);
    writeInPieces(direct, content);
    direct.end();
    expect(readFileSync(path).equals(content)).toBe(true);
    expect(direct.directBytes).toBe(size - (size % 4096));
  });

  it('several files in a row reuse it, each from its own offset 0', async () => {
    const dir = await tempDir();
    const direct = new DirectContent({ minBytesPerSecond: 0 });
    const contents = [randomBytes(2 * MiB + 3), randomBytes(5000), randomBytes(MiB)];
    contents.forEach((content, i) => {
      expect(direct.begin(create(join(dir, `f${i}`)))).toBe(true);
      writeInPieces(direct, content);
      direct.end();
    });
    contents.forEach((content, i) => expect(readFileSync(join(dir, `f${i}`)).equals(content)).toBe(true));
  });

  it('a device slower than the bound: the rest of the layer goes through the page cache, the bytes unchanged', async () => {
    const dir = await tempDir();
    // Each direct write seems to take a second: 1 MiB/s, far below the bound.
    let clock = 0n;
    const direct = new DirectContent({ minBytesPerSecond: 100 * MiB, now: () => (clock += 500_000_000n) });
    const big = randomBytes(12 * MiB + 5);
    expect(direct.begin(create(join(dir, 'big')))).toBe(true);
    writeInPieces(direct, big);
    direct.end();
    expect(readFileSync(join(dir, 'big')).equals(big)).toBe(true);
    // Judged after the first 8 MiB; nothing direct after that.
    expect(direct.directBytes).toBe(8 * MiB);
    expect(direct.begin(create(join(dir, 'next')))).toBe(false);
  });

  it('a device at the bound or faster keeps direct writes on', async () => {
    const dir = await tempDir();
    let clock = 0n;
    // 1 MiB per millisecond: about 1 GB/s, against a bound of 100 MiB/s.
    const direct = new DirectContent({ minBytesPerSecond: 100 * MiB, now: () => (clock += 500_000n) });
    const big = randomBytes(12 * MiB);
    expect(direct.begin(create(join(dir, 'big')))).toBe(true);
    writeInPieces(direct, big);
    direct.end();
    expect(readFileSync(join(dir, 'big')).equals(big)).toBe(true);
    expect(direct.directBytes).toBe(12 * MiB);
    expect(direct.begin(create(join(dir, 'next')))).toBe(true);
    direct.end();
  });

  it('a descriptor that cannot be opened again for direct writes (a directory here) is refused, and so is every later one', async () => {
    const dir = await tempDir();
    const dirFd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
    open.push(dirFd);
    const direct = new DirectContent({ minBytesPerSecond: 0 });
    expect(direct.begin(dirFd)).toBe(false);
    expect(direct.begin(create(join(dir, 'file')))).toBe(false);
  });
});
