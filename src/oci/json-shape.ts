import { isDigest, type Digest } from './digest.js';

/**
 * Reading parsed JSON field by field, for the documents every pull reads (manifests, configs,
 * TOCs): each reader returns the value typed, or throws a {@link ShapeError} naming the path of the
 * field that is wrong (`layers.0.digest`). Objects are rebuilt from the fields asked for, so keys a
 * document carries beyond them are dropped, not passed on. Written out rather than taken from a
 * schema library because loading one (~25 ms of compiling) was a tenth of a warm pull.
 */

export class ShapeError extends Error {
  constructor(
    readonly path: string,
    readonly why: string,
  ) {
    super(`${path || '(root)'}: ${why}`);
  }
}

function at(path: string, key: string | number): string {
  return path ? `${path}.${key}` : String(key);
}

export function object(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ShapeError(path, v === undefined ? 'required' : 'not an object');
  return v as Record<string, unknown>;
}

export function string(v: unknown, path: string, options: { nonEmpty?: boolean } = {}): string {
  if (typeof v !== 'string') throw new ShapeError(path, v === undefined ? 'required' : 'not a string');
  if (options.nonEmpty && v.length === 0) throw new ShapeError(path, 'empty');
  return v;
}

/** A whole number from 0 to 2^53 - 1 (a size, an offset). */
export function natural(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ShapeError(path, v === undefined ? 'required' : 'not a whole number ≥ 0');
  return v;
}

/** A `sha256:`/`sha512:` digest in canonical form. */
export function digest(v: unknown, path: string): Digest {
  if (typeof v !== 'string' || !isDigest(v)) throw new ShapeError(path, v === undefined ? 'required' : 'not a valid sha256/sha512 digest');
  return v;
}

export function array<T>(v: unknown, path: string, item: (v: unknown, path: string) => T): T[] {
  if (!Array.isArray(v)) throw new ShapeError(path, v === undefined ? 'required' : 'not an array');
  return v.map((x, i) => item(x, at(path, i)));
}

export function record<T>(v: unknown, path: string, value: (v: unknown, path: string) => T): Record<string, T> {
  const o = object(v, path);
  const out: Record<string, T> = {};
  for (const [k, x] of Object.entries(o)) out[k] = value(x, at(path, k));
  return out;
}

/** Field `key` of `o` read by `read`, or absent (undefined) when `o` has no such field; `null` only if `nullable`. */
export function field<T>(o: Record<string, unknown>, key: string, path: string, read: (v: unknown, path: string) => T): T;
export function field<T>(o: Record<string, unknown>, key: string, path: string, read: (v: unknown, path: string) => T, presence: 'optional'): T | undefined;
export function field<T>(o: Record<string, unknown>, key: string, path: string, read: (v: unknown, path: string) => T, presence: 'nullable'): T | null | undefined;
export function field<T>(o: Record<string, unknown>, key: string, path: string, read: (v: unknown, path: string) => T, presence?: 'optional' | 'nullable'): T | null | undefined {
  const v = o[key];
  if (presence && v === undefined) return undefined;
  if (presence === 'nullable' && v === null) return null;
  return read(v, at(path, key));
}

/** Copies the fields that are present (not undefined) into a new object: the document's own shape, minus what it did not say. */
export function present<T extends Record<string, unknown>>(fields: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) out[k] = v;
  return out as T;
}

/** Runs a reader, turning its ShapeError into the document's own error (`fail(path: why)`). */
export function checked<T>(read: () => T, fail: (why: string) => Error): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ShapeError) throw fail(err.message);
    throw err;
  }
}
