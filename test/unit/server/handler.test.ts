import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/log.js';
import { digestOf, TOC_ANNOTATION, type Digest } from '../../../src/oci/index.js';
import { UpstreamCatalog } from '../../../src/server/catalog.js';
import { createServerHandler, type ServerHandlerDeps } from '../../../src/server/handler.js';
import { LayoutUpstream } from '../../../src/server/layout-upstream.js';
import type { Upstream } from '../../../src/server/upstream.js';
import { buildLayer, packageFiles, packagePrefix } from '../../helpers/fixtures.js';
import { pushImageTo, pushImageWithToc } from '../../integration/server/upstreams.js';

const CODES = ['AA1', 'BB2', 'CC3'];

/**
 * An upstream whose blobs are visible only in the repositories they were pushed (or mounted)
 * into, as in a registry; a layout shares every blob between its repositories.
 */
function perRepository(inner: Upstream): Upstream {
  const held = new Map<string, Set<string>>();
  const holds = (repo: string, digest: string) => held.get(repo)?.has(digest) ?? false;
  const add = (repo: string, digest: string) => held.set(repo, (held.get(repo) ?? new Set()).add(digest));
  return {
    kind: inner.kind,
    location: inner.location,
    registry: inner.registry,
    getManifest: inner.getManifest.bind(inner),
    blobSize: async (repo, digest, signal) => (holds(repo, digest) ? inner.blobSize(repo, digest, signal) : null),
    getBlob: async (repo, digest, range, signal) => (holds(repo, digest) ? inner.getBlob(repo, digest, range, signal) : null),
    async putBlob(repo, digest, size, body, opts) {
      if (!(opts?.mountFrom !== undefined && holds(opts.mountFrom, digest))) await inner.putBlob(repo, digest, size, body, opts);
      add(repo, digest);
    },
    putManifest: inner.putManifest.bind(inner),
    listTags: inner.listTags.bind(inner),
    close: inner.close.bind(inner),
  };
}

/** The handler over a socket on port 0 (fetch wants one); closed by the returned function. */
async function listen(deps: ServerHandlerDeps): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer(createServerHandler(deps));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describe('the registry API of hostpull serve', () => {
  let dir: string;
  let layout: LayoutUpstream;
  let catalog: UpstreamCatalog;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'handler-test-'));
    layout = new LayoutUpstream({ dir });
    catalog = new UpstreamCatalog({ upstream: layout, repository: 'hostpull/catalog', ttlMs: 0 });
    for (const code of CODES) {
      const repo = `pkg/${code.toLowerCase()}`;
      await pushImageTo(layout, repo, '1', [buildLayer(packageFiles(code, { bytes: 512, files: 1 }))], { env: [`${code}_HOME=${packagePrefix(code)}`] });
      await catalog.put(code, { image: `${repo}:1`, prefix: packagePrefix(code), env: {}, pathAdd: [] });
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const configOf = async (url: string, tag: string): Promise<Digest> => {
    const res = await fetch(`${url}/v2/hostpull/manifests/${tag}`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { config: { digest: Digest } }).config.digest;
  };

  it('serves the config of a composite it could not push from memory, with ranges and HEAD', async () => {
    // A push budget of one per TTL: the second composite is served from memory only.
    const server = await listen({ upstream: layout, catalog, namespace: 'hostpull', cacheTtlMs: 60_000, maxComposites: 1, logger: silentLogger() });
    try {
      await configOf(server.url, 'AA1');
      const digest = await configOf(server.url, 'BB2');
      expect(await layout.blobSize('hostpull', digest)).toBeNull();
      const url = `${server.url}/v2/hostpull/blobs/${digest}`;

      const whole = await fetch(url);
      expect(whole.status).toBe(200);
      const bytes = Buffer.from(await whole.arrayBuffer());
      expect(digestOf(bytes)).toBe(digest);
      expect(JSON.parse(bytes.toString()) as unknown).toMatchObject({ rootfs: { type: 'layers' } });
      expect(Object.fromEntries(['docker-content-digest', 'content-length', 'content-type', 'accept-ranges'].map((h) => [h, whole.headers.get(h)]))).toEqual({
        'docker-content-digest': digest,
        'content-length': String(bytes.length),
        'content-type': 'application/octet-stream',
        'accept-ranges': 'bytes',
      });

      const head = await fetch(url, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe(String(bytes.length));
      expect((await head.arrayBuffer()).byteLength).toBe(0);

      const part = await fetch(url, { headers: { range: 'bytes=2-5' } });
      expect(part.status).toBe(206);
      expect(part.headers.get('content-range')).toBe(`bytes 2-5/${bytes.length}`);
      expect(Buffer.from(await part.arrayBuffer())).toEqual(bytes.subarray(2, 6));

      const outside = await fetch(url, { headers: { range: `bytes=${bytes.length}-` } });
      expect(outside.status).toBe(416);
      expect(outside.headers.get('content-range')).toBe(`bytes */${bytes.length}`);
      await outside.arrayBuffer();

      // Only under the namespace: elsewhere the digest names nothing.
      expect((await fetch(`${server.url}/v2/pkg/aa1/blobs/${digest}`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

describe('the tags list of the namespace', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'handler-tags-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lists the code names and stored composites of catalog code names, and no other stored tag', async () => {
    const layout = new LayoutUpstream({ dir });
    const catalog = new UpstreamCatalog({ upstream: layout, repository: 'hostpull/catalog', ttlMs: 0 });
    for (const code of ['AA1', 'BB2', 'GONE1']) {
      await pushImageTo(layout, `pkg/${code.toLowerCase()}`, '1', [buildLayer(packageFiles(code, { bytes: 512, files: 1 }))]);
      await catalog.put(code, { image: `pkg/${code.toLowerCase()}:1`, prefix: packagePrefix(code), env: {}, pathAdd: [] });
    }
    const server = await listen({ upstream: layout, catalog, namespace: 'listed', cacheTtlMs: 0, logger: silentLogger() });
    try {
      const manifest = await fetch(`${server.url}/v2/listed/manifests/AA1-BB2`);
      expect(manifest.status).toBe(200);
      expect((await fetch(`${server.url}/v2/listed/manifests/AA1-GONE1`)).status).toBe(200);
      expect(await catalog.remove('GONE1')).toBe(true);
      // What else lives under the namespace: a referrers fallback index, a layer's prefetch list.
      const bytes = Buffer.from(await manifest.arrayBuffer());
      const hex = digestOf(bytes).slice('sha256:'.length);
      for (const tag of [`sha256-${hex}`, `prefetch.sha256-${hex}`]) await layout.putManifest('listed', tag, bytes, 'application/vnd.oci.image.manifest.v1+json');
      expect(await layout.listTags('listed')).toHaveLength(4);

      const list = (await (await fetch(`${server.url}/v2/listed/tags/list`)).json()) as { tags: string[] };
      expect(list.tags).toEqual(['AA1', 'AA1-BB2', 'BB2']);
      // Every tag listed is one a client can pull.
      for (const tag of list.tags) expect((await fetch(`${server.url}/v2/listed/manifests/${tag}`, { method: 'HEAD' })).status, tag).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe('composites over a registry-like upstream, from several replicas', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'handler-replicas-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lets a replica that did not build a composite serve the TOC blobs its manifest names', async () => {
    const upstream = perRepository(new LayoutUpstream({ dir }));
    const catalog = new UpstreamCatalog({ upstream, repository: 'hostpull/catalog', ttlMs: 0 });
    const baseToc = (await pushImageWithToc(upstream, 'pkg/base', 'BASE')).toc;
    const pkgToc = (await pushImageWithToc(upstream, 'pkg/tt1', 'TT1')).toc;
    await catalog.put('TT1', { image: 'pkg/tt1:1', prefix: packagePrefix('TT1'), env: {}, pathAdd: [] });
    const deps = { upstream, catalog, namespace: 'hostpull', base: 'pkg/base:1', logger: silentLogger() };
    const [a, b] = [await listen(deps), await listen(deps)];
    try {
      const manifest = (await (await fetch(`${a.url}/v2/hostpull/manifests/TT1`)).json()) as { layers: Array<{ annotations?: Record<string, string> }> };
      expect(manifest.layers.map((l) => l.annotations?.[TOC_ANNOTATION])).toEqual([baseToc, pkgToc]);
      for (const toc of [baseToc, pkgToc]) {
        const res = await fetch(`${b.url}/v2/hostpull/blobs/${toc}`);
        expect(res.status, toc).toBe(200);
        expect(digestOf(Buffer.from(await res.arrayBuffer()))).toBe(toc);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});
