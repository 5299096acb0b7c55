/**
 * Compares two strings in the byte order of their UTF-8 encodings (what `LC_ALL=C sort`, GNU
 * tar's `--sort=name` and OCI layer writers use), without encoding them: UTF-16 code units sort
 * the same way except that surrogates (astral characters, 4 UTF-8 bytes) sort below U+E000–U+FFFF
 * (3 UTF-8 bytes) in UTF-16 and above them in UTF-8. Sorting 13.6k names of Go 1.19's tree with
 * `Buffer.compare(Buffer.from(a), Buffer.from(b))` allocated two buffers per comparison: 30 ms.
 */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      const xSurrogate = x <= 0xdfff;
      if (xSurrogate !== y <= 0xdfff) return xSurrogate ? 1 : -1;
    }
    return x - y;
  }
  return a.length - b.length;
}
