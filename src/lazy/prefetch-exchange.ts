import { HostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { MAX_PREFETCH_BYTES, parsePrefetchList, prefetchListMap, type Digest } from '../oci/index.js';
import type { RegistryClient } from '../registry/index.js';

/** The server's prefetch API (server/prefetch-api.ts) is a hint: never wait long for it. */
const TIMEOUT_MS = 3000;

function path(composite: Digest): string {
  return `/hostpull/v1/prefetch/${composite}`;
}

/**
 * The prefetch list a hostpull server keeps for a composite (learned by the first node that
 * started it), or undefined: none yet, a plain registry that has no such API, or any failure.
 */
export async function fetchPrefetchList(client: RegistryClient, registry: string, composite: Digest, logger: Logger): Promise<Map<Digest, number[]> | undefined> {
  try {
    const body = await client.getServerApi(registry, path(composite), MAX_PREFETCH_BYTES, AbortSignal.timeout(TIMEOUT_MS));
    if (!body) return undefined;
    return prefetchListMap(parsePrefetchList(body, `prefetch list of ${composite} from ${registry}`));
  } catch (err) {
    logger.debug({ registry, composite, err: (err as Error).message, code: err instanceof HostpullError ? err.code : undefined }, 'no prefetch list from the server');
    return undefined;
  }
}

/** Offers this node's first-start list to the server (it keeps the first it gets); best effort. */
export async function publishPrefetchList(client: RegistryClient, registry: string, composite: Digest, lists: ReadonlyMap<Digest, readonly number[]>, logger: Logger): Promise<void> {
  const layers: Record<string, number[]> = {};
  for (const [d, spans] of lists) if (spans.length > 0) layers[d] = [...spans];
  if (Object.keys(layers).length === 0) return;
  try {
    const status = await client.putServerApi(registry, path(composite), { version: 1, layers }, AbortSignal.timeout(TIMEOUT_MS));
    logger.debug({ registry, composite, status }, 'prefetch list offered to the server');
  } catch (err) {
    logger.debug({ registry, composite, err: (err as Error).message }, 'could not offer the prefetch list to the server');
  }
}
