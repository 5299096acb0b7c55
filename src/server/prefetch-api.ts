import type { IncomingMessage, ServerResponse } from 'node:http';
import { HostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  digestOf,
  MAX_PREFETCH_BYTES,
  MediaType,
  parseDigest,
  parseManifest,
  parsePrefetchList,
  PREFETCH_ARTIFACT_TYPE,
  PREFETCH_MEDIA_TYPE,
  TOC_ANNOTATION,
  type Digest,
  type PrefetchList,
} from '../oci/index.js';
import type { CompositeResolver } from './composite.js';
import { readBody, sendJson } from './http-util.js';
import { artifactManifest, attachReferrer, listReferrers } from './referrers.js';
import { readBlobBytes } from './upstream-image.js';
import type { Upstream } from './upstream.js';

export const PREFETCH_API_PREFIX = '/hostpull/v1/prefetch';

export interface PrefetchApiDeps {
  upstream: Upstream;
  namespace: string;
  resolver: CompositeResolver;
  logger: Logger;
}

/** The stored prefetch list of a composite, or undefined. */
async function storedList(deps: PrefetchApiDeps, composite: Digest): Promise<PrefetchList | undefined> {
  const [ref] = await listReferrers(deps.upstream, deps.namespace, composite, PREFETCH_ARTIFACT_TYPE);
  if (!ref) return undefined;
  const stored = await deps.upstream.getManifest(deps.namespace, ref.digest);
  const parsed = stored && parseManifest(stored.bytes, stored.mediaType, `prefetch list ${ref.digest}`);
  const blob = parsed?.kind === 'manifest' ? parsed.manifest.layers[0] : undefined;
  if (!blob) return undefined;
  const bytes = await readBlobBytes(deps.upstream, deps.namespace, blob.digest, MAX_PREFETCH_BYTES);
  return bytes ? parsePrefetchList(bytes, `prefetch list of ${composite}`) : undefined;
}

/**
 * `/hostpull/v1/prefetch/<composite manifest digest>`: GET the spans the composite's first lazy
 * start read (what a second node fetches first), PUT them (a node that started it first). The
 * first list is kept; later PUTs are answered with it. Anyone may PUT, as anyone may pull: a list
 * names only spans of the composite's own seekable layers (checked here), which a node verifies
 * before use, so the worst a bad list does is order fetches badly. It is stored in the upstream
 * as a referrer of the composite manifest, so every replica serves it.
 */
export async function handlePrefetchApi(req: IncomingMessage, res: ServerResponse, path: string, deps: PrefetchApiDeps): Promise<void> {
  const composite = parseDigest(path.slice(PREFETCH_API_PREFIX.length + 1), 'composite digest');
  const method = req.method ?? 'GET';
  if (method === 'GET' || method === 'HEAD') {
    const list = await storedList(deps, composite);
    if (!list) throw new HostpullError('NOT_FOUND', `no prefetch list for ${composite}`);
    sendJson(req, res, 200, list);
    return;
  }
  if (method !== 'PUT') throw new HostpullError('UNSUPPORTED', `${method} is not supported on ${PREFETCH_API_PREFIX}`);
  const list = parsePrefetchList(await readBody(req, MAX_PREFETCH_BYTES), `prefetch list for ${composite}`);
  const known = deps.resolver.byDigest(composite)?.manifest ?? (await deps.upstream.getManifest(deps.namespace, composite))?.bytes;
  const parsed = known && parseManifest(known, undefined, `composite ${composite}`);
  if (!parsed || parsed.kind !== 'manifest') throw new HostpullError('NOT_FOUND', `${composite} is not a composite this server made`);
  const seekable = new Set(parsed.manifest.layers.filter((l) => l.annotations?.[TOC_ANNOTATION]).map((l) => l.digest as string));
  for (const digest of Object.keys(list.layers)) {
    if (!seekable.has(digest)) throw new HostpullError('BAD_REQUEST', `layer ${digest} is not a seekable layer of ${composite}`);
  }
  const existing = await storedList(deps, composite);
  if (existing) {
    sendJson(req, res, 200, existing);
    return;
  }
  const bytes = Buffer.from(JSON.stringify(list));
  const blob = { mediaType: PREFETCH_MEDIA_TYPE, digest: digestOf(bytes), size: bytes.length };
  await deps.upstream.putBlob(deps.namespace, blob.digest, bytes.length, bytes);
  const artifact = artifactManifest(PREFETCH_ARTIFACT_TYPE, [blob], { mediaType: MediaType.OciManifest, digest: composite, size: known.length }, {});
  await attachReferrer(deps.upstream, deps.namespace, artifact, composite);
  deps.logger.info({ composite, layers: Object.keys(list.layers).length }, 'prefetch list stored');
  sendJson(req, res, 201, list);
}
