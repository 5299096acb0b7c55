/**
 * A counting, fault-injecting HTTP reverse proxy for tests: sits between a client under test and
 * a registry, records every request with the response body bytes it actually sent, and can
 * corrupt, truncate, throttle, cut, stall or refuse chosen responses.
 */
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ProxyRequest {
  method: string;
  /** Request URI, query included. */
  path: string;
  /** Status sent to the client; 0 when the socket was reset before any response. */
  status: number;
  /** Response body bytes written to the client socket (grows while a response streams). */
  bytes: number;
  /** The request's Range header, if any. */
  range?: string;
  /** The request headers as received (Authorization included: tests may assert on it). */
  headers: Record<string, string | string[] | undefined>;
  /** When the request arrived (Date.now()). */
  at: number;
  /** When the connection to the client closed, if it has (Date.now()). */
  closedAt?: number;
  /** For a stall: when the last body byte before the silence was sent. */
  stalledAt?: number;
}

export type Fault =
  /** Flip one byte (the middle one) of the body; headers unchanged. */
  | 'corrupt'
  /** Announce the full Content-Length, send the first half of the body, then destroy the socket. */
  | 'truncate'
  /** Send only the first half of the body with a Content-Length that matches it (a "valid" short body). */
  | 'wrong-length'
  /** Answer this status without asking upstream (OCI error JSON body), with Retry-After if given. */
  | { status: number; retryAfter?: string }
  /** Destroy the client socket before any response. */
  | 'reset'
  /** Stream the body at this rate. */
  | { throttleBytesPerSec: number }
  /** Send headers and N body bytes, then destroy the socket (no effect if the body is shorter). */
  | { cutAfterBytes: number }
  /**
   * Send headers and N body bytes, then go silent with the connection open (a registry that
   * hangs mid-blob) until the client gives up and closes it, or the proxy closes.
   */
  | { stallAfterBytes: number };

export interface FaultRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
}

export type FaultMatcher = (req: FaultRequest) => Fault | undefined;

export interface TestProxy {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT` */
  host: string;
  /** Every request so far, in arrival order; an entry appears when its response starts. */
  requests: ProxyRequest[];
  /** Replaces the matcher; called once per request, a Fault applies to that request only. */
  setFault(match: FaultMatcher): void;
  clearFaults(): void;
  close(): Promise<void>;
}

// Hop-by-hop headers (RFC 9110 §7.6.1) are about one connection and are not forwarded.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    res.write(chunk, (err) => (err ? reject(err) : resolve()));
  });
}

/** Backpressure wait that also ends when the client goes away (no drain would ever come). */
function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

async function readAll(stream: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

class FaultProxy implements TestProxy {
  url = '';
  host = '';
  requests: ProxyRequest[] = [];
  #upstream: URL;
  #match: FaultMatcher | undefined;
  #agent = new Agent({ keepAlive: true });
  /** The requests of each client connection, stamped when it closes (one listener per connection, not per request). */
  #byConnection = new WeakMap<Socket, ProxyRequest[]>();
  #server = createServer((req, res) => {
    this.#handle(req, res).catch(() => res.destroy());
  });

  constructor(upstreamUrl: string) {
    this.#upstream = new URL(upstreamUrl);
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = this.#server.address() as AddressInfo;
    this.host = `127.0.0.1:${port}`;
    this.url = `http://${this.host}`;
  }

  setFault(match: FaultMatcher): void {
    this.#match = match;
  }

  clearFaults(): void {
    this.#match = undefined;
  }

  async close(): Promise<void> {
    this.#match = undefined;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    this.#agent.destroy();
    await closed;
  }

  /** Upload Locations that name the upstream would send the client around the proxy. */
  #rewriteLocation(location: string): string {
    try {
      const u = new URL(location);
      if (u.origin !== this.#upstream.origin) return location;
      return `${this.url}${u.pathname}${u.search}${u.hash}`;
    } catch {
      return location; // relative: already resolves against the proxy
    }
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const headers = { ...req.headers };
    const entry: ProxyRequest = { method: req.method ?? 'GET', path: req.url ?? '/', status: 0, bytes: 0, headers, at: Date.now() };
    let onConnection = this.#byConnection.get(req.socket);
    if (!onConnection) {
      const entries: ProxyRequest[] = (onConnection = []);
      this.#byConnection.set(req.socket, entries);
      req.socket.once('close', () => {
        const now = Date.now();
        for (const e of entries) e.closedAt ??= now;
      });
    }
    onConnection.push(entry);
    if (typeof headers.range === 'string') entry.range = headers.range;
    const fault = this.#match?.({ method: entry.method, path: entry.path, headers });

    if (fault === 'reset') {
      this.requests.push(entry);
      req.socket.destroy();
      return;
    }
    if (typeof fault === 'object' && 'status' in fault) {
      req.resume();
      const body = Buffer.from(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: `injected fault: HTTP ${fault.status}` }] }));
      const h: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(body.length) };
      if (fault.retryAfter !== undefined) h['retry-after'] = fault.retryAfter;
      entry.status = fault.status;
      this.requests.push(entry);
      res.writeHead(fault.status, h);
      if (entry.method !== 'HEAD') entry.bytes = body.length;
      res.end(entry.method === 'HEAD' ? undefined : body);
      return;
    }

    const upReq = httpRequest({
      agent: this.#agent,
      host: this.#upstream.hostname,
      port: this.#upstream.port,
      method: entry.method,
      path: entry.path,
      headers: { ...forwardable(req.headers), host: this.#upstream.host },
    });
    res.on('close', () => {
      if (!res.writableFinished) upReq.destroy();
    });
    req.pipe(upReq);
    let upRes: IncomingMessage;
    try {
      upRes = await new Promise<IncomingMessage>((resolve, reject) => {
        upReq.once('response', resolve);
        upReq.once('error', reject);
      });
    } catch (err) {
      entry.status = 502;
      this.requests.push(entry);
      const body = Buffer.from(`proxy: upstream error: ${(err as Error).message}\n`);
      entry.bytes = body.length;
      res.writeHead(502, { 'content-type': 'text/plain', 'content-length': String(body.length) });
      res.end(body);
      return;
    }

    const outHeaders = forwardable(upRes.headers);
    if (typeof outHeaders['location'] === 'string') outHeaders['location'] = this.#rewriteLocation(outHeaders['location']);
    entry.status = upRes.statusCode ?? 502;
    const status = entry.status;

    if (fault === 'corrupt' || fault === 'truncate' || fault === 'wrong-length') {
      // Buffered: these faults need the whole body (and its length) before anything is sent.
      const body = await readAll(upRes);
      this.requests.push(entry);
      if (fault === 'corrupt') {
        const mid = body.length >> 1;
        if (body.length > 0) body[mid] = body[mid]! ^ 0xff;
        res.writeHead(status, { ...outHeaders, 'content-length': String(body.length) });
        entry.bytes = body.length;
        res.end(body);
      } else if (fault === 'wrong-length') {
        const part = body.subarray(0, body.length >> 1);
        res.writeHead(status, { ...outHeaders, 'content-length': String(part.length) });
        entry.bytes = part.length;
        res.end(part);
      } else {
        const part = body.subarray(0, body.length >> 1);
        // The upstream's length when it sent one, so the client expects more than it gets.
        const announced = upRes.headers['content-length'] ?? String(body.length);
        res.writeHead(status, { ...outHeaders, 'content-length': announced });
        res.flushHeaders();
        entry.bytes = part.length;
        if (part.length > 0) await write(res, part);
        res.destroy();
      }
      return;
    }

    this.requests.push(entry);
    res.writeHead(status, outHeaders);
    if (typeof fault === 'object' && 'cutAfterBytes' in fault) {
      const limit = Math.max(0, fault.cutAfterBytes);
      res.flushHeaders();
      for await (const c of upRes) {
        const chunk = c as Buffer;
        const room = limit - entry.bytes;
        if (chunk.length >= room) {
          const part = chunk.subarray(0, room);
          entry.bytes += part.length;
          if (part.length > 0) await write(res, part);
          upRes.destroy();
          res.destroy();
          return;
        }
        entry.bytes += chunk.length;
        await write(res, chunk);
      }
      res.end();
      return;
    }
    if (typeof fault === 'object' && 'stallAfterBytes' in fault) {
      const limit = Math.max(0, fault.stallAfterBytes);
      res.flushHeaders();
      for await (const c of upRes) {
        const chunk = c as Buffer;
        const part = chunk.subarray(0, limit - entry.bytes);
        entry.bytes += part.length;
        if (part.length > 0) await write(res, part);
        if (entry.bytes >= limit) break;
      }
      upRes.destroy();
      entry.stalledAt = Date.now();
      // Silent from here: nothing more is written, nothing is closed, until the client leaves.
      await new Promise<void>((resolve) => (res.destroyed ? resolve() : res.once('close', () => resolve())));
      return;
    }
    if (typeof fault === 'object' && 'throttleBytesPerSec' in fault) {
      const rate = Math.max(1, fault.throttleBytesPerSec);
      // Slices of 1/20 s worth of bytes, each followed by its share of a second.
      const slice = Math.max(1, Math.floor(rate / 20));
      res.flushHeaders();
      for await (const c of upRes) {
        const chunk = c as Buffer;
        for (let off = 0; off < chunk.length; off += slice) {
          const part = chunk.subarray(off, off + slice);
          entry.bytes += part.length;
          await write(res, part);
          await delay((part.length / rate) * 1000);
        }
      }
      res.end();
      return;
    }
    // Plain pass-through, counting as we go (counted before the write, so a client that has read
    // the whole body always sees the final count).
    for await (const c of upRes) {
      const chunk = c as Buffer;
      entry.bytes += chunk.length;
      if (!res.write(chunk)) await drainOrClose(res);
    }
    res.end();
  }
}

/** Starts a proxy on 127.0.0.1 (port 0) forwarding every method, header and body to upstreamUrl. */
export async function startProxy(upstreamUrl: string): Promise<TestProxy> {
  const proxy = new FaultProxy(upstreamUrl);
  await proxy.listen();
  return proxy;
}
