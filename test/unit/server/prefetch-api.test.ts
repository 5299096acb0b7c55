import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/log.js';
import { digestOf, MediaType, PREFETCH_ARTIFACT_TYPE, PREFETCH_MEDIA_TYPE, TOC_ANNOTATION, type Digest, type PrefetchList } from '../../../src/oci/index.js';
import type { CompositeResolver } from '../../../src/server/composite.js';
import { sendError } from '../../../src/server/http-util.js';
import { LayoutUpstream } from '../../../src/server/layout-upstream.js';
import { toOciError } from '../../../src/server/oci-error.js';
import { handlePrefetchApi, layerPrefetchTag, PREFETCH_API_PREFIX, PREFETCH_CACHE_ENTRIES } from '../../../src/server/prefetch-api.js';
import { artifactManifest, EMPTY_CONFIG_DESCRIPTOR } from '../../../src/server/referrers.js';
import { TtlCache } from '../../../src/server/ttl-cache.js';

const NAMESPACE = 'hostpull';
const layer = (name: string) => digestOf(Buffer.from(`layer ${name}`));
const [L1, L2, L3, L4, L5, L6] = [layer('1'), layer('2'), layer('3'), layer('4'), layer('5'), layer('6')];

/** A composite manifest whose layers all have a TOC (the only layers a prefetch list may name). */
function composite(layers: Digest[]): { digest: Digest; manifest: Buffer } {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: EMPTY_CONFIG_DESCRIPTOR,
      layers: layers.map((digest) => ({ mediaType: MediaType.OciLayerGzip, digest, size: 1000, annotations: { [TOC_ANNOTATION]: digestOf(Buffer.from(`toc of ${digest}`)) } })),
    }),
  );
  return { digest: digestOf(manifest), manifest };
}

describe('the prefetch API of hostpull serve', () => {
  let dir: string;
  let upstream: LayoutUpstream;
  /** Manifest reads the API made of the upstream. */
  let manifestReads = 0;
  let server: Server;
  let base: string;
  const made = new Map<Digest, { manifest: Buffer }>();
  const make = (layers: Digest[]) => {
    const c = composite(layers);
    made.set(c.digest, c);
    return c.digest;
  };
  const [X, Y, Z, W, V] = [make([L1, L2]), make([L1, L3]), make([L3]), make([L1]), make([L1, L3, L2])];
  const [Q1, Q2, J1, J2] = [make([L4]), make([L5]), make([L1, L6, L2]), make([L6])];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefetch-api-'));
    upstream = new LayoutUpstream({ dir });
    // The composites' manifests as the resolver would have them.
    const resolver = { byDigest: (d: Digest) => made.get(d) } as unknown as CompositeResolver;
    // The upstream, counting manifest reads (its methods bound to it: they use private fields).
    const counted = new Proxy(upstream, {
      get(target, key) {
        if (key === 'getManifest') manifestReads++;
        const value: unknown = Reflect.get(target, key, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const deps = { upstream: counted, namespace: NAMESPACE, resolver, logger: silentLogger(), lists: new TtlCache<PrefetchList | null>(60_000, PREFETCH_CACHE_ENTRIES) };
    server = createServer((req, res) => {
      handlePrefetchApi(req, res, new URL(req.url!, 'http://x').pathname, deps).catch((err: unknown) => sendError(req, res, toOciError(err)));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}${PREFETCH_API_PREFIX}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  const get = async (c: Digest) => {
    const res = await fetch(`${base}/${c}`);
    return { status: res.status, body: (await res.json()) as unknown };
  };
  const put = async (c: Digest, layers: Record<string, number[]>) => (await fetch(`${base}/${c}`, { method: 'PUT', body: JSON.stringify({ version: 1, layers }) })).status;

  it("answers a composite with no list of its own from the first list stored with each of its layers, and then with its own", async () => {
    expect((await get(Y)).status).toBe(404);
    expect(await put(X, { [L1]: [0, 2], [L2]: [1] })).toBe(201);
    // Y shares L1 with X: X's spans of L1; nothing is known of L3.
    expect(await get(Y)).toEqual({ status: 200, body: { version: 1, layers: { [L1]: [0, 2] }, derived: true } });
    expect((await get(Z)).status).toBe(404);

    expect(await put(Y, { [L1]: [5], [L3]: [3, 4] })).toBe(201);
    expect(await get(Y)).toEqual({ status: 200, body: { version: 1, layers: { [L1]: [5], [L3]: [3, 4] } } });
    expect(await get(Z)).toEqual({ status: 200, body: { version: 1, layers: { [L3]: [3, 4] }, derived: true } });
    // L1 keeps the first list stored with it in (X's), not Y's; the layers come in manifest order.
    expect(await get(W)).toEqual({ status: 200, body: { version: 1, layers: { [L1]: [0, 2] }, derived: true } });
    expect(Object.keys(((await get(V)).body as { layers: object }).layers)).toEqual([L1, L3, L2]);
    // X's own list is X's, not derived.
    expect(await get(X)).toEqual({ status: 200, body: { version: 1, layers: { [L1]: [0, 2], [L2]: [1] } } });
  });

  it('reads the upstream once for a burst of asks, and answers from what it stored', async () => {
    let before = manifestReads;
    expect((await get(Q1)).status).toBe(404);
    const one = manifestReads - before;
    expect(one).toBeGreaterThan(0);
    // Ten nodes ask at once for another composite of the same shape: the reads of one ask.
    before = manifestReads;
    expect((await Promise.all(Array.from({ length: 10 }, () => get(Q2)))).map((r) => r.status)).toEqual(Array(10).fill(404));
    expect(manifestReads - before).toBe(one);
    // Within the cache's lifetime, "none" is not asked again.
    before = manifestReads;
    expect((await get(Q2)).status).toBe(404);
    expect(manifestReads - before).toBe(0);
    // A list stored here is answered at once, without reading it back.
    expect(await put(Q2, { [L5]: [7] })).toBe(201);
    before = manifestReads;
    expect(await get(Q2)).toEqual({ status: 200, body: { version: 1, layers: { [L5]: [7] } } });
    expect(manifestReads - before).toBe(0);
  });

  it('leaves out a layer whose tagged list cannot be read, not the others', async () => {
    // L6's tag names a prefetch artifact whose blob is not a prefetch list.
    const junk = Buffer.from('not json');
    const blob = { mediaType: PREFETCH_MEDIA_TYPE, digest: digestOf(junk), size: junk.length };
    await upstream.putBlob(NAMESPACE, blob.digest, junk.length, junk);
    await upstream.putBlob(NAMESPACE, EMPTY_CONFIG_DESCRIPTOR.digest, 2, Buffer.from('{}'));
    const bad = artifactManifest(PREFETCH_ARTIFACT_TYPE, [blob], { mediaType: MediaType.OciManifest, digest: J2, size: made.get(J2)!.manifest.length }, {});
    await upstream.putManifest(NAMESPACE, layerPrefetchTag(L6), bad.bytes, MediaType.OciManifest);
    expect(await get(J1)).toEqual({ status: 200, body: { version: 1, layers: { [L1]: [0, 2], [L2]: [1] }, derived: true } });
    expect((await get(J2)).status).toBe(404);
  });

  it('says so of a digest that is no composite of this server', async () => {
    const res = await fetch(`${base}/${digestOf(Buffer.from('no composite'))}`);
    expect(res.status).toBe(404);
    expect(await res.text()).toContain('is not a composite this server made');
  });

  it('names a layer by a tag within the 128 characters a tag may have, and none for a longer digest', () => {
    expect(layerPrefetchTag(L1)).toBe(`prefetch.sha256-${L1.slice('sha256:'.length)}`);
    expect(layerPrefetchTag(`sha512:${'a'.repeat(128)}` as Digest)).toBeUndefined();
  });
});
