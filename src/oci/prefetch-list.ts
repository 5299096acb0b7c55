import { HostpullError } from '../errors.js';
import { isDigest, type Digest } from './digest.js';

/**
 * A composite's prefetch list (DESIGN §7): per lazy layer, the spans its first start read, in
 * first-read order. A node that starts the composite lazily fetches them first. Served by
 * `hostpull serve` under /hostpull/v1/prefetch/<composite manifest digest> and kept in the
 * upstream as a referrer of the composite manifest.
 */
export const PREFETCH_ARTIFACT_TYPE = 'application/vnd.hostpull.prefetch.v1+json';
export const PREFETCH_MEDIA_TYPE = 'application/vnd.hostpull.prefetch.v1+json';
/** A list is a hint: bounded so that nobody can make a server store or a node fetch much for it. */
export const MAX_PREFETCH_BYTES = 256 * 1024;
const MAX_SPANS_PER_LAYER = 20_000;

export interface PrefetchList {
  version: 1;
  /** Layer blob digest → span indexes, in the order to fetch them. */
  layers: Record<string, number[]>;
}

/** Parses and checks a prefetch list; throws BAD_REQUEST naming what is wrong. */
export function parsePrefetchList(bytes: Buffer | string, where: string): PrefetchList {
  const bad = (why: string) => new HostpullError('BAD_REQUEST', `${where}: ${why}`, { hint: 'a prefetch list is {"version":1,"layers":{"<layer digest>":[span indexes]}}' });
  if (Buffer.byteLength(bytes) > MAX_PREFETCH_BYTES) throw bad(`larger than ${MAX_PREFETCH_BYTES} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString());
  } catch {
    throw bad('not JSON');
  }
  const o = raw as { version?: unknown; layers?: unknown };
  if (typeof o !== 'object' || o === null || o.version !== 1 || typeof o.layers !== 'object' || o.layers === null || Array.isArray(o.layers)) throw bad('not a version 1 prefetch list');
  const layers: Record<string, number[]> = {};
  for (const [digest, spans] of Object.entries(o.layers as Record<string, unknown>)) {
    if (!isDigest(digest)) throw bad(`${JSON.stringify(digest.slice(0, 80))} is not a digest`);
    if (!Array.isArray(spans) || spans.length > MAX_SPANS_PER_LAYER || !spans.every((i) => Number.isInteger(i) && i >= 0 && i < 10_000_000)) {
      throw bad(`spans of ${digest} must be at most ${MAX_SPANS_PER_LAYER} span indexes`);
    }
    layers[digest] = [...new Set(spans as number[])];
  }
  return { version: 1, layers };
}

export function prefetchListMap(list: PrefetchList): Map<Digest, number[]> {
  return new Map(Object.entries(list.layers) as Array<[Digest, number[]]>);
}
