import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { RegistryClient, RepositoryRef } from '../registry/client.js';
import type { SpanSource } from './span-fetcher.js';

/** Span bytes by Range requests to the registry (or hostpull server) the image was pulled from. */
export function registrySpanSource(client: RegistryClient, repo: RepositoryRef, digest: Digest): SpanSource {
  return {
    where: `${repo.registry}/${repo.repository}@${digest}`,
    fetchRange: (start: number, end: number, signal: AbortSignal): Promise<Readable> => client.getBlobRange(repo, digest, start, end, { signal }),
  };
}
