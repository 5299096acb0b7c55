import type { Readable } from 'node:stream';
import type { Digest } from '../oci/index.js';
import type { RegistryClient, RepositoryRef, RetryBudget } from '../registry/index.js';
import type { SpanSource } from './span-fetcher.js';

/** Span bytes by Range requests to the registry (or hostpull server) the image was pulled from, under the client's retry policy. */
export function registrySpanSource(client: RegistryClient, repo: RepositoryRef, digest: Digest): SpanSource {
  return {
    where: `${repo.registry}/${repo.repository}@${digest}`,
    retryBudget: (signal: AbortSignal): RetryBudget => client.retryBudget(repo.registry, { signal, what: `spans of blob ${digest}` }),
    fetchRange: (start: number, end: number, signal: AbortSignal, retry: RetryBudget): Promise<Readable> => client.getBlobRange(repo, digest, start, end, { signal, retry }),
  };
}
