import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { contentCrc32 } from '../../../src/archive/content-crc.js';
import { crc32 as nativeCrc32, isNativeAvailable } from '../../../src/native/index.js';

describe('contentCrc32 (the tree checksum CRC-32 of file contents)', () => {
  it('is built into the addon here', () => {
    expect(isNativeAvailable()).toBe(true);
  });

  it("gives zlib's values, continued across pieces cut anywhere, for every length", () => {
    // A tree checksum recorded with one implementation is checked with whichever the node has.
    const data = randomBytes(300_000);
    for (const length of [0, 1, 7, 15, 16, 63, 64, 65, 255, 256, 4095, 4096, 100_001, 300_000]) {
      expect(nativeCrc32(data.subarray(0, length), 0), `length ${length}`).toBe(crc32(data.subarray(0, length)));
    }
    let crc = 0;
    let at = 0;
    for (const cut of [1, 3, 64, 1000, 65_536, 5, 0, 200_000, 100_000]) {
      crc = contentCrc32(data.subarray(at, Math.min(at + cut, data.length)), crc);
      at = Math.min(at + cut, data.length);
    }
    expect(at).toBe(data.length);
    expect(crc).toBe(crc32(data));
    // A running value with the top bit set goes in and out unchanged in meaning.
    const high = crc32(Buffer.from('x'));
    expect(high).toBeGreaterThan(2 ** 31);
    expect(nativeCrc32(data, high)).toBe(crc32(data, high));
  });

  it('refuses what is not bytes', () => {
    expect(() => nativeCrc32('text' as unknown as Uint8Array, 0)).toThrow(/expected \(Uint8Array, number\)/);
  });
});
