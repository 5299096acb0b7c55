import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf, MediaType, type Digest } from '../../../src/oci/index.js';
import { RegistryClient, type RegistryClientOptions } from '../../../src/registry/index.js';
import type { HttpClientKind } from '../../../src/registry/dispatcher.js';
import { noCredentials } from '../../../src/registry/auth/credentials.js';
import { silentLogger, type Logger } from '../../../src/log.js';
import { json, startFakeServer, type FakeServer } from './fake-http.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function server(handler: Parameters<typeof startFakeServer>[0]): Promise<FakeServer> {
  const s = await startFakeServer(handler);
  cleanups.push(() => s.close());
  return s;
}

/** The HTTP client under test: each behaviour below holds over both (registry/dispatcher.ts). */
let httpClient: HttpClientKind = 'undici';

function client(opts: RegistryClientOptions = {}): RegistryClient {
  const c = new RegistryClient({ retries: 3, retryBaseDelayMs: 1, credentials: noCredentials(), httpClient, ...opts });
  cleanups.push(() => c.close());
  return c;
}

const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: {}, layers: [] }));
const manifestDigest = digestOf(manifest);
const blob = Buffer.from('0123456789abcdefghij');
const blobDigest = digestOf(blob);

function serveManifest(res: import('node:http').ServerResponse, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': MediaType.OciManifest, 'docker-content-digest': manifestDigest, 'content-length': manifest.length, ...headers });
  res.end(manifest);
}

describe.each(['undici', 'node'] as const)('over %s', (kind) => {
  beforeEach(() => {
    httpClient = kind;
  });

  it('reads the extra CA files (HOSTPULL_EXTRA_CA_CERTS) at its first https request only, never for plain http', async () => {
    const s = await server((_req, res) => serveManifest(res));
    const warnings: unknown[] = [];
    const quiet = silentLogger();
    const logger = { ...quiet, level: quiet.level, format: quiet.format, warn: (o: unknown) => warnings.push(o), child: () => logger } as Logger;
    // A file that is not there: reading it is a warning, so the warnings say whether it was read.
    const c = client({ logger, env: { HOSTPULL_EXTRA_CA_CERTS: '/nonexistent/extra-ca.pem' } });
    const caWarnings = () => warnings.filter((w) => (w as { file?: string }).file !== undefined);
    expect((await c.getManifest({ registry: s.host, repository: 'r', digest: manifestDigest })).digest).toBe(manifestDigest);
    expect(caWarnings()).toEqual([]);
    // Nothing listens there: the request fails after its TLS context, and so the file, were made.
    const closed = await server(() => undefined);
    await closed.close();
    await expect(c.getManifest({ registry: `https://${closed.host}`, repository: 'r', digest: manifestDigest })).rejects.toThrow();
    expect(caWarnings()).toEqual([expect.objectContaining({ file: '/nonexistent/extra-ca.pem' })]);
  });

  describe('retries', () => {
    it('waits out a 429 with Retry-After, then succeeds', async () => {
      const s = await server((req, res, n) => {
        if (n === 1) return json(res, 429, { errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }, { 'retry-after': '1' });
        serveManifest(res);
      });
      const m = await client().getManifest({ registry: s.host, repository: 'pkg/jdk', tag: 'v1' });
      expect(m.digest).toBe(manifestDigest);
      expect(m.mediaType).toBe(MediaType.OciManifest);
      expect(s.requests).toHaveLength(2);
    });

    it('retries a 503, and gives up after `retries` with a temporary REGISTRY_UNAVAILABLE', async () => {
      const ok = await server((req, res, n) => (n === 1 ? json(res, 503, {}) : serveManifest(res)));
      await client().getManifest({ registry: ok.host, repository: 'pkg/jdk', tag: 'v1' });
      expect(ok.requests).toHaveLength(2);

      const down = await server((req, res) => json(res, 503, { errors: [{ code: 'UNAVAILABLE', message: 'maintenance' }] }));
      const err = await client({ retries: 2 })
        .getManifest({ registry: down.host, repository: 'pkg/jdk', tag: 'v1' })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'REGISTRY_UNAVAILABLE', status: 503, temporary: true, errors: [{ code: 'UNAVAILABLE', message: 'maintenance' }] });
      expect((err as Error).message).toContain(`GET http://${down.host}/v2/pkg/jdk/manifests/v1`);
      expect((err as Error).message).toContain('503');
      expect(down.requests).toHaveLength(3);
    });

    it('retries after the connection is reset', async () => {
      const s = await server((req, res, n) => {
        if (n === 1) return void req.socket.destroy();
        serveManifest(res);
      });
      const m = await client().getManifest({ registry: s.host, repository: 'pkg/jdk', tag: 'v1' });
      expect(m.bytes.equals(manifest)).toBe(true);
      expect(s.requests).toHaveLength(2);
    });

    it('stops waiting when the signal aborts', async () => {
      const s = await server((req, res) => json(res, 503, {}, { 'retry-after': '30' }));
      const ac = new AbortController();
      const p = client().getManifest({ registry: s.host, repository: 'pkg/jdk', tag: 'v1' }, { signal: ac.signal });
      const caught = p.catch((e: unknown) => e);
      while (s.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
      ac.abort(new Error('user gave up'));
      expect(await caught).toMatchObject({ message: 'user gave up' });
      expect(s.requests).toHaveLength(1);
    });

    it('ends a request in flight with the signal\'s reason, not the HTTP client\'s AbortError', async () => {
      // The answer never comes: the abort meets the request itself, not a wait between retries.
      const s = await server(() => undefined);
      const ac = new AbortController();
      const caught = client()
        .getManifest({ registry: s.host, repository: 'pkg/jdk', tag: 'v1' }, { signal: ac.signal })
        .catch((e: unknown) => e);
      while (s.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
      ac.abort(new Error('user gave up'));
      expect(await caught).toMatchObject({ message: 'user gave up' });
    });

    it('does not retry a POST', async () => {
      const s = await server((req, res) => {
        if (req.method === 'HEAD') return json(res, 404, {});
        json(res, 503, {});
      });
      const err = await client()
        .pushBlob({ registry: s.host, repository: 'pkg/jdk' }, blobDigest, blob.length, blob)
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'REGISTRY_UNAVAILABLE' });
      // HEAD once, then 1 + 3 whole-upload attempts (each a single POST).
      expect(s.requests.filter((r) => r.method === 'POST')).toHaveLength(4);
    });
  });

  describe('redirects', () => {
    it('drops Authorization on a redirect to another host, keeps it on the same host', async () => {
      const storage = await server((req, res) => {
        res.writeHead(200, { 'content-length': blob.length });
        res.end(blob);
      });
      const reg = await server((req, res) => {
        if (req.headers.authorization !== 'Basic ' + Buffer.from('alice:s3cret').toString('base64')) {
          res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' });
          return res.end();
        }
        if (req.url === '/v2/pkg/jdk/blobs/' + blobDigest) {
          res.writeHead(307, { location: `/storage/blob?x=1` });
          return res.end();
        }
        if (req.url === '/storage/blob?x=1') {
          res.writeHead(307, { location: `${storage.url}/bucket/blob?X-Amz-Signature=sig` });
          return res.end();
        }
        json(res, 404, {});
      });
      const c = client({ credentials: { [reg.host]: { username: 'alice', password: 's3cret' } }, env: {} });
      const { stream, offset } = await c.getBlob({ registry: reg.host, repository: 'pkg/jdk' }, blobDigest);
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(blob)).toBe(true);
      expect(offset).toBe(0);
      expect(storage.requests).toHaveLength(1);
      expect(storage.requests[0]!.headers.authorization).toBeUndefined();
      expect(reg.requests.find((r) => r.url === '/storage/blob?x=1')!.headers.authorization).toMatch(/^Basic /);
    });
  });

  describe('bearer token flow', () => {
    it('gets a token with Basic credentials, uses it, and reuses it from the cache', async () => {
      const issued: string[] = [];
      const tokens = await server((req, res) => {
        const u = new URL(req.url!, 'http://x');
        if (req.headers.authorization !== 'Basic ' + Buffer.from('bob:pw').toString('base64')) return json(res, 401, {});
        const token = `tok-${issued.length}-${u.searchParams.getAll('scope').join('+')}`;
        issued.push(`${u.searchParams.get('service')} ${u.searchParams.getAll('scope').join(' ')}`);
        json(res, 200, { token, expires_in: 300 });
      });
      const reg = await server((req, res) => {
        if (req.headers.authorization !== 'Bearer tok-0-repository:pkg/jdk:pull') {
          res.writeHead(401, {
            'www-authenticate': `Bearer realm="${tokens.url}/token",service="fake-registry",scope="repository:pkg/jdk:pull"`,
            'content-type': 'application/json',
          });
          return res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
        }
        serveManifest(res);
      });
      const c = client({ credentials: { [reg.host]: { username: 'bob', password: 'pw' } }, env: {} });
      const ref = { registry: reg.host, repository: 'pkg/jdk', tag: 'v1' };
      await c.getManifest(ref);
      await c.getManifest(ref);
      expect(await c.headManifest(ref)).toEqual({ digest: manifestDigest, mediaType: MediaType.OciManifest, size: manifest.length });
      expect(issued).toEqual(['fake-registry repository:pkg/jdk:pull']);
      // first request unauthenticated (401), then three with the token
      expect(reg.requests.map((r) => r.headers.authorization ?? null)).toEqual([
        null,
        'Bearer tok-0-repository:pkg/jdk:pull',
        'Bearer tok-0-repository:pkg/jdk:pull',
        'Bearer tok-0-repository:pkg/jdk:pull',
      ]);
    });

    it('without credentials, a refused token request is UNAUTHORIZED with a hint', async () => {
      const tokens = await server((req, res) => json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'login first' }] }));
      const reg = await server((req, res) => {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokens.url}/token",service="svc"` });
        res.end();
      });
      const err = await client()
        .getManifest({ registry: reg.host, repository: 'pkg/jdk', tag: 'v1' })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
      expect((err as { hint: string }).hint).toContain(`HOSTPULL_REGISTRY_AUTH=${reg.host}=USER:PASSWORD`);
      expect((err as { hint: string }).hint).toContain(`hostpull login ${reg.host}`);
    });

    it('401 with Basic and no credentials is UNAUTHORIZED; a wrong password never shows up in the error', async () => {
      const reg = await server((req, res) => {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' });
        res.end();
      });
      const err = await client().ping(reg.host).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'UNAUTHORIZED' });
      expect((err as Error).message).toContain(`GET http://${reg.host}/v2/`);
      expect((err as { hint: string }).hint).toContain('no credentials');

      const err2 = await client({ credentials: { [reg.host]: { username: 'u', password: 'hunter2' } }, env: {} })
        .ping(reg.host)
        .catch((e: unknown) => e);
      expect(err2).toMatchObject({ code: 'UNAUTHORIZED' });
      expect(JSON.stringify({ m: (err2 as Error).message, h: (err2 as { hint: string }).hint, d: (err2 as { details: unknown }).details })).not.toContain('hunter2');
      expect((err2 as { hint: string }).hint).toContain('refused');
      expect(reg.requests).toHaveLength(3); // no creds: 1; with creds: 1 + 1 retry with Basic
    });
  });

  describe('manifests', () => {
    it('refuses bytes that do not match Docker-Content-Digest or the reference digest', async () => {
      const other = digestOf('something else');
      const reg = await server((req, res) => serveManifest(res, { 'docker-content-digest': other }));
      const c = client();
      const err = await c.getManifest({ registry: reg.host, repository: 'pkg/jdk', tag: 'v1' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'DIGEST_MISMATCH' });
      expect((err as Error).message).toContain(`${reg.host}/pkg/jdk:v1`);
      const err2 = await c.getManifest({ registry: reg.host, repository: 'pkg/jdk', digest: other }).catch((e: unknown) => e);
      expect(err2).toMatchObject({ code: 'DIGEST_MISMATCH' });
    });

    it('refuses a manifest over 4 MiB while streaming, and one that declares it', async () => {
      const reg = await server((req, res) => {
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        if (req.url!.endsWith('declared')) {
          res.writeHead(200, { 'content-type': MediaType.OciManifest, 'content-length': 5 * 1024 * 1024 });
        } else {
          res.writeHead(200, { 'content-type': MediaType.OciManifest }); // chunked, no length
        }
        let sent = 0;
        const pump = (): void => {
          while (sent < 80) {
            sent++;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('error', () => undefined);
        pump();
      });
      const c = client();
      for (const tag of ['streamed', 'declared']) {
        const err = await c.getManifest({ registry: reg.host, repository: 'pkg/jdk', tag }).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'MANIFEST_TOO_LARGE' });
      }
    });

    it('headManifest returns null on 404 and MANIFEST_UNKNOWN on GET', async () => {
      const reg = await server((req, res) => json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
      const c = client();
      expect(await c.headManifest({ registry: reg.host, repository: 'pkg/jdk', tag: 'nope' })).toBeNull();
      await expect(c.getManifest({ registry: reg.host, repository: 'pkg/jdk', tag: 'nope' })).rejects.toMatchObject({
        code: 'MANIFEST_UNKNOWN',
        status: 404,
      });
    });
  });

  describe('range resume', () => {
    async function rangeServer(mode: '206' | '200' | 'bad206'): Promise<FakeServer> {
      return server((req, res) => {
        const m = /bytes=(\d+)-/.exec(req.headers.range ?? '');
        if (mode === '200' || !m) {
          res.writeHead(200, { 'content-length': blob.length });
          return res.end(blob);
        }
        const start = mode === 'bad206' ? 0 : Number(m[1]);
        res.writeHead(206, { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}`, 'content-length': blob.length - start });
        res.end(blob.subarray(start));
      });
    }

    async function read(stream: Readable): Promise<string> {
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString();
    }

    it('resumes on 206 at the offset', async () => {
      const s = await rangeServer('206');
      const r = await client().getBlob({ registry: s.host, repository: 'pkg/jdk' }, blobDigest, { offset: 10 });
      expect(r.offset).toBe(10);
      expect(r.totalSize).toBe(blob.length);
      expect(await read(r.stream)).toBe('abcdefghij');
      expect(s.requests[0]!.headers.range).toBe('bytes=10-');
    });

    it('restarts from 0 when the server ignores Range', async () => {
      const s = await rangeServer('200');
      const r = await client().getBlob({ registry: s.host, repository: 'pkg/jdk' }, blobDigest, { offset: 10 });
      expect(r.offset).toBe(0);
      expect(await read(r.stream)).toBe(blob.toString());
    });

    it('refuses a 206 that starts elsewhere', async () => {
      const s = await rangeServer('bad206');
      await expect(client().getBlob({ registry: s.host, repository: 'pkg/jdk' }, blobDigest, { offset: 10 })).rejects.toMatchObject({
        code: 'RANGE_NOT_SATISFIED',
      });
    });
  });

  describe('push', () => {
    it('uploads to a relative Location keeping its query, mounts when asked, and PUTs manifests', async () => {
      let mounted = false;
      const reg = await server((req, res) => {
        const u = new URL(req.url!, 'http://x');
        if (req.method === 'HEAD') return json(res, 404, {});
        if (req.method === 'POST' && u.searchParams.get('mount')) {
          mounted = u.searchParams.get('from') === 'pkg/base' && u.searchParams.get('mount') === blobDigest;
          res.writeHead(mounted ? 201 : 400);
          return res.end();
        }
        if (req.method === 'POST') {
          res.writeHead(202, { location: '/v2/pkg/jdk/blobs/uploads/abc?_state=xyz' });
          return res.end();
        }
        if (req.method === 'PUT' && u.pathname === '/v2/pkg/jdk/blobs/uploads/abc') {
          const ok = u.searchParams.get('_state') === 'xyz' && u.searchParams.get('digest') === blobDigest && req.body.equals(blob);
          res.writeHead(ok ? 201 : 400, { 'docker-content-digest': blobDigest });
          return res.end();
        }
        if (req.method === 'PUT' && u.pathname === '/v2/pkg/jdk/manifests/v1') {
          res.writeHead(req.headers['content-type'] === MediaType.OciManifest ? 201 : 400, { 'docker-content-digest': digestOf(req.body) });
          return res.end();
        }
        json(res, 404, {});
      });
      const c = client();
      const repo = { registry: reg.host, repository: 'pkg/jdk' };
      await c.pushBlob(repo, blobDigest, blob.length, () => Readable.from([blob.subarray(0, 5), blob.subarray(5)]));
      await c.pushBlob(repo, blobDigest, blob.length, blob, { mountFrom: 'pkg/base' });
      expect(mounted).toBe(true);
      const d: Digest = await c.putManifest({ ...repo, tag: 'v1' }, manifest, MediaType.OciManifest);
      expect(d).toBe(manifestDigest);
      expect(reg.requests.map((r) => `${r.method} ${r.url.split('?')[0]}`)).toEqual([
        `HEAD /v2/pkg/jdk/blobs/${blobDigest}`,
        'POST /v2/pkg/jdk/blobs/uploads/',
        'PUT /v2/pkg/jdk/blobs/uploads/abc',
        `HEAD /v2/pkg/jdk/blobs/${blobDigest}`,
        'POST /v2/pkg/jdk/blobs/uploads/',
        'PUT /v2/pkg/jdk/manifests/v1',
      ]);
    });

    it('skips the upload when HEAD finds the blob', async () => {
      const reg = await server((req, res) => {
        res.writeHead(req.method === 'HEAD' ? 200 : 500, { 'content-length': blob.length });
        res.end();
      });
      await client().pushBlob({ registry: reg.host, repository: 'pkg/jdk' }, blobDigest, blob.length, blob);
      expect(reg.requests.map((r) => r.method)).toEqual(['HEAD']);
    });
  });

  describe('tags', () => {
    it('follows Link pages without n/last, and returns one page with n', async () => {
      const reg = await server((req, res) => {
        const u = new URL(req.url!, 'http://x');
        const last = u.searchParams.get('last');
        const all = ['a', 'b', 'c', 'd', 'e'];
        const start = last ? all.indexOf(last) + 1 : 0;
        const n = Number(u.searchParams.get('n') ?? 2);
        const page = all.slice(start, start + n);
        const headers: Record<string, string> = {};
        if (start + n < all.length) headers.link = `</v2/pkg/jdk/tags/list?n=${n}&last=${page.at(-1)}>; rel="next"`;
        json(res, 200, { name: 'pkg/jdk', tags: page }, headers);
      });
      const c = client();
      expect(await c.listTags({ registry: reg.host, repository: 'pkg/jdk' })).toEqual(['a', 'b', 'c', 'd', 'e']);
      expect(await c.listTags({ registry: reg.host, repository: 'pkg/jdk' }, { n: 2, last: 'b' })).toEqual(['c', 'd']);
    });
  });

  describe('getBlobRange (the span reads of lazy layers)', () => {
    const repo = (s: FakeServer) => ({ registry: s.host, repository: 'pkg/jdk' });
    const read = async (r: Readable) => {
      const parts: Buffer[] = [];
      for await (const c of r) parts.push(c as Buffer);
      return Buffer.concat(parts);
    };

    it('asks for a closed range and takes a 206 of exactly that range', async () => {
      const s = await server((req, res) => {
        res.writeHead(206, { 'content-range': `bytes 5-9/${blob.length}`, 'content-length': 5 });
        res.end(blob.subarray(5, 10));
      });
      const r = await client().getBlobRange(repo(s), blobDigest, 5, 9);
      expect((await read(r)).toString()).toBe('56789');
      expect(r.totalSize).toBe(blob.length);
      expect(s.requests[0]!.headers.range).toBe('bytes=5-9');
    });

    it('cuts the range out of a 200 from a server that ignores Range', async () => {
      const s = await server((req, res) => {
        res.writeHead(200, { 'content-length': blob.length });
        res.end(blob);
      });
      expect((await read(await client().getBlobRange(repo(s), blobDigest, 0, 3))).toString()).toBe('0123');
      expect((await read(await client().getBlobRange(repo(s), blobDigest, 12, 14))).toString()).toBe('cde');
    });

    it('refuses a 206 of another range (RANGE_NOT_SATISFIED), and retries a 503 within the budget it is given', async () => {
      const wrong = await server((req, res) => {
        res.writeHead(206, { 'content-range': `bytes 5-19/${blob.length}` });
        res.end(blob.subarray(5));
      });
      await expect(client().getBlobRange(repo(wrong), blobDigest, 5, 9)).rejects.toMatchObject({ code: 'RANGE_NOT_SATISFIED' });
      const busy = await server((req, res, n) => {
        if (n === 1) return json(res, 503, {});
        res.writeHead(206, { 'content-range': `bytes 0-1/${blob.length}` });
        res.end(blob.subarray(0, 2));
      });
      const c = client({ retries: 1 });
      const retry = c.retryBudget(busy.host);
      expect((await read(await c.getBlobRange(repo(busy), blobDigest, 0, 1, { retry }))).toString()).toBe('01');
      expect(retry.retries).toBe(1);
    });
  });
});
