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
  type ImageManifest,
  type PrefetchList,
} from '../oci/index.js';
import type { CompositeResolver } from './composite.js';
import { readBody, sendJson } from './http-util.js';
import { artifactManifest, attachReferrer, listReferrers, referrersTag, type ArtifactManifest } from './referrers.js';
import { readBlobBytes } from './upstream-image.js';
import type { TtlCache } from './ttl-cache.js';
import type { Upstream } from './upstream.js';

export const PREFETCH_API_PREFIX = '/hostpull/v1/prefetch';

export interface PrefetchApiDeps {
  upstream: Upstream;
  namespace: string;
  resolver: CompositeResolver;
  logger: Logger;
  lists: PrefetchListCache;
}

/**
 * Lists read from the upstream, per composite (`composite <digest>`) and per layer
 * (`layer <digest>`); null for none. A rollout starts a composite on many nodes at once, and each
 * asks for its list: one read of the upstream serves them all. A stored list never changes (the
 * first is kept), so only a "none" can be stale, for the cache's lifetime, and only in a replica
 * other than the one that stored the list (which puts it here as it stores it).
 */
export type PrefetchListCache = TtlCache<PrefetchList | null>;

/** Entries of a PrefetchListCache: lists are at most MAX_PREFETCH_BYTES, usually a few KB. */
export const PREFETCH_CACHE_ENTRIES = 256;

/**
 * The tag that names, for one layer, the first prefetch list stored with that layer in it (the
 * list's own artifact manifest, tagged once more), so that a composite nobody has started yet can
 * start from what other composites' first starts read of the same package. A layer is the same
 * blob in every composite, so its span indexes mean the same in each. Undefined for a digest whose
 * tag would pass the 128 characters a tag may have (sha512).
 */
export function layerPrefetchTag(layer: Digest): string | undefined {
  const tag = `prefetch.${referrersTag(layer)}`;
  return tag.length <= 128 ? tag : undefined;
}

/** The prefetch list in a stored list's artifact manifest (by digest or tag), or undefined. */
async function listOfArtifact(deps: PrefetchApiDeps, reference: string, where: string): Promise<PrefetchList | undefined> {
  const stored = await deps.upstream.getManifest(deps.namespace, reference);
  const parsed = stored && parseManifest(stored.bytes, stored.mediaType, `prefetch list ${reference}`);
  const blob = parsed?.kind === 'manifest' && parsed.manifest.artifactType === PREFETCH_ARTIFACT_TYPE ? parsed.manifest.layers[0] : undefined;
  if (!blob) return undefined;
  const bytes = await readBlobBytes(deps.upstream, deps.namespace, blob.digest, MAX_PREFETCH_BYTES);
  return bytes ? parsePrefetchList(bytes, where) : undefined;
}

/** The stored prefetch list of a composite, or undefined. */
async function storedList(deps: PrefetchApiDeps, composite: Digest): Promise<PrefetchList | undefined> {
  const [list] = await deps.lists.get(`composite ${composite}`, async () => {
    const [ref] = await listReferrers(deps.upstream, deps.namespace, composite, PREFETCH_ARTIFACT_TYPE);
    return (ref && (await listOfArtifact(deps, ref.digest, `prefetch list of ${composite}`))) ?? null;
  });
  return list ?? undefined;
}

/** The list tagged for a layer (layerPrefetchTag), or undefined. */
async function layerList(deps: PrefetchApiDeps, layer: Digest, tag: string): Promise<PrefetchList | undefined> {
  const [list] = await deps.lists.get(`layer ${layer}`, async () => (await listOfArtifact(deps, tag, `prefetch list of layer ${layer}`)) ?? null);
  return list ?? undefined;
}

/** The manifest of a composite this server made (from its cache, else the upstream), or undefined. */
async function compositeManifest(deps: PrefetchApiDeps, composite: Digest): Promise<{ bytes: Buffer; manifest: ImageManifest } | undefined> {
  const bytes = deps.resolver.byDigest(composite)?.manifest ?? (await deps.upstream.getManifest(deps.namespace, composite))?.bytes;
  const parsed = bytes && parseManifest(bytes, undefined, `composite ${composite}`);
  return parsed && parsed.kind === 'manifest' ? { bytes, manifest: parsed.manifest } : undefined;
}

/** The composite's layers that have a TOC (the only ones a list may name), in manifest order. */
function seekableLayers(manifest: ImageManifest): Digest[] {
  return manifest.layers.filter((l) => l.annotations?.[TOC_ANNOTATION]).map((l) => l.digest);
}

/**
 * For a composite with no list of its own: per seekable layer, the spans of the first list stored
 * with that layer in it (see layerPrefetchTag). Undefined when no layer has one.
 */
async function derivedList(deps: PrefetchApiDeps, composite: Digest): Promise<PrefetchList | undefined> {
  const made = await compositeManifest(deps, composite);
  if (!made) throw new HostpullError('NOT_FOUND', `${composite} is not a composite this server made, and has no prefetch list`);
  const layers = seekableLayers(made.manifest);
  const found = await Promise.all(
    layers.map(async (layer) => {
      const tag = layerPrefetchTag(layer);
      // One layer's list that cannot be read leaves that layer out, not the others.
      return tag
        ? layerList(deps, layer, tag).then(
            (list) => list?.layers[layer],
            (err: unknown) => void deps.logger.warn({ composite, layer, tag, err: (err as Error).message }, 'prefetch list of a layer unreadable; left out of the derived list'),
          )
        : undefined;
    }),
  );
  const derived: PrefetchList = { version: 1, layers: {} };
  layers.forEach((layer, i) => {
    if (found[i]) derived.layers[layer] = found[i];
  });
  return Object.keys(derived.layers).length > 0 ? derived : undefined;
}

/**
 * Tags a newly stored list for each of its layers that has none yet (the first list kept per
 * layer). A tag that fails is logged: the composite's own list is stored already, and the tag is
 * only a head start for other composites.
 */
async function tagForLayers(deps: PrefetchApiDeps, list: PrefetchList, artifact: ArtifactManifest): Promise<void> {
  for (const layer of Object.keys(list.layers) as Digest[]) {
    const tag = layerPrefetchTag(layer);
    try {
      if (!tag || (await deps.upstream.getManifest(deps.namespace, tag))) continue;
      await deps.upstream.putManifest(deps.namespace, tag, artifact.bytes, MediaType.OciManifest);
      deps.lists.set(`layer ${layer}`, list);
    } catch (err) {
      deps.logger.warn({ layer, tag, err: (err as Error).message }, 'could not tag the prefetch list for its layer; other composites start without it');
    }
  }
}

/**
 * `/hostpull/v1/prefetch/<composite manifest digest>`: GET the spans the composite's first lazy
 * start read (what a second node fetches first), PUT them (a node that started it first). The
 * first list is kept; later PUTs are answered with it. Anyone may PUT, as anyone may pull: a list
 * names only spans of the composite's own seekable layers (checked here), which a node verifies
 * as it verifies every span, so the worst a bad list does is order fetches badly or fetch spans
 * ahead that no read needs (at most the layer, as a whole pull would). It is stored in the
 * upstream as a referrer of the composite manifest, so every replica serves it.
 *
 * A composite that no node has started yet is answered from its layers: for each, what the first
 * start of another composite with the same layer read of it (`"derived": true` in the answer), so
 * that a new combination of known packages starts as a second node would. Its own first start
 * then stores the composite's list as usual. A layer's list is the first one stored with it in:
 * to have it learned again, delete its tag (layerPrefetchTag) in the upstream.
 */
export async function handlePrefetchApi(req: IncomingMessage, res: ServerResponse, path: string, deps: PrefetchApiDeps): Promise<void> {
  const composite = parseDigest(path.slice(PREFETCH_API_PREFIX.length + 1), 'composite digest');
  const method = req.method ?? 'GET';
  if (method === 'GET' || method === 'HEAD') {
    const list = await storedList(deps, composite);
    if (list) return sendJson(req, res, 200, list);
    const derived = await derivedList(deps, composite);
    if (!derived) throw new HostpullError('NOT_FOUND', `no prefetch list for ${composite}, nor for any of its layers`);
    deps.logger.debug({ composite, layers: Object.keys(derived.layers).length }, 'prefetch list derived from its layers');
    return sendJson(req, res, 200, { ...derived, derived: true });
  }
  if (method !== 'PUT') throw new HostpullError('UNSUPPORTED', `${method} is not supported on ${PREFETCH_API_PREFIX}`);
  const list = parsePrefetchList(await readBody(req, MAX_PREFETCH_BYTES), `prefetch list for ${composite}`);
  const made = await compositeManifest(deps, composite);
  if (!made) throw new HostpullError('NOT_FOUND', `${composite} is not a composite this server made`);
  const known = made.bytes;
  const seekable = new Set<string>(seekableLayers(made.manifest));
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
  deps.lists.set(`composite ${composite}`, list);
  await tagForLayers(deps, list, artifact);
  deps.logger.info({ composite, layers: Object.keys(list.layers).length }, 'prefetch list stored');
  sendJson(req, res, 201, list);
}
