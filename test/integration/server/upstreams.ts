/**
 * Upstream factories for the server's conformance suite: the same tests run against an OCI
 * layout directory and a real CNCF docker-registry (containerd's ContentSuite pattern).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf, MediaType, TOC_ARTIFACT_TYPE, TOC_LAYER_ANNOTATION, TOC_MEDIA_TYPE, type Digest } from '../../../src/oci/index.js';
import { LayoutUpstream } from '../../../src/server/layout-upstream.js';
import { artifactManifest, attachReferrer } from '../../../src/server/referrers.js';
import { RegistryUpstream } from '../../../src/server/registry-upstream.js';
import type { Upstream } from '../../../src/server/upstream.js';
import type { ServerOptions } from '../../../src/server/serve.js';
import { buildLayer, imageConfig, imageManifest, packageFiles, type BuiltLayer, type ImageConfigSpec } from '../../helpers/fixtures.js';
import { startRegistry } from '../../helpers/registry.js';

export interface TestUpstream {
  /** A client of the same upstream, for the test to push fixtures with. */
  upstream: Upstream;
  /** What to hand startServer to use it. */
  serverOptions: Pick<ServerOptions, 'upstream' | 'layout'>;
  stop(): Promise<void>;
}

export const upstreamFactories: Array<{ name: string; start: () => Promise<TestUpstream> }> = [
  {
    name: 'oci-layout',
    async start() {
      const dir = await mkdtemp(join(tmpdir(), 'hostpull-layout-'));
      return {
        upstream: new LayoutUpstream({ dir }),
        serverOptions: { layout: dir },
        stop: () => rm(dir, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 'docker-registry',
    async start() {
      const reg = await startRegistry();
      const upstream = new RegistryUpstream({ url: reg.url });
      return {
        upstream,
        serverOptions: { upstream: reg.url },
        async stop() {
          await upstream.close();
          await reg.stop();
        },
      };
    },
  },
];

/** Pushes a one-or-more-layer image through the Upstream interface; returns its manifest digest. */
export async function pushImageTo(upstream: Upstream, repo: string, tag: string, layers: BuiltLayer[], config: ImageConfigSpec = {}): Promise<Digest> {
  const configBytes = imageConfig(layers, config);
  for (const l of layers) await upstream.putBlob(repo, l.digest, l.size, l.blob);
  await upstream.putBlob(repo, digestOf(configBytes), configBytes.length, configBytes);
  const manifest = imageManifest(configBytes, layers);
  return upstream.putManifest(repo, tag, manifest, 'application/vnd.oci.image.manifest.v1+json');
}

/**
 * Pushes `repo:1`, one layer of `code`'s files, with a TOC attached as publish attaches it (the
 * server only names the TOC blob, it does not read it: any bytes do).
 */
export async function pushImageWithToc(upstream: Upstream, repo: string, code: string): Promise<{ manifestDigest: Digest; layer: BuiltLayer; toc: Digest }> {
  const layer = buildLayer(packageFiles(code, { bytes: 512, files: 1 }));
  const manifestDigest = await pushImageTo(upstream, repo, '1', [layer]);
  const subject = (await upstream.getManifest(repo, manifestDigest))!;
  const toc = Buffer.from(`toc of ${code}`);
  await upstream.putBlob(repo, digestOf(toc), toc.length, toc);
  const descriptor = { mediaType: TOC_MEDIA_TYPE, digest: digestOf(toc), size: toc.length };
  const artifact = artifactManifest(TOC_ARTIFACT_TYPE, [descriptor], { mediaType: MediaType.OciManifest, digest: manifestDigest, size: subject.bytes.length }, { [TOC_LAYER_ANNOTATION]: layer.digest });
  await attachReferrer(upstream, repo, artifact, manifestDigest);
  return { manifestDigest, layer, toc: digestOf(toc) };
}
