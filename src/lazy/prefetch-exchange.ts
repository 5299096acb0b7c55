import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { HostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { MAX_PREFETCH_BYTES, parsePrefetchList, prefetchListMap, type Digest } from '../oci/index.js';
import { registryOrigin } from '../registry/index.js';
import { readBounded } from '../util/index.js';

/** The server's prefetch API (server/prefetch-api.ts) is a hint: never wait long for it. */
const TIMEOUT_MS = 3000;

function url(registry: string, insecureRegistries: readonly string[], composite: Digest): string {
  return `${registryOrigin(registry, insecureRegistries)}/hostpull/v1/prefetch/${composite}`;
}

/**
 * The prefetch list a hostpull server keeps for a composite (learned by the first node that
 * started it), or undefined: none yet, a plain registry that has no such API, or any failure.
 */
export async function fetchPrefetchList(registry: string, insecureRegistries: readonly string[], composite: Digest, logger: Logger): Promise<Map<Digest, number[]> | undefined> {
  try {
    const res = await fetch(url(registry, insecureRegistries, composite), { signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (res.status !== 200 || !res.body) {
      await res.body?.cancel();
      return undefined;
    }
    const body = await readBounded(Readable.fromWeb(res.body as WebReadableStream), MAX_PREFETCH_BYTES);
    if (!body) throw new HostpullError('BLOB_TOO_LARGE', `the prefetch list of ${composite} from ${registry} is larger than ${MAX_PREFETCH_BYTES} bytes`);
    return prefetchListMap(parsePrefetchList(body, `prefetch list of ${composite} from ${registry}`));
  } catch (err) {
    logger.debug({ registry, composite, err: (err as Error).message }, 'no prefetch list from the server');
    return undefined;
  }
}

/** Offers this node's first-start list to the server (it keeps the first it gets); best effort. */
export async function publishPrefetchList(registry: string, insecureRegistries: readonly string[], composite: Digest, lists: ReadonlyMap<Digest, readonly number[]>, logger: Logger): Promise<void> {
  const layers: Record<string, number[]> = {};
  for (const [d, spans] of lists) if (spans.length > 0) layers[d] = [...spans];
  if (Object.keys(layers).length === 0) return;
  try {
    const res = await fetch(url(registry, insecureRegistries, composite), {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ version: 1, layers }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    await res.body?.cancel();
    logger.debug({ registry, composite, status: res.status }, 'prefetch list offered to the server');
  } catch (err) {
    logger.debug({ registry, composite, err: (err as Error).message }, 'could not offer the prefetch list to the server');
  }
}
