import { crc32 as zlibCrc32 } from 'node:zlib';
import { crc32 as nativeCrc32, isNativeAvailable } from '../native/index.js';

/**
 * `crc` continued over `data`: the CRC-32 of file contents in a tree checksum (tree-checksum.ts),
 * computed while an unpack writes every file. The addon's (ISA-L's folding code, ~37 GB/s here)
 * where it is built, else zlib's (~4 GB/s, ~0.1 s of CPU of a cold pull of 346 MB of files); both
 * give the same values, so a checksum recorded by one is checked by the other.
 */
export function contentCrc32(data: Uint8Array, crc: number): number {
  return isNativeAvailable() ? nativeCrc32(data, crc) : zlibCrc32(data, crc);
}
