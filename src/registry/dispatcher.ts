import type { Readable } from 'node:stream';

/** A response body: read it, pipe it, or dump it (so its connection can be reused). */
export type ResponseBody = Readable & {
  /** Reads and drops the rest of the body, up to `limit` bytes; a longer body closes its connection instead. */
  dump(opts?: { limit?: number }): Promise<void>;
};

/** One HTTP exchange, as the registry transport asks for it (the shape of undici's `request` options it uses). */
export interface DispatchRequest {
  /** `http://host:port` or `https://host:port`. */
  origin: string;
  /** Path and query. */
  path: string;
  method: string;
  headers: Record<string, string>;
  body?: Buffer | Readable | undefined;
  signal?: AbortSignal | undefined;
  /** Milliseconds from sending the request to the end of the response headers; 0 for none. */
  headersTimeout: number;
  /** Milliseconds the body may go without a byte while its reader waits for one; 0 for none. */
  bodyTimeout: number;
}

export interface DispatchResponse {
  statusCode: number;
  /** Lower-case names; a header sent more than once is an array. */
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
}

/**
 * The HTTP client under the registry transport: undici's Agent (the default, for the processes
 * that live: the daemon, the server, the lazy helper), or NodeHttpDispatcher (node-http-dispatcher.ts,
 * for a command that sends a few requests and exits).
 */
export interface RegistryDispatcher {
  request(req: DispatchRequest): Promise<DispatchResponse>;
  close(): Promise<void>;
}

/** Which HTTP client a registry client uses (see {@link RegistryDispatcher}). */
export type HttpClientKind = 'undici' | 'node';
