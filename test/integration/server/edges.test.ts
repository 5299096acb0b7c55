import { execFile } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LayoutUpstream } from '../../../src/server/layout-upstream.js';
import { startServer, type RunningServer } from '../../../src/server/serve.js';
import { buildLayer, packageFiles } from '../../helpers/fixtures.js';
import { freePort } from '../../helpers/free-port.js';
import { pushImageTo } from './upstreams.js';

const exec = promisify(execFile);

/** Sends raw bytes and returns the status line and body (for requests fetch refuses to build). */
function rawRequest(port: number, text: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => sock.write(text));
    let data = '';
    sock.on('data', (d) => (data += d.toString()));
    sock.on('error', reject);
    sock.on('close', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0), body });
    });
  });
}

describe('hostpull serve edges (static catalog, limits, metrics, TLS, upstream down)', () => {
  let tmp: string;
  let server: RunningServer;
  let port: number;
  let layout: string;
  /** A layer of its own, for the test that corrupts it in the layout. */
  const rotten = buildLayer(packageFiles('ROT1.0', { bytes: 300_000, files: 3 }));

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'hostpull-edges-'));
    layout = join(tmp, 'layout');
    const up = new LayoutUpstream({ dir: layout });
    await pushImageTo(up, 'pkg/abc', '1', [buildLayer(packageFiles('ABC1.0', { bytes: 2048, files: 2 }))]);
    await pushImageTo(up, 'pkg/rot', '1', [rotten]);
    await writeFile(join(tmp, 'catalog.json'), JSON.stringify({ entries: { 'ABC1.0': { image: 'pkg/abc:1', prefix: '/opt/abc-1.0', pathAdd: ['/opt/abc-1.0/bin'] } } }));
    await writeFile(join(tmp, 'token'), 'edges-token-0123456789abcdef');
    server = await startServer({ port: 0, layout, catalogFile: join(tmp, 'catalog.json'), tokenFile: join(tmp, 'token') });
    port = Number(new URL(server.url).port);
  });

  afterAll(async () => {
    await server?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('serves composites from a static catalog file and refuses API writes to it', async () => {
    const res = await fetch(`${server.url}/v2/hostpull/manifests/ABC1.0`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/vnd.oci.image.manifest.v1+json');
    await res.arrayBuffer();
    const put = await fetch(`${server.url}/hostpull/v1/catalog/XYZ1.0`, {
      method: 'PUT',
      headers: { authorization: 'Bearer edges-token-0123456789abcdef' },
      body: JSON.stringify({ image: 'pkg/abc:1', prefix: '/opt/abc-1.0' }),
    });
    expect(put.status).toBe(405);
    expect(await put.text()).toMatch(/static file/);
  });

  it('never completes the body of a blob whose bytes in the upstream no longer match its digest', async () => {
    const file = join(layout, 'blobs', 'sha256', rotten.digest.slice('sha256:'.length));
    const bytes = await readFile(file);
    bytes[bytes.length - 100] ^= 0xff; // same size, other content: bit rot
    await writeFile(file, bytes);
    // The relay holds back the chunk that completes the size until the digest matched, then cuts
    // the connection: the client gets the headers and part of the body, or nothing, never all of it.
    const body = fetch(`${server.url}/v2/pkg/rot/blobs/${rotten.digest}`).then((res) => res.arrayBuffer());
    await expect(body).rejects.toThrow();
    // The blob itself is served whole when asked for a part of it (no digest to check a part against).
    const head = await fetch(`${server.url}/v2/pkg/rot/blobs/${rotten.digest}`, { headers: { range: 'bytes=0-9' } });
    expect(head.status).toBe(206);
    expect(Buffer.from(await head.arrayBuffer())).toEqual(bytes.subarray(0, 10));
  });

  it('refuses writes by registry clients with 405 UNSUPPORTED', async () => {
    for (const [method, path] of [['PUT', '/v2/hostpull/manifests/ABC1.0'], ['POST', '/v2/hostpull/blobs/uploads/'], ['DELETE', '/v2/pkg/abc/manifests/1']] as const) {
      const res = await fetch(`${server.url}${path}`, { method, body: method === 'DELETE' ? undefined : '{}' });
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('UNSUPPORTED');
    }
  });

  it('answers huge URLs with 414 and huge headers with 431, as OCI JSON', async () => {
    const long = await fetch(`${server.url}/v2/hostpull/manifests/${'A'.repeat(5000)}`);
    expect(long.status).toBe(414);
    expect(((await long.json()) as { errors: unknown[] }).errors).toHaveLength(1);
    const big = await rawRequest(port, `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\nConnection: close\r\n\r\n`);
    expect(big.status).toBe(431);
    expect(JSON.parse(big.body)).toMatchObject({ errors: [{ code: 'UNSUPPORTED' }] });
    const garbage = await rawRequest(port, 'NOT HTTP AT ALL\r\n\r\n');
    expect(garbage.status).toBe(400);
    expect((await fetch(`${server.url}/v2/`)).status).toBe(200);
  });

  it('exposes Prometheus metrics with request counts and cache results', async () => {
    await (await fetch(`${server.url}/v2/hostpull/manifests/ABC1.0`, { method: 'HEAD' })).arrayBuffer();
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/hostpull_server_requests_total\{route="manifest",method="GET",status="200"\} \d+/);
    expect(text).toMatch(/hostpull_server_composite_cache_total\{result="hit"\} [1-9]/);
    expect(text).toMatch(/hostpull_server_upstream_seconds_count\{operation="image"\} [1-9]/);
  });

  it('serves https with --tls-cert/--tls-key', async () => {
    const key = join(tmp, 'key.pem');
    const cert = join(tmp, 'cert.pem');
    await exec('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1']);
    const tls = await startServer({ port: 0, layout: join(tmp, 'layout'), catalogFile: join(tmp, 'catalog.json'), tlsCert: cert, tlsKey: key });
    try {
      expect(tls.url).toMatch(/^https:/);
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpsRequest(`${tls.url}/v2/hostpull/manifests/ABC1.0`, { rejectUnauthorized: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(200);
    } finally {
      await tls.close();
    }
  });

  it('answers 503 with a clear message when the upstream registry is down', async () => {
    const deadPort = await freePort();
    const down = await startServer({ port: 0, upstream: `http://127.0.0.1:${deadPort}`, catalogFile: join(tmp, 'catalog.json') });
    try {
      const res = await fetch(`${down.url}/v2/hostpull/manifests/ABC1.0`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { errors: Array<{ message: string }> }).errors[0]!.message).toMatch(/upstream unavailable.*127\.0\.0\.1/);
      const pass = await fetch(`${down.url}/v2/pkg/abc/tags/list`);
      expect(pass.status).toBe(503);
      await pass.arrayBuffer();
    } finally {
      await down.close();
    }
  });
});
