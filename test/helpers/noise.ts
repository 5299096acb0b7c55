import { createHash } from 'node:crypto';

/** Deterministic incompressible bytes (a sha256 chain): gzip leaves them at their size. */
export function noise(bytes: number, seed: string): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  let h = createHash('sha256').update(seed).digest();
  for (let o = 0; o < bytes; o += 32) {
    h = createHash('sha256').update(h).digest();
    h.copy(out, o, 0, Math.min(32, bytes - o));
  }
  return out;
}
