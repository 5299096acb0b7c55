import { HostpullError } from '../errors.js';
import { readBounded } from '../util/index.js';
import { checkManifestAgainstConfig, digestOf, hostPlatform, isDigest, MAX_CONFIG_BYTES, parseImageConfig, parseManifest, selectPlatform, type Digest, type ImageConfig, type ImageManifest, type Platform } from '../oci/index.js';
import type { Upstream } from './upstream.js';

export interface UpstreamImage {
  repo: string;
  manifestDigest: Digest;
  manifest: ImageManifest;
  config: ImageConfig;
}

/** Splits `repo:tag` / `repo@digest` as stored in the catalog or given by --base. */
export function splitImageName(image: string): { repo: string; reference: string } {
  const at = image.indexOf('@');
  if (at > 0) return { repo: image.slice(0, at), reference: image.slice(at + 1) };
  const colon = image.lastIndexOf(':');
  if (colon > 0 && !image.slice(colon).includes('/')) return { repo: image.slice(0, colon), reference: image.slice(colon + 1) };
  return { repo: image, reference: 'latest' };
}

export async function readBlobBytes(upstream: Upstream, repo: string, digest: Digest, maxBytes: number, signal?: AbortSignal): Promise<Buffer | null> {
  const blob = await upstream.getBlob(repo, digest, undefined, signal);
  if (!blob) return null;
  if (blob.size > maxBytes) {
    blob.stream.destroy();
    throw new HostpullError('BLOB_TOO_LARGE', `blob ${digest} in ${repo} is ${blob.size} bytes; at most ${maxBytes} expected`);
  }
  const bytes = await readBounded(blob.stream, maxBytes);
  if (!bytes) throw new HostpullError('BLOB_TOO_LARGE', `blob ${digest} in ${repo} exceeds ${maxBytes} bytes`);
  if (digestOf(bytes) !== digest) throw new HostpullError('DIGEST_MISMATCH', `blob ${digest} from ${upstream.location}/${repo} does not match its digest`);
  return bytes;
}

/**
 * Reads an image (manifest and config) from the upstream; an index is narrowed to `platform`.
 * Returns null when the image is not there.
 */
export async function readUpstreamImage(upstream: Upstream, image: string, platform: Platform = hostPlatform(), signal?: AbortSignal): Promise<UpstreamImage | null> {
  const { repo, reference } = splitImageName(image);
  let stored = await upstream.getManifest(repo, reference, signal);
  if (!stored) return null;
  let parsed = parseManifest(stored.bytes, stored.mediaType, `manifest of ${image}`);
  if (parsed.kind === 'index') {
    const chosen = selectPlatform(parsed.index, platform, `index of ${image}`);
    stored = await upstream.getManifest(repo, chosen.digest, signal);
    if (!stored) return null;
    parsed = parseManifest(stored.bytes, stored.mediaType, `manifest of ${image}`);
    if (parsed.kind !== 'manifest') throw new HostpullError('MANIFEST_INVALID', `${image}: index points at another index`);
  }
  const configBytes = await readBlobBytes(upstream, repo, parsed.manifest.config.digest, MAX_CONFIG_BYTES, signal);
  if (!configBytes) throw new HostpullError('PACKAGE_INVALID', `${image}: config blob ${parsed.manifest.config.digest} is missing from ${upstream.location}`);
  const config = parseImageConfig(configBytes, `config of ${image}`);
  checkManifestAgainstConfig(parsed.manifest, config, image);
  if (!isDigest(stored.digest)) throw new HostpullError('UPSTREAM_ERROR', `${image}: upstream gave no valid digest`);
  return { repo, manifestDigest: stored.digest, manifest: parsed.manifest, config };
}
