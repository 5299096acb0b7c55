import { createReadStream } from 'node:fs';
import { digestOf, hostPlatform, MediaType, type Descriptor, type Digest } from '../oci/index.js';
import type { Upstream } from '../server/index.js';

/** Where a seekable one-layer image (a package, the demo's base) went and what it holds. */
export interface PushedLayerImage {
  /** `repository:tag` in the upstream. */
  image: string;
  manifestDigest: Digest;
  layerDigest: Digest;
  diffId: Digest;
  size: number;
  /** The layer's table of contents (a blob attached to the image as an OCI referrer). */
  tocDigest: Digest;
}

/** An image of one gzip layer (a package, the demo's base), as pushed. */
export interface SingleLayerImage {
  layer: { file: string; digest: Digest; diffId: Digest; size: number };
  /** When it was made, RFC 3339 (the layer's fixed mtime: the same tree gives the same config). */
  created: string;
  /** The config's `config`: Env, Cmd, Labels… */
  runConfig: Record<string, unknown>;
  /** What the config's one history entry says made it. */
  createdBy: string;
  /** The manifest's annotations. */
  annotations: Record<string, string>;
}

export interface PushSingleLayerImageOptions {
  signal?: AbortSignal | undefined;
  /**
   * Runs once the manifest is stored by digest and before the tag is pushed: referrers attached
   * here (the layer's TOC) are there for whoever finds the image by its tag. A server resolving
   * a composite in between would otherwise build it without the TOC, under another digest. None
   * by default (the manifest is then pushed once, tagged).
   */
  beforeTag?: ((manifest: Descriptor) => Promise<void>) | undefined;
}

/**
 * Pushes the layer, a config for this host's platform and the manifest into `repository:tag` of
 * the upstream; returns the manifest's descriptor. The same image gives the same bytes, so
 * pushing it again is a no-op upstream.
 */
export async function pushSingleLayerImage(upstream: Upstream, repository: string, tag: string, image: SingleLayerImage, options: PushSingleLayerImageOptions = {}): Promise<Descriptor> {
  const { signal, beforeTag } = options;
  const platform = hostPlatform();
  const config = Buffer.from(
    JSON.stringify({
      created: image.created,
      architecture: platform.architecture,
      os: platform.os,
      config: image.runConfig,
      rootfs: { type: 'layers', diff_ids: [image.layer.diffId] },
      history: [{ created: image.created, created_by: image.createdBy }],
    }),
  );
  const configDigest = digestOf(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: configDigest, size: config.length },
      layers: [{ mediaType: MediaType.OciLayerGzip, digest: image.layer.digest, size: image.layer.size }],
      annotations: image.annotations,
    }),
  );
  const opts = signal ? { signal } : {};
  await upstream.putBlob(repository, image.layer.digest, image.layer.size, () => createReadStream(image.layer.file), opts);
  await upstream.putBlob(repository, configDigest, config.length, config, opts);
  if (beforeTag) {
    const digest = await upstream.putManifest(repository, undefined, manifest, MediaType.OciManifest, signal);
    await beforeTag({ mediaType: MediaType.OciManifest, digest, size: manifest.length });
  }
  const digest = await upstream.putManifest(repository, tag, manifest, MediaType.OciManifest, signal);
  return { mediaType: MediaType.OciManifest, digest, size: manifest.length };
}
