import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/log.js';
import { digestOf, MediaType, PREFETCH_ARTIFACT_TYPE, PREFETCH_MEDIA_TYPE, TOC_ANNOTATION, type Digest } from '../../../src/oci/index.js';
import type { CompositeResolver } from '../../../src/server/composite.js';
import { sendError } from '../../../src/server/http-util.js';
import { LayoutUpstream } from '../../../src/server/layout-upstream.js';
import { toOciError } from '../../../src/server/oci-error.js';
import { handlePrefetchApi, layerPrefetchTag, PREFETCH_API_PREFIX } from '../../../src/server/prefetch-api.js';
import { artifactManifest, EMPTY_CONFIG_DESCRIPTOR } from '../../../src/server/referrers.js';

const NAMESPACE = 'hostpull';
const layer = (name: string) => digestOf(Buffer.from(`layer ${name}`));
const [L1, L2, L3] = [layer('1'), layer('2'), layer('3')];

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
  let server: Server;
  let base: string;
  const made = new Map<Digest, { manifest: Buffer }>();
  const make = (layers: Digest[]) => {
    const c = composite(layers);
    made.set(c.digest, c);
    return c.digest;
  };
  const [X, Y, Z, W, V] = [make([L1, L2]), make([L1, L3]), make([L3]), make([L1]), make([L1, L3, L2])];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prefetch-api-'));
    upstream = new LayoutUpstream({ dir });
    // The composites' manifests as the resolver would have them.
    const resolver = { byDigest: (d: Digest) => made.get(d) } as unknown as CompositeResolver;
    server = createServer((req, res) => {
      handlePrefetchApi(req, res, new URL(req.url!, 'http://x').pathname, { upstream, namespace: NAMESPACE, resolver, logger: silentLogger() }).catch((err: unknown) => sendError(req, res, toOciError(err)));
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

  it('leaves out a layer whose tagged list cannot be read, not the others', async () => {
    // L3's tag now names a prefetch artifact whose blob is not a prefetch list.
    const junk = Buffer.from('not json');
    const blob = { mediaType: PREFETCH_MEDIA_TYPE, digest: digestOf(junk), size: junk.length };
    await upstream.putBlob(NAMESPACE, blob.digest, junk.length, junk);
    await upstream.putBlob(NAMESPACE, EMPTY_CONFIG_DESCRIPTOR.digest, 2, Buffer.from('{}'));
    const bad = artifactManifest(PREFETCH_ARTIFACT_TYPE, [blob], { mediaType: MediaType.OciManifest, digest: Z, size: made.get(Z)!.manifest.length }, {});
    await upstream.putManifest(NAMESPACE, layerPrefetchTag(L3), bad.bytes, MediaType.OciManifest);
    expect(await get(V)).toEqual({ status: 200, body: { version: 1, layers: { [L1]: [0, 2], [L2]: [1] }, derived: true } });
    expect((await get(Z)).status).toBe(404);
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
