import { readBounded } from '../util/index.js';
import type { ResponseBody } from './dispatcher.js';

export type { ResponseBody };

/** Drains a body we do not read, so its connection can be reused (or closes it if large). */
export async function dumpBody(body: ResponseBody): Promise<void> {
  try {
    await body.dump({ limit: 128 * 1024 });
  } catch {
    // The connection is gone anyway; nothing to reuse.
  }
}

/** Up to `max` bytes of an error body as text (error bodies are diagnostics, never large). */
export async function readErrorText(body: ResponseBody, max = 64 * 1024): Promise<string> {
  try {
    const buf = await readBounded(body, max);
    return buf ? buf.toString('utf8') : '';
  } catch {
    return '';
  }
}

export function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function contentLength(headers: Record<string, string | string[] | undefined>): number | undefined {
  const v = headerValue(headers, 'content-length');
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v);
}
