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
 * The HTTP client under the registry transport: undici's Agent (the default: the server, which
 * sends many requests for its life), or NodeHttpDispatcher (node-http-dispatcher.ts: the CLI
 * working in-process, the daemon, whose pulls send a few requests each, and the lazy helper,
 * whose requests come while a container starts beside it and should not wait for undici to load).
 */
export interface RegistryDispatcher {
  request(req: DispatchRequest): Promise<DispatchResponse>;
  close(): Promise<void>;
}

/**
 * A kept-alive connection that stays idle this long is closed by the client, sooner when the
 * server's `Keep-Alive: timeout=N` says it closes sooner (both clients read it). Without a bound, a
 * long-lived process (the daemon) would reuse a connection that a firewall or load balancer on
 * the way dropped silently meanwhile, and its next request would wait for the headers timeout.
 */
export const KEEP_ALIVE_IDLE_MS = 30_000;

/** Which HTTP client a registry client uses (see {@link RegistryDispatcher}). */
export type HttpClientKind = 'undici' | 'node';
