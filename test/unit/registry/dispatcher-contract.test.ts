import type { Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { DispatchRequest, RegistryDispatcher } from '../../../src/registry/dispatcher.js';
import { NodeHttpDispatcher } from '../../../src/registry/node-http-dispatcher.js';
import { loadDispatcherClass } from '../../../src/util/index.js';

/**
 * The contract the registry transport has with its HTTP client (registry/dispatcher.ts), held
 * over both: undici's Agent and NodeHttpDispatcher. Real sockets on 127.0.0.1.
 */
const clients: Record<string, (idleMs: number) => Promise<RegistryDispatcher>> = {
  undici: async (idleMs) => new (await loadDispatcherClass('Agent'))({ connections: 2, keepAliveTimeout: idleMs }) as unknown as RegistryDispatcher,
  node: async (idleMs) => new NodeHttpDispatcher(2, idleMs),
};

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/**
 * A server on 127.0.0.1:0 (or `host`) whose handler is given each request's number and remote port
 * (to see connection reuse). `keepAliveMs`: how long it keeps an idle connection (Node's server
 * default, 5 s, sent as a Keep-Alive hint; 0 keeps it for ever and sends no hint).
 */
async function serve(handler: (res: ServerResponse, n: number, remotePort: number) => void, host = '127.0.0.1', keepAliveMs?: number): Promise<string> {
  let n = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => handler(res, ++n, req.socket.remotePort!));
  });
  if (keepAliveMs !== undefined) server.keepAliveTimeout = keepAliveMs;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return `http://${host.includes(':') ? `[${host}]` : host}:${(server.address() as AddressInfo).port}`;
}

function get(origin: string, over: Partial<DispatchRequest> = {}): DispatchRequest {
  return { origin, path: '/v2/x', method: 'GET', headers: {}, headersTimeout: 5_000, bodyTimeout: 5_000, ...over };
}

describe.each(Object.keys(clients))('the registry HTTP client over %s', (kind) => {
  /** `idleMs`: how long the client keeps an idle connection (KEEP_ALIVE_IDLE_MS in the transport). */
  async function client(idleMs = 30_000): Promise<RegistryDispatcher> {
    const c = await clients[kind]!(idleMs);
    cleanups.push(() => c.close());
    return c;
  }

  it('gives one header as a string and a header sent twice as an array, names in lower case', async () => {
    const origin = await serve((res) => {
      res.setHeader('WWW-Authenticate', ['Bearer realm="https://auth/token"', 'Basic realm="registry"']);
      res.setHeader('Docker-Content-Digest', 'sha256:00');
      res.end('ok');
    });
    const r = await (await client()).request(get(origin));
    expect(r.statusCode).toBe(200);
    expect(r.headers['docker-content-digest']).toBe('sha256:00');
    expect(r.headers['www-authenticate']).toEqual(['Bearer realm="https://auth/token"', 'Basic realm="registry"']);
    await r.body.dump();
  });

  it('reaches a registry named by an IPv6 literal', async () => {
    const origin = await serve((res) => res.end('over v6'), '::1');
    expect(origin).toMatch(/^http:\/\/\[::1\]:\d+$/);
    const r = await (await client()).request(get(origin));
    let text = '';
    for await (const chunk of r.body) text += (chunk as Buffer).toString();
    expect(text).toBe('over v6');
  });

  it('fails a response whose headers do not come within the headers timeout, with a transient network errno', async () => {
    const origin = await serve(() => undefined);
    const started = Date.now();
    const err = await (await client()).request(get(origin, { headersTimeout: 300 })).catch((e: unknown) => e as NodeJS.ErrnoException);
    expect(err).toBeInstanceOf(Error);
    expect(['ETIMEDOUT', 'UND_ERR_HEADERS_TIMEOUT']).toContain(err.code);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('fails a body that goes silent while its reader waits, after the idle timeout', async () => {
    const origin = await serve((res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write(Buffer.alloc(100));
    });
    const r = await (await client()).request(get(origin, { bodyTimeout: 300 }));
    const started = Date.now();
    let got = 0;
    const err = await (async () => {
      for await (const chunk of r.body) got += (chunk as Buffer).length;
    })().catch((e: unknown) => e as NodeJS.ErrnoException);
    expect(got).toBe(100);
    expect(err).toBeInstanceOf(Error);
    expect(['ETIMEDOUT', 'UND_ERR_BODY_TIMEOUT']).toContain(err!.code);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('does not cut a body whose bytes have all arrived, however late its reader comes', async () => {
    const origin = await serve((res) => res.end('small body'));
    const r = await (await client()).request(get(origin, { bodyTimeout: 200 }));
    await sleep(600);
    let text = '';
    for await (const chunk of r.body) text += (chunk as Buffer).toString();
    expect(text).toBe('small body');
  });

  it('does not cut a big body whose reader holds back for longer than the idle timeout', async () => {
    const size = 32 * 1024 * 1024;
    const origin = await serve((res) => {
      res.writeHead(200, { 'content-length': String(size) });
      res.end(Buffer.alloc(size, 7));
    });
    // The pool's idle bound too is shorter than the pause: it is for connections nobody uses.
    const r = await (await client(300)).request(get(origin, { bodyTimeout: 300 }));
    let got = 0;
    for await (const chunk of r.body) {
      // The first chunk, then a pause three times the idle timeout with the socket's buffers full.
      if (got === 0) await sleep(900);
      got += (chunk as Buffer).length;
    }
    expect(got).toBe(size);
  });

  it('drains a small unread body to its end, and drops one over the limit without reading it through', async () => {
    const origin = await serve((res, n) => res.end(n === 2 ? Buffer.alloc(1024 * 1024) : 'tiny'));
    const c = await client();
    const small = await c.request(get(origin));
    await small.body.dump();
    expect(small.body.readableEnded).toBe(true);
    const big = await c.request(get(origin));
    await big.body.dump({ limit: 1024 });
    expect(big.body.destroyed).toBe(true);
    expect(big.body.readableEnded).toBe(false);
  });

  it('keeps a connection alive across requests whose bodies were read', async () => {
    const ports: number[] = [];
    const origin = await serve((res, _n, port) => {
      ports.push(port);
      res.end('tiny');
    });
    const c = await client();
    for (let i = 0; i < 3; i++) {
      await (await c.request(get(origin))).body.dump();
      // undici gives a socket back to its pool on the tick after the body's end.
      await sleep(10);
    }
    expect(ports).toHaveLength(3);
    expect(new Set(ports).size).toBe(1);
  });

  it('closes a kept-alive connection that stays idle for its idle bound, even when the server would keep it', async () => {
    const ports: number[] = [];
    const origin = await serve(
      (res, _n, port) => {
        ports.push(port);
        res.end('tiny');
      },
      '127.0.0.1',
      0,
    );
    const c = await client(300);
    await (await c.request(get(origin))).body.dump();
    await sleep(10);
    await (await c.request(get(origin))).body.dump();
    await sleep(1_000);
    await (await c.request(get(origin))).body.dump();
    expect(ports).toHaveLength(3);
    expect(ports[1]).toBe(ports[0]); // reused within the bound
    expect(ports[2]).not.toBe(ports[0]); // a new connection after it
  });

  it('sends a Buffer body with its length, and a stream body as it comes', async () => {
    const bodies: string[] = [];
    const server = createServer((req, res) => {
      let b = '';
      req.on('data', (c: Buffer) => (b += c.toString()));
      req.on('end', () => {
        bodies.push(`${req.headers['content-length'] ?? '-'}:${b}`);
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const c = await client();
    await (await c.request({ ...get(origin), method: 'PUT', body: Buffer.from('hello') })).body.dump();
    const { Readable } = await import('node:stream');
    await (await c.request({ ...get(origin), method: 'PATCH', headers: { 'content-length': '6' }, body: Readable.from([Buffer.from('wor'), Buffer.from('ld!')]) })).body.dump();
    expect(bodies).toEqual(['5:hello', '6:world!']);
  });

  it('ends a body being read with an error when the signal aborts', async () => {
    const origin = await serve((res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write(Buffer.alloc(100));
    });
    const abort = new AbortController();
    const r = await (await client()).request(get(origin, { signal: abort.signal }));
    setTimeout(() => abort.abort(new Error('stop')), 100);
    const started = Date.now();
    const read = (async () => {
      for await (const chunk of r.body) void chunk;
    })();
    await expect(read).rejects.toBeInstanceOf(Error);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('ends with an error when the signal aborts before the answer', async () => {
    const origin = await serve(() => undefined);
    const abort = new AbortController();
    const pending = (await client()).request(get(origin, { signal: abort.signal }));
    setTimeout(() => abort.abort(new Error('stop')), 100);
    await expect(pending).rejects.toBeInstanceOf(Error);
  });
});
