/**
 * DESIGN §2 "The trust boundary" for lazy layers, through the real parts: hostile packages
 * published as seekable layers (span gzip + TOC referrer, as `hostpull publish` makes them) in a
 * CNCF registry, served by `hostpull serve` with a static catalog (no check at registration, so
 * only the node stands in the way), started lazily by a node. Each is refused with the code and
 * rule that a whole pull of the same composite gives, before anything of it is served: no FUSE
 * mount, no container, not one byte of its layer fetched.
 */
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareContainer } from '../../../src/container/prepare-container.js';
import { isHostpullError } from '../../../src/errors.js';
import { LazyLayers } from '../../../src/lazy/lazy-layers.js';
import { silentLogger } from '../../../src/log.js';
import { MediaType } from '../../../src/oci/index.js';
import { resolveReference } from '../../../src/oci/reference.js';
import { attachToc } from '../../../src/publish/attach-toc.js';
import { writeSeekableLayer, type SeekableLayer } from '../../../src/publish/seekable-layer.js';
import { Puller } from '../../../src/pull/puller.js';
import { RegistryClient } from '../../../src/registry/index.js';
import { listMountsUnder } from '../../../src/rootfs/index.js';
import { RegistryUpstream } from '../../../src/server/registry-upstream.js';
import { startServer, type RunningServer } from '../../../src/server/serve.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { runCli } from '../../helpers/cli.js';
import { baseFiles, buildLayer, type BuiltLayer } from '../../helpers/fixtures.js';
import { HOSTILE, type Hostile } from '../../helpers/hostile-packages.js';
import { blobRequests, startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { pushImageTo } from '../server/upstreams.js';

/** The hostile tar as a seekable layer: its blob (in memory, test-sized) and TOC. */
async function seekable(tar: Buffer): Promise<{ built: BuiltLayer; layer: SeekableLayer }> {
  const out = new PassThrough();
  const parts: Buffer[] = [];
  out.on('data', (b: Buffer) => parts.push(b));
  const layer = await writeSeekableLayer(Readable.from([tar]), out, { where: 'hostile tar', spanSize: 64 * 1024 });
  const blob = Buffer.concat(parts);
  return { layer, built: { tar, blob, digest: layer.digest, diffId: layer.diffId, size: layer.size, mediaType: MediaType.OciLayerGzip } };
}

/** The code and rule of what `fn` throws. */
async function refusal(fn: () => Promise<unknown>): Promise<{ code: string; rule: unknown; message: string }> {
  try {
    await fn();
  } catch (err) {
    if (!isHostpullError(err)) throw err;
    return { code: err.code, rule: err.details?.rule, message: err.message };
  }
  throw new Error('expected a refusal');
}

describe('lazy layers are held to their package claim', () => {
  let registry: TestRegistry;
  let upstream: RegistryUpstream;
  let server: RunningServer;
  let work: string;
  const layers = new Map<string, SeekableLayer>();

  beforeAll(async () => {
    registry = await startRegistry();
    upstream = new RegistryUpstream({ url: registry.url });
    work = await makeTempDir('lazy-claims');
    await pushImageTo(upstream, 'pkg/base', 'latest', [buildLayer(baseFiles())], { cmd: ['/bin/sh'] });
    const catalog: Record<string, unknown> = {};
    for (const h of HOSTILE) {
      const repo = `pkg/${h.code.toLowerCase().replace(/\./g, '')}`;
      const { built, layer } = await seekable(h.layer.tar);
      const digest = await pushImageTo(upstream, repo, 'v1', [built]);
      const manifest = (await upstream.getManifest(repo, digest))!;
      await attachToc(upstream, repo, layer, { mediaType: MediaType.OciManifest, digest, size: manifest.bytes.length }, '2020-01-01T00:00:00Z');
      layers.set(h.code, layer);
      catalog[h.code] = { image: `${repo}:v1`, prefix: h.prefix };
    }
    {
      // One fit package: only a helper that cannot mount stands between it and a lazy start.
      const { built, layer } = await seekable(buildLayer([{ path: '/opt/fit/bin/hello', mode: 0o755, content: 'hello\n' }]).tar);
      const digest = await pushImageTo(upstream, 'pkg/fit', 'v1', [built]);
      const manifest = (await upstream.getManifest('pkg/fit', digest))!;
      await attachToc(upstream, 'pkg/fit', layer, { mediaType: MediaType.OciManifest, digest, size: manifest.bytes.length }, '2020-01-01T00:00:00Z');
      layers.set('FIT1.0', layer);
      catalog['FIT1.0'] = { image: 'pkg/fit:v1', prefix: '/opt/fit' };
    }
    await writeFile(join(work, 'catalog.json'), JSON.stringify({ entries: catalog }));
    server = await startServer({ upstream: registry.url, port: 0, base: 'pkg/base:latest', catalogFile: join(work, 'catalog.json'), cacheTtlMs: 60_000 });
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await upstream?.close();
    await registry?.stop();
    if (work) await removeTempDir(work);
  });

  async function node(name: string): Promise<{ store: ContentStore; client: RegistryClient; close: () => Promise<void> }> {
    const store = await ContentStore.open(join(work, name));
    const client = new RegistryClient({ logger: silentLogger() });
    return {
      store,
      client,
      close: async () => {
        await client.close();
        store.close();
      },
    };
  }

  it.each(HOSTILE.map((h) => [h.rule, h.code, h] as const))('%s (%s): refused from its TOC as a whole pull refuses it; nothing of it fetched or mounted', async (_rule, code, h: Hostile) => {
    const ref = resolveReference(code, { server: server.host, namespace: 'hostpull' });
    const layer = layers.get(code)!;

    const lazyNode = await node(`lazy-${code}`);
    const lazy = new LazyLayers({ store: lazyNode.store, client: lazyNode.client, logger: silentLogger() });
    const mark = await registry.mark();
    let lazyVerdict;
    try {
      lazyVerdict = await refusal(() => prepareContainer({ ...lazyNode, logger: silentLogger() }, ref, { lazy }));
      // Its TOC was read (that is how it was judged); not a byte of its layer was asked for.
      const blobs = blobRequests(await registry.since(mark)).map((e) => e.path);
      expect(blobs.some((p) => p.endsWith(layer.tocDigest))).toBe(true);
      expect(blobs.filter((p) => p.includes(layer.digest))).toEqual([]);
      expect(listMountsUnder(lazyNode.store.layout.root)).toEqual([]);
      expect(await readdir(lazyNode.store.layout.containersDir)).toEqual([]);
      expect((await readdir(lazyNode.store.layout.layersDir)).filter((n) => n !== '1')).toEqual([]);
    } finally {
      await lazy.close();
      await lazyNode.close();
    }

    const wholeNode = await node(`whole-${code}`);
    let wholeVerdict;
    try {
      wholeVerdict = await refusal(() => new Puller({ ...wholeNode, logger: silentLogger() }).pull(ref));
    } finally {
      await wholeNode.close();
    }
    expect({ code: lazyVerdict.code, rule: lazyVerdict.rule }).toEqual({ code: 'LAYER_UNSAFE', rule: h.rule });
    expect({ code: wholeVerdict.code, rule: wholeVerdict.rule }).toEqual({ code: lazyVerdict.code, rule: lazyVerdict.rule });
    expect(lazyVerdict.message).toMatch(h.message);
    expect(wholeVerdict.message).toMatch(h.message);
  });

  it('a fit layer whose view the helper cannot mount (here: no built helper beside src/) is judged here, then pulled whole, with the reason', async () => {
    const ref = resolveReference('FIT1.0', { server: server.host, namespace: 'hostpull' });
    const layer = layers.get('FIT1.0')!;
    const n = await node('fit');
    const lazy = new LazyLayers({ store: n.store, client: n.client, logger: silentLogger() });
    try {
      const pulled = await new Puller({ ...n, logger: silentLogger() }).pull(ref, {
        unpack: true,
        defer: async (candidates) => new Set((await lazy.choose({ registry: ref.registry, repository: ref.repository }, candidates)).keys()),
      });
      expect(pulled.manifestDigest).toMatch(/^sha256:/);
      const arrival = n.store.lazyLayers.arrivals().find((a) => a.blobDigest === layer.digest);
      expect(arrival).toMatchObject({ mode: 'whole', tocDigest: null });
      expect(arrival!.reason).toMatch(/lazy-layer helper .* does not exist/);
      expect(n.store.layers.get(layer.diffId)).toBeDefined();
      expect(listMountsUnder(n.store.layout.root)).toEqual([]);
    } finally {
      await lazy.close();
      await n.close();
    }
  });

  it('`hostpull run --lazy` of a hostile composite fails with the unpack\'s message and leaves nothing running or mounted', async () => {
    const h = HOSTILE[0]!;
    const root = join(work, 'cli');
    const r = await runCli(['--root', root, '--server', server.host, 'run', '--lazy', h.code, '--', '/bin/true'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(h.message);
    expect(listMountsUnder(root)).toEqual([]);
    expect(await readdir(join(root, 'containers'))).toEqual([]);
  });
});
