/**
 * A parsed `Range` header against a blob of `size` bytes (RFC 9110 §14). We serve a single range;
 * a header we do not understand or with several ranges is ignored (the whole blob, 200), which the
 * RFC allows. `unsatisfiable` means 416.
 */
export type RangeResult = { kind: 'none' } | { kind: 'range'; start: number; end: number } | { kind: 'unsatisfiable' };

export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'none' };
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'none' };
  if (m[1]!.length > 15 || m[2]!.length > 15) return { kind: 'unsatisfiable' };
  if (m[1] === '') {
    // Suffix range: the last N bytes.
    const n = Number(m[2]);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  if (start >= size) return { kind: 'unsatisfiable' };
  let end = m[2] === '' ? size - 1 : Number(m[2]);
  if (end < start) return { kind: 'none' };
  if (end >= size) end = size - 1;
  return { kind: 'range', start, end };
}
