import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/log.js';
import { HostpullError, isHostpullError } from '../../../src/errors.js';
import { parseManifest, TOC_ANNOTATION, type Digest } from '../../../src/oci/index.js';
import { UpstreamCatalog } from '../../../src/server/catalog.js';
import { CompositeResolver } from '../../../src/server/composite.js';
import { LayoutUpstream } from '../../../src/server/layout-upstream.js';
import type { BlobBody, Upstream } from '../../../src/server/upstream.js';
import { buildLayer, packageFiles } from '../../helpers/fixtures.js';
import { referrersTag } from '../../../src/server/referrers.js';
import { toOciError } from '../../../src/server/oci-error.js';
import { pushImageTo, pushImageWithToc } from '../../integration/server/upstreams.js';

/** Counts manifest reads and writes, to see how often the resolver goes to the upstream. */
function counting(inner: Upstream): Upstream & { manifestReads: number; manifestPushes: number } {
  const wrapper = {
    kind: inner.kind,
    location: inner.location,
    manifestReads: 0,
    manifestPushes: 0,
    getManifest(repo: string, ref: string, signal?: AbortSignal) {
      wrapper.manifestReads++;
      return inner.getManifest(repo, ref, signal);
    },
    getBlob: inner.getBlob.bind(inner),
    blobSize: inner.blobSize.bind(inner),
    putBlob: inner.putBlob.bind(inner),
    putManifest(repo: string, tag: string | undefined, bytes: Buffer, mediaType: string, signal?: AbortSignal) {
      wrapper.manifestPushes++;
      return inner.putManifest(repo, tag, bytes, mediaType, signal);
    },
    listTags: inner.listTags.bind(inner),
    close: inner.close.bind(inner),
  };
  return wrapper;
}

describe('CompositeResolver and UpstreamCatalog', () => {
  let dir: string;
  let layout: LayoutUpstream;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'composite-test-'));
    layout = new LayoutUpstream({ dir });
    for (const code of ['AA1', 'BB2', 'CC3']) {
      await pushImageTo(layout, `pkg/${code.toLowerCase()}`, '1', [buildLayer(packageFiles(code, { bytes: 512, files: 1 }))], { env: [`${code}_HOME=/opt/${code}`] });
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('shares the catalog between replicas and keeps concurrent registrations from both', async () => {
    const a = new UpstreamCatalog({ upstream: layout, repository: 'hostpull/catalog', ttlMs: 0 });
    const b = new UpstreamCatalog({ upstream: new LayoutUpstream({ dir }), repository: 'hostpull/catalog', ttlMs: 0 });
    const entry = (code: string) => ({ image: `pkg/${code.toLowerCase()}:1`, prefix: `/opt/${code}`, env: {}, pathAdd: [] });
    await Promise.all([a.put('AA1', entry('AA1')), b.put('BB2', entry('BB2')), a.put('CC3', entry('CC3'))]);
    expect([...(await b.entries()).keys()].sort()).toEqual(['AA1', 'BB2', 'CC3']);
    expect(await a.remove('NOPE')).toBe(false);
  });

  it('resolves a burst of requests for a new composite once (single flight) and caches it', async () => {
    const up = counting(layout);
    const catalog = new UpstreamCatalog({ upstream: layout, repository: 'hostpull/catalog', ttlMs: 60_000 });
    const resolver = new CompositeResolver({ upstream: up, catalog, namespace: 'hostpull', cacheTtlMs: 60_000, logger: silentLogger() });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => resolver.resolve(i % 2 ? 'AA1-BB2' : 'BB2-AA1')));
    expect(new Set(results.map((r) => r.digest)).size).toBe(1);
    // Per package: its manifest, and the referrers fallback tag where a TOC would be listed.
    expect(up.manifestReads).toBe(4);
    await resolver.resolve('AA1-BB2');
    expect(up.manifestReads).toBe(4);
    expect(resolver.byDigest(results[0]!.digest)?.tag).toBe('AA1-BB2');
  });

  it('keeps at most maxComposites composites, and pushes at most that many new ones per TTL', async () => {
    const up = counting(layout);
    const catalog = new UpstreamCatalog({ upstream: layout, repository: 'hostpull/catalog', ttlMs: 60_000 });
    const resolver = new CompositeResolver({ upstream: up, catalog, namespace: 'bounded', cacheTtlMs: 60_000, maxComposites: 2, logger: silentLogger() });
    const made = [];
    for (const tag of ['AA1', 'BB2', 'CC3', 'AA1-BB2', 'BB2-CC3']) made.push(await resolver.resolve(tag));
    // Anonymous requests for ever new combinations: two pushes in this TTL window, not five.
    expect(up.manifestPushes).toBe(2);
    expect(await layout.listTags('bounded')).toEqual(['AA1', 'BB2']);
    // Served from memory all the same, while they are among the last two.
    expect(resolver.byDigest(made[4]!.digest)?.tag).toBe('BB2-CC3');
    expect(resolver.byDigest(made[0]!.digest)).toBeUndefined();
  });

  it('fails a resolution whose TOC lookup failed, rather than make the composite with another digest', async () => {
    const { manifestDigest, toc } = await pushImageWithToc(layout, 'pkg/tc1', 'TC1');
    const catalog = new UpstreamCatalog({ upstream: layout, repository: 'hostpull/catalog', ttlMs: 0 });
    await catalog.put('TC1', { image: 'pkg/tc1:1', prefix: '/opt/TC1', env: {}, pathAdd: [] });
    // The referrers fallback tag cannot be read once: a registry that hiccups.
    let failures = 1;
    const flaky = new Proxy(layout, {
      get(target, key) {
        if (key === 'getManifest') {
          return (repo: string, ref: string) =>
            ref === referrersTag(manifestDigest) && failures-- > 0 ? Promise.reject(new HostpullError('REGISTRY_UNAVAILABLE', 'registry answered 503')) : target.getManifest(repo, ref);
        }
        // Its methods bound to it: they use private fields.
        const value: unknown = Reflect.get(target, key, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const resolver = new CompositeResolver({ upstream: flaky, catalog, namespace: 'tocs', cacheTtlMs: 60_000, logger: silentLogger() });
    const failed = await resolver.resolve('AA1-TC1').then(
      () => undefined,
      (e: unknown) => e,
    );
    // The upstream's own 503 is passed on (clients back off and retry); another failure is a 502.
    expect(isHostpullError(failed, 'REGISTRY_UNAVAILABLE') && /table of contents of package TC1/.test(failed.message) && /retry/.test(failed.hint ?? '')).toBe(true);
    expect(toOciError(failed).status).toBe(503);
    // Nothing was pushed under the tag, and the failure was not cached: the retry has the TOC.
    expect(await layout.listTags('tocs')).toBeNull();
    const image = await resolver.resolve('AA1-TC1');
    const parsed = parseManifest(image.manifest);
    expect(parsed.kind === 'manifest' && parsed.manifest.layers.map((l) => l.annotations?.[TOC_ANNOTATION])).toEqual([undefined, toc]);
    const steady = new CompositeResolver({ upstream: layout, catalog, namespace: 'tocs', logger: silentLogger() });
    expect((await steady.resolve('AA1-TC1')).digest).toBe(image.digest);
  });

  it('answers 502 for a TOC lookup that failed otherwise than by an unreachable upstream', async () => {
    const { manifestDigest } = await pushImageWithToc(layout, 'pkg/tc2', 'TC2');
    const catalog = new UpstreamCatalog({ upstream: layout, repository: 'hostpull/catalog', ttlMs: 0 });
    await catalog.put('TC2', { image: 'pkg/tc2:1', prefix: '/opt/TC2', env: {}, pathAdd: [] });
    const broken = new Proxy(layout, {
      get(target, key) {
        if (key === 'getManifest') {
          return (repo: string, ref: string) => (ref === referrersTag(manifestDigest) ? Promise.reject(new HostpullError('REGISTRY_ERROR', 'registry answered 418')) : target.getManifest(repo, ref));
        }
        const value: unknown = Reflect.get(target, key, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const resolver = new CompositeResolver({ upstream: broken, catalog, namespace: 'tocs2', cacheTtlMs: 60_000, logger: silentLogger() });
    const failed = await resolver.resolve('AA1-TC2').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isHostpullError(failed, 'UPSTREAM_ERROR') && /table of contents of package TC2/.test(failed.message)).toBe(true);
    expect(toOciError(failed).status).toBe(502);
  });

  it('destroys the upstream body it read for a refused mount when the push fails', async () => {
    // Each blob read from the upstream: a body that ends only when destroyed (an undici body).
    const sources: Readable[] = [];
    /** True while the push opens a blob's body: only those reads are faked (not the configs'). */
    let opening = false;
    const refusing = new Proxy(layout, {
      get(target, key) {
        if (key === 'getBlob' && opening) {
          return () => {
            const stream = new Readable({ read() {} });
            stream.push(Buffer.alloc(1024));
            sources.push(stream);
            return Promise.resolve({ stream, size: 1 << 20, start: 0 });
          };
        }
        if (key === 'putBlob') {
          // The registry refuses the mount; the PUT of the bytes then fails after the first chunk.
          return async (repo: string, digest: Digest, size: number, body: BlobBody, opts?: { mountFrom?: string }) => {
            if (opts?.mountFrom === undefined || typeof body !== 'function') return target.putBlob(repo, digest, size, body);
            opening = true;
            const read = body();
            opening = false;
            await once(read, 'data');
            read.destroy();
            throw new Error('PUT failed: connection reset');
          };
        }
        // Its methods bound to it: they use private fields.
        const value: unknown = Reflect.get(target, key, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const catalog = new UpstreamCatalog({ upstream: layout, repository: 'hostpull/catalog', ttlMs: 0 });
    const resolver = new CompositeResolver({ upstream: refusing, catalog, namespace: 'refused', logger: silentLogger() });
    // Served from memory all the same: the push failure is logged.
    expect((await resolver.resolve('CC3')).tag).toBe('CC3');
    expect(sources).toHaveLength(1);
    // Destroyed on a later tick: wait for its close, for at most a second.
    const source = sources[0]!;
    if (!source.closed) await Promise.race([new Promise((r) => source.once('close', r)), new Promise((r) => setTimeout(r, 1000))]);
    expect(source.destroyed).toBe(true);
  });

  it('names every unknown code name', async () => {
    const catalog = new UpstreamCatalog({ upstream: layout, repository: 'hostpull/catalog' });
    const resolver = new CompositeResolver({ upstream: layout, catalog, namespace: 'hostpull', logger: silentLogger() });
    await expect(resolver.resolve('AA1-ZZ9-YY8')).rejects.toSatisfy(
      (e: unknown) => isHostpullError(e, 'MANIFEST_UNKNOWN') && /YY8, ZZ9/.test(e.message) && JSON.stringify(e.details) === '{"unknown":["YY8","ZZ9"]}',
    );
  });
});
