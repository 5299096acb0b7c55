import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { HostpullError } from '../errors.js';
import { readBounded } from '../util/index.js';
import { toOciError, type OciErrorResponse } from './oci-error.js';

export const API_VERSION_HEADER = { 'Docker-Distribution-API-Version': 'registry/2.0' };

/** Sends a JSON body; HEAD gets the same headers (Content-Length included) without the body. */
export function sendJson(req: IncomingMessage, res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const bytes = Buffer.from(JSON.stringify(body));
  sendBytes(req, res, status, bytes, { 'Content-Type': 'application/json', ...headers });
}

export function sendBytes(req: IncomingMessage, res: ServerResponse, status: number, bytes: Buffer, headers: Record<string, string>): void {
  res.writeHead(status, { ...API_VERSION_HEADER, ...headers, 'Content-Length': String(bytes.length) });
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

export function sendError(req: IncomingMessage, res: ServerResponse, e: OciErrorResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(req, res, e.status, e.body, e.headers);
}

/** Reads a request body up to `limit` bytes (catalog API bodies are small JSON). */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const body = await readBounded(req, limit);
  if (!body) throw new HostpullError('TOO_LARGE', `request body exceeds ${limit} bytes`);
  return body;
}

/**
 * Answers what node:http rejects before our handler runs (header overflow, malformed requests)
 * with OCI error JSON instead of Node's bare status line.
 */
export function writeClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const e = toOciError(
    err.code === 'HPE_HEADER_OVERFLOW' ? new HostpullError('HEADERS_TOO_LARGE', 'request headers too large') : new HostpullError('BAD_REQUEST', 'malformed HTTP request'),
  );
  const body = JSON.stringify(e.body);
  const reason = e.status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
  socket.end(`HTTP/1.1 ${e.status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
