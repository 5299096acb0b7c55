import { get } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobRequests, useRegistry } from '../../helpers/registry.js';
import { buildLayer, pushBlob, type BuiltLayer } from '../../helpers/fixtures.js';
import { startProxy, type TestProxy } from '../../helpers/proxy.js';

/** Raw GET through node:http: data chunks as they arrive, and how the response ended. */
function rawGet(url: string): Promise<{ status: number; headers: Record<string, unknown>; chunks: Buffer[]; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const req = get(url, { agent: false }, (res) => {
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, chunks }));
      res.on('error', (err) => resolve({ status: res.statusCode ?? 0, headers: res.headers, chunks, error: err.message }));
    });
    req.on('error', (err) => resolve({ status: 0, headers: {}, chunks, error: err.message }));
  });
}

describe('fault-injecting proxy', () => {
  const registry = useRegistry();
  let proxy: TestProxy;
  let layer: BuiltLayer;
  let blobUrl: string;

  beforeAll(async () => {
    proxy = await startProxy(registry().url);
    // Random-ish content so gzip cannot shrink it much: ~20 KB blob.
    layer = buildLayer([{ path: 'data.bin', content: Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 7919) % 251)) }], { compression: 'none' });
    // Pushed THROUGH the proxy: the upload Location must be rewritten to the proxy for the PUT to pass it.
    await pushBlob(proxy.url, 'harness/proxy', layer.digest, layer.blob);
    blobUrl = `${proxy.url}/v2/harness/proxy/blobs/${layer.digest}`;
  });
  afterAll(async () => {
    await proxy?.close();
  });

  it('passes uploads through and rewrites upload Locations to itself', () => {
    const methods = proxy.requests.map((r) => `${r.method} ${r.status}`);
    expect(methods).toEqual(['HEAD 404', 'POST 202', 'PUT 201']);
    expect(proxy.requests[2]!.path).toMatch(/^\/v2\/harness\/proxy\/blobs\/uploads\/[^?]+\?.*digest=sha256/);
    expect(proxy.requests[2]!.headers['content-length']).toBe(String(layer.size));
  });

  it('passes GET with Range and Authorization, counting the body bytes sent', async () => {
    proxy.requests.length = 0;
    const reg = registry();
    const mark = await reg.mark();
    const res = await fetch(blobUrl, { headers: { range: 'bytes=1000-1999', authorization: 'Bearer t0k' } });
    const body = Buffer.from(await res.arrayBuffer());
    expect(res.status).toBe(206);
    expect(body.equals(layer.blob.subarray(1000, 2000))).toBe(true);
    expect(proxy.requests).toHaveLength(1);
    expect(proxy.requests[0]).toMatchObject({ method: 'GET', status: 206, bytes: 1000, range: 'bytes=1000-1999' });
    expect(proxy.requests[0]!.headers['authorization']).toBe('Bearer t0k');
    expect(blobRequests(await reg.since(mark)).map((e) => e.bytes)).toEqual([1000]);
  });

  it("'corrupt' flips exactly one byte and keeps the length", async () => {
    proxy.setFault((r) => (r.method === 'GET' && r.path.includes('/blobs/') ? 'corrupt' : undefined));
    const res = await fetch(blobUrl);
    const body = Buffer.from(await res.arrayBuffer());
    proxy.clearFaults();
    expect(res.status).toBe(200);
    expect(body.length).toBe(layer.size);
    let diff = 0;
    for (let i = 0; i < body.length; i++) if (body[i] !== layer.blob[i]) diff++;
    expect(diff).toBe(1);
  });

  it("'truncate' sends half the body under the full Content-Length, then closes", async () => {
    proxy.requests.length = 0;
    proxy.setFault(() => 'truncate');
    const r = await rawGet(blobUrl);
    proxy.clearFaults();
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe(String(layer.size));
    expect(r.error).toBeDefined();
    const got = Buffer.concat(r.chunks);
    expect(got.length).toBe(layer.size >> 1);
    expect(got.equals(layer.blob.subarray(0, got.length))).toBe(true);
    expect(proxy.requests[0]).toMatchObject({ status: 200, bytes: layer.size >> 1 });
    await expect(fetch(blobUrl).then((x) => x.arrayBuffer())).resolves.toHaveProperty('byteLength', layer.size);
  });

  it("'wrong-length' sends a consistent but short body", async () => {
    proxy.setFault(() => 'wrong-length');
    const res = await fetch(blobUrl);
    const body = Buffer.from(await res.arrayBuffer());
    proxy.clearFaults();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(layer.size >> 1));
    expect(body.equals(layer.blob.subarray(0, layer.size >> 1))).toBe(true);
  });

  it('a status fault answers without asking upstream, with Retry-After', async () => {
    const reg = registry();
    const mark = await reg.mark();
    proxy.requests.length = 0;
    let calls = 0;
    proxy.setFault(() => (calls++ === 0 ? { status: 429, retryAfter: '1' } : undefined));
    const first = await fetch(blobUrl);
    const firstBody = await first.json();
    const second = await fetch(blobUrl);
    await second.arrayBuffer();
    proxy.clearFaults();
    expect(first.status).toBe(429);
    expect(first.headers.get('retry-after')).toBe('1');
    expect(firstBody).toHaveProperty('errors');
    expect(second.status).toBe(200);
    expect(proxy.requests.map((r) => r.status)).toEqual([429, 200]);
    expect(blobRequests(await reg.since(mark))).toHaveLength(1);
  });

  it("'reset' destroys the connection before any response", async () => {
    proxy.requests.length = 0;
    proxy.setFault(() => 'reset');
    await expect(fetch(blobUrl)).rejects.toThrow();
    proxy.clearFaults();
    expect(proxy.requests).toEqual([expect.objectContaining({ method: 'GET', status: 0, bytes: 0 })]);
  });

  it('cutAfterBytes sends exactly N body bytes then closes', async () => {
    proxy.requests.length = 0;
    proxy.setFault(() => ({ cutAfterBytes: 3000 }));
    const r = await rawGet(blobUrl);
    proxy.clearFaults();
    expect(r.status).toBe(200);
    expect(r.error).toBeDefined();
    expect(Buffer.concat(r.chunks).equals(layer.blob.subarray(0, 3000))).toBe(true);
    expect(proxy.requests[0]).toMatchObject({ status: 200, bytes: 3000 });
  });

  it('stallAfterBytes sends N body bytes, then nothing, with the connection open until the client leaves', async () => {
    proxy.requests.length = 0;
    proxy.setFault(() => ({ stallAfterBytes: 3000 }));
    const chunks: Buffer[] = [];
    const outcome = await new Promise<string>((resolve) => {
      const req = get(blobUrl, { agent: false }, (res) => {
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve('ended'));
        res.on('error', () => undefined);
      });
      req.on('error', () => undefined);
      // No byte for 400 ms after the 3000th: the client gives up, as an idle timeout would.
      req.setTimeout(400, () => {
        req.destroy();
        resolve('silent');
      });
    });
    proxy.clearFaults();
    expect(outcome).toBe('silent');
    expect(Buffer.concat(chunks).equals(layer.blob.subarray(0, 3000))).toBe(true);
    const entry = proxy.requests[0]!;
    expect(entry).toMatchObject({ status: 200, bytes: 3000 });
    const deadline = Date.now() + 2000;
    while (entry.closedAt === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(entry.closedAt! - entry.stalledAt!).toBeGreaterThanOrEqual(350);
  });

  it('throttle delivers the whole body in many small slices', async () => {
    // 100 KB/s → 5,000-byte slices, one per 1/20 s: a 20 KB body cannot arrive in one piece.
    proxy.setFault(() => ({ throttleBytesPerSec: 100_000 }));
    const r = await rawGet(blobUrl);
    proxy.clearFaults();
    expect(r.error).toBeUndefined();
    expect(Buffer.concat(r.chunks).equals(layer.blob)).toBe(true);
    expect(r.chunks.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...r.chunks.map((c) => c.length))).toBeLessThanOrEqual(10_000);
  });

  it('answers 502 when the upstream is down', async () => {
    const dead = await startProxy('http://127.0.0.1:1');
    try {
      const res = await fetch(`${dead.url}/v2/`);
      await res.arrayBuffer();
      expect(res.status).toBe(502);
      expect(dead.requests).toEqual([expect.objectContaining({ status: 502 })]);
    } finally {
      await dead.close();
    }
  });
});
