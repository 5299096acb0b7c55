import { HostpullError, isErrorCode } from '../errors.js';
import type { CatalogEntries, CatalogEntry } from '../server/index.js';

export interface CatalogClientOptions {
  /** Server base URL (`http://127.0.0.1:5055`) or `host:port` (then http). */
  server: string;
  /** Bearer token for writes. */
  token?: string | undefined;
}

/** Client of the server's catalog API (/hostpull/v1/catalog), used by `publish` and `catalog`. */
export class CatalogClient {
  readonly #base: string;
  readonly #token: string | undefined;

  constructor(options: CatalogClientOptions) {
    const s = options.server.replace(/\/+$/, '');
    this.#base = /^https?:\/\//i.test(s) ? s : `http://${s}`;
    this.#token = options.token;
  }

  async #call(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<unknown> {
    const headers: Record<string, string> = {};
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.#base}/hostpull/v1/catalog${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), ...(signal ? { signal } : {}) });
    } catch (err) {
      throw new HostpullError('SERVER_UNAVAILABLE', `cannot reach hostpull server ${this.#base}: ${(err as Error).message}`, { cause: err, hint: 'is `hostpull serve` running there?' });
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const e = (json as { errors?: Array<{ code?: string; message?: string; detail?: unknown }> } | undefined)?.errors?.[0];
      const detail = typeof e?.detail === 'object' && e.detail !== null ? (e.detail as Record<string, unknown>) : {};
      // The server's OCI code is one of ours when it passed one on (TAG_INVALID, UNAUTHORIZED…).
      throw new HostpullError(isErrorCode(e?.code) ? e.code : 'SERVER_ERROR', `${method} ${this.#base}/hostpull/v1/catalog${path}: HTTP ${res.status}: ${e?.message ?? text.slice(0, 200)}`, {
        details: { ...detail, status: res.status },
        ...(res.status === 401 ? { hint: 'pass --token-file with the server\'s token' } : {}),
      });
    }
    return json;
  }

  async list(signal?: AbortSignal): Promise<CatalogEntries> {
    const { entries } = (await this.#call('GET', '', undefined, signal)) as { entries: Record<string, CatalogEntry> };
    return new Map(Object.entries(entries));
  }

  async put(code: string, entry: Partial<CatalogEntry> & { image: string; prefix: string }, signal?: AbortSignal): Promise<CatalogEntry> {
    return ((await this.#call('PUT', `/${encodeURIComponent(code)}`, entry, signal)) as { entry: CatalogEntry }).entry;
  }

  async remove(code: string, signal?: AbortSignal): Promise<void> {
    await this.#call('DELETE', `/${encodeURIComponent(code)}`, undefined, signal);
  }
}
