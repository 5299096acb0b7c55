/**
 * The TOC of a seekable package layer as a referrer, against both upstreams (an OCI layout and a
 * real CNCF distribution 2.8, which has no referrers API: the tag-schema fallback carries it),
 * and its digest on the package's (and a seekable base's) layer descriptor in the composite the
 * server synthesises.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushBaseImage } from '../../../src/demo/push-base.js';
import { silentLogger } from '../../../src/log.js';
import { parseManifest } from '../../../src/oci/manifest.js';
import { parseTocBlob, TOC_ANNOTATION, TOC_ARTIFACT_TYPE } from '../../../src/oci/seekable-toc.js';
import { publishPackage } from '../../../src/publish/publish.js';
import { UpstreamCatalog } from '../../../src/server/catalog.js';
import { CompositeResolver } from '../../../src/server/composite.js';
import { LayoutUpstream } from '../../../src/server/layout-upstream.js';
import { listReferrers, referrersTag } from '../../../src/server/referrers.js';
import { RegistryUpstream } from '../../../src/server/registry-upstream.js';
import { readBlobBytes } from '../../../src/server/upstream-image.js';
import type { Upstream } from '../../../src/server/upstream.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

let registry: TestRegistry;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await makeTempDir('seekable-publish');
  await mkdir(join(work, 'tree', 'bin'), { recursive: true });
  await writeFile(join(work, 'tree', 'bin', 'x'), Buffer.alloc(300_000, 'x'));
  await mkdir(join(work, 'rootfs', 'bin'), { recursive: true });
  await writeFile(join(work, 'rootfs', 'bin', 'sh'), '#!/bin/true\n', { mode: 0o755 });
}, 60_000);

afterAll(async () => {
  await registry?.stop();
  if (work) await removeTempDir(work);
});

describe.each([
  ['an OCI layout', () => new LayoutUpstream({ dir: join(work, 'layout') }) as Upstream],
  ['CNCF distribution 2.8', () => new RegistryUpstream({ url: registry.url }) as Upstream],
])('a TOC attached as a referrer in %s', (_name, make) => {
  it('is listed for the package manifest and named on the layer of every composite', async () => {
    const upstream = make();
    try {
      const published = await publishPackage({ dir: join(work, 'tree'), code: 'XX1.0', prefix: '/opt/xx', upstream, spanSize: 64 * 1024 });
      const refs = await listReferrers(upstream, 'pkg/xx1.0', published.manifestDigest, TOC_ARTIFACT_TYPE);
      expect(refs).toHaveLength(1);
      expect(await upstream.getManifest('pkg/xx1.0', referrersTag(published.manifestDigest))).not.toBeNull();
      // Publishing the same tree again adds nothing.
      await publishPackage({ dir: join(work, 'tree'), code: 'XX1.0', prefix: '/opt/xx', upstream, spanSize: 64 * 1024 });
      expect(await listReferrers(upstream, 'pkg/xx1.0', published.manifestDigest, TOC_ARTIFACT_TYPE)).toHaveLength(1);

      const blob = await readBlobBytes(upstream, 'pkg/xx1.0', published.tocDigest, 1 << 20);
      const toc = parseTocBlob(blob!, published.tocDigest, 'test');
      expect(toc.digest).toBe(published.layerDigest);
      expect(toc.diffId).toBe(published.diffId);
      expect(toc.spans.length).toBeGreaterThan(1);

      const catalog = new UpstreamCatalog({ upstream, repository: 'hostpull/catalog', ttlMs: 0 });
      await catalog.put('XX1.0', { image: 'pkg/xx1.0:latest', prefix: '/opt/xx', env: {}, pathAdd: [] });
      const resolver = new CompositeResolver({ upstream, catalog, namespace: 'hostpull', logger: silentLogger() });
      const composite = await resolver.resolve('XX1.0');
      const parsed = parseManifest(composite.manifest);
      expect(parsed.kind === 'manifest' && parsed.manifest.layers[0]!.annotations).toMatchObject({ [TOC_ANNOTATION]: published.tocDigest, 'org.opencontainers.image.title': 'XX1.0' });
      // The node fetches the TOC under the namespace, by digest.
      expect(resolver.blobSource(published.tocDigest)).toBe('pkg/xx1.0');

      // A base pushed as the demo pushes it (GNU tar of a rootfs, made seekable) is named too.
      const base = await pushBaseImage({ rootfs: join(work, 'rootfs'), upstream, repository: 'base/x', tag: 'v1', tmpDir: work });
      const withBase = new CompositeResolver({ upstream, catalog, namespace: 'hostpull', base: 'base/x:v1', logger: silentLogger() });
      const layers = parseManifest((await withBase.resolve('XX1.0')).manifest);
      expect(layers.kind === 'manifest' && layers.manifest.layers.map((l) => l.annotations?.[TOC_ANNOTATION])).toEqual([base.tocDigest, published.tocDigest]);
      expect(withBase.blobSource(base.tocDigest)).toBe('base/x');
      // Mounted under the namespace with the layers: a replica that did not build the composite
      // (and so knows no package repository to look in) finds them there.
      for (const toc of [published.tocDigest, base.tocDigest]) expect(await upstream.blobSize('hostpull', toc), toc).toBeGreaterThan(0);
    } finally {
      await upstream.close();
    }
  }, 60_000);
});
