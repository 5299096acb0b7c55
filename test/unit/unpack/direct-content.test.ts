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

  it.each([
    // Each direct write seems to take half a second: ~2 MiB/s, far below the bound. Judged after
    // the first 8 MiB; nothing direct after that, nor in the next file.
    { device: 'slower than the bound', nsPerClockRead: 500_000_000n, directBytes: 8 * MiB, nextDirect: false },
    // 1 MiB per millisecond: ~1 GB/s, ten times the bound.
    { device: 'faster than the bound', nsPerClockRead: 500_000n, directBytes: 12 * MiB, nextDirect: true },
  ])('a device $device: the bytes unchanged, $directBytes of them direct', async ({ nsPerClockRead, directBytes, nextDirect }) => {
    const dir = await tempDir();
    let clock = 0n;
    const direct = new DirectContent({ minBytesPerSecond: 100 * MiB, now: () => (clock += nsPerClockRead) });
    const big = randomBytes(12 * MiB + 5);
    expect(direct.begin(create(join(dir, 'big')))).toBe(true);
    expect(direct.active).toBe(true);
    writeInPieces(direct, big);
    direct.end();
    expect(direct.active).toBe(false);
    expect(readFileSync(join(dir, 'big')).equals(big)).toBe(true);
    expect(direct.directBytes).toBe(directBytes);
    expect(direct.begin(create(join(dir, 'next')))).toBe(nextDirect);
    direct.close();
  });

  it('a descriptor that cannot be opened again for direct writes (a directory here) is refused, and so is every later one', async () => {
    const dir = await tempDir();
    const dirFd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
    open.push(dirFd);
    const direct = new DirectContent({ minBytesPerSecond: 0 });
    expect(direct.begin(dirFd)).toBe(false);
    expect(direct.active).toBe(false);
    expect(direct.begin(create(join(dir, 'file')))).toBe(false);
  });
});
