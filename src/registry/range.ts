import { RegistryError } from './errors.js';

/** What to do with the answer to a `Range: bytes=<offset>-` blob request. */
export type RangeDecision =
  | { kind: 'resume'; offset: number; totalSize?: number }
  | { kind: 'restart'; totalSize?: number }
  | { kind: 'error'; reason: string };

/**
 * `Content-Range: bytes <first>-<last>/<complete|*>` (RFC 9110 §14.4). Returns undefined when
 * it is not a satisfied byte range.
 */
export function parseContentRange(value: string | undefined): { first: number; last: number; total?: number } | undefined {
  if (!value) return undefined;
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (!m) return undefined;
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (last < first) return undefined;
  const out: { first: number; last: number; total?: number } = { first, last };
  if (m[3] !== '*') out.total = Number(m[3]);
  return out;
}

/**
 * A 206 is accepted only when its range starts exactly at the offset we asked for (anything else
 * would splice the wrong bytes into a partial download); a 200 means the server ignored `Range`
 * and sends the whole blob, so the caller restarts from 0.
 */
export function decideRangeResponse(
  status: number,
  offset: number,
  contentRange: string | undefined,
  contentLength: number | undefined,
  /** Last byte asked for (`Range: bytes=<offset>-<end>`); the rest of the blob when absent. */
  end?: number,
): RangeDecision {
  if (status === 200) {
    const d: RangeDecision = { kind: 'restart' };
    if (contentLength !== undefined) d.totalSize = contentLength;
    return d;
  }
  if (status === 206) {
    const r = parseContentRange(contentRange);
    if (!r) return { kind: 'error', reason: `206 with unusable Content-Range ${JSON.stringify(contentRange ?? null)}` };
    if (r.first !== offset) return { kind: 'error', reason: `206 starts at byte ${r.first}, asked for ${offset}` };
    if (end !== undefined) {
      if (r.last !== end) return { kind: 'error', reason: `206 ends at byte ${r.last}, asked for bytes ${offset}-${end}` };
    } else if (r.total !== undefined && r.last !== r.total - 1) {
      return { kind: 'error', reason: `206 ends at byte ${r.last} of ${r.total}, asked for the rest` };
    }
    const d: RangeDecision = { kind: 'resume', offset };
    if (r.total !== undefined) d.totalSize = r.total;
    return d;
  }
  return { kind: 'error', reason: `unexpected HTTP ${status} to a range request` };
}

export function rangeError(method: string, url: string, reason: string, status: number): RegistryError {
  return new RegistryError('RANGE_NOT_SATISFIED', `${method} ${url}: ${reason}`, {
    status,
    hint: 'the partial download is discarded; retry to fetch the blob from the start',
  });
}
