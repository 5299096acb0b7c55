import { HostpullError } from '../errors.js';
import { digestOf, MAX_CONFIG_BYTES, parseImageConfig, type ImageConfig, type ImageManifest } from '../oci/index.js';
import type { RegistryReader, RegistryRequestOptions, RepositoryRef } from '../registry/index.js';
import type { ContentStore } from '../store/index.js';

/**
 * An image's config: from the store when it has it, else fetched (bounded, verified against the
 * manifest's descriptor) and stored. `fetched` is the bytes that came over the network.
 */
export async function fetchImageConfig(
  deps: { store: ContentStore; client: RegistryReader },
  repo: RepositoryRef,
  manifest: ImageManifest,
  request: RegistryRequestOptions = {},
): Promise<{ config: ImageConfig; fetched: number }> {
  const { store, client } = deps;
  const digest = manifest.config.digest;
  if (store.blobs.has(digest)) return { config: parseImageConfig(await store.blobs.readBytes(digest), `config ${digest}`), fetched: 0 };
  if (manifest.config.size > MAX_CONFIG_BYTES) {
    throw new HostpullError('CONFIG_INVALID', `config ${digest} declares ${manifest.config.size} bytes, over the ${MAX_CONFIG_BYTES}-byte limit`);
  }
  const bytes = await client.fetchBlobBytes(repo, digest, MAX_CONFIG_BYTES, request);
  if (bytes.length !== manifest.config.size || digestOf(bytes) !== digest) {
    throw new HostpullError('DIGEST_MISMATCH', `config ${digest} from ${repo.registry}/${repo.repository} does not match its descriptor`);
  }
  const config = parseImageConfig(bytes, `config ${digest}`);
  await store.blobs.putBytes(digest, bytes, manifest.config.mediaType);
  return { config, fetched: bytes.length };
}
