import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DEFAULT_NAMESPACE } from '../defaults.js';
import { HostpullError, isHostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { VerifyingStream } from '../archive/index.js';
import { isValidRepository, parseDigest, validateTag, type Digest } from '../oci/index.js';
import type { Catalog, CatalogEntries } from './catalog.js';
import { CATALOG_API_PREFIX, handleCatalogApi } from './catalog-api.js';
import { CompositeResolver } from './composite.js';
import { parseCompositeTag } from './composite-tag.js';
import { handlePrefetchApi, PREFETCH_API_PREFIX, PREFETCH_CACHE_ENTRIES, type PrefetchListCache } from './prefetch-api.js';
import { TtlCache } from './ttl-cache.js';
import { API_VERSION_HEADER, sendBytes, sendError, sendJson } from './http-util.js';
import type { ServerMetrics } from './metrics.js';
import { toOciError } from './oci-error.js';
import { parseRange } from './range.js';
import type { Upstream } from './upstream.js';

/** URLs longer than this get 414: no valid request comes near it (a tag is ≤128, a name ≤255). */
const MAX_URL_LENGTH = 4096;

export interface ServerHandlerDeps {
  upstream: Upstream;
  catalog: Catalog;
  /** Repository that offers composites. Default `hostpull`. */
  namespace?: string;
  /** Base image (`repo:tag` in the upstream) under every composite; none by default. */
  base?: string | undefined;
  /** Composite cache lifetime. Default 30 s. */
  cacheTtlMs?: number;
  /** See CompositeResolverOptions.maxComposites. Default 1000. */
  maxComposites?: number | undefined;
  /** Expansion bound a package layer is checked against at registration. Default 100. */
  maxExpansionRatio?: number | undefined;
  logger: Logger;
  /** Answer blob GETs with a 307 to the upstream registry instead of proxying. Default false. */
  blobRedirect?: boolean;
  /** Bearer token for catalog writes; writes are refused without one. */
  token?: string | undefined;
  metrics?: ServerMetrics | undefined;
}

export type ServerHandler = (req: IncomingMessage, res: ServerResponse) => void;

type Route = 'base' | 'manifest' | 'blob' | 'tags' | 'catalog' | 'prefetch' | 'metrics' | 'other';

const V2_RE = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/;
const TAGS_RE = /^\/v2\/(.+)\/tags\/list$/;

function checkName(name: string): void {
  if (!isValidRepository(name)) {
    throw new HostpullError('NAME_INVALID', `repository name ${JSON.stringify(name.slice(0, 300))} is invalid`, {
      details: { name: name.slice(0, 300) },
    });
  }
}

/**
 * The server as a pure (req, res) function over node:http, so tests can drive it without a
 * socket and main.ts owns listening. node:http rather than a framework: eight routes, and the
 * blob path wants direct control of streaming, Range and HEAD.
 */
export function createServerHandler(deps: ServerHandlerDeps): ServerHandler {
  const namespace = deps.namespace ?? DEFAULT_NAMESPACE;
  const { upstream, catalog, logger, metrics } = deps;
  const resolver = new CompositeResolver({ upstream, catalog, namespace, base: deps.base, cacheTtlMs: deps.cacheTtlMs, maxComposites: deps.maxComposites, logger, metrics });
  const prefetchLists: PrefetchListCache = new TtlCache(deps.cacheTtlMs ?? 30_000, PREFETCH_CACHE_ENTRIES);

  async function manifest(req: IncomingMessage, res: ServerResponse, name: string, reference: string): Promise<void> {
    checkName(name);
    let found: { bytes: Buffer; digest: Digest; mediaType: string } | null = null;
    if (reference.includes(':')) {
      const digest = parseDigest(reference);
      if (name === namespace) {
        const c = resolver.byDigest(digest);
        found = c ? { bytes: c.manifest, digest: c.digest, mediaType: c.mediaType } : null;
      }
      found ??= await upstream.getManifest(name, digest);
    } else if (name === namespace) {
      const c = await resolver.resolve(reference);
      found = { bytes: c.manifest, digest: c.digest, mediaType: c.mediaType };
    } else {
      validateTag(reference);
      found = await upstream.getManifest(name, reference);
    }
    if (!found) throw new HostpullError('MANIFEST_UNKNOWN', `manifest ${name}:${reference} is unknown`, { details: { name, reference } });
    sendBytes(req, res, 200, found.bytes, { 'Content-Type': found.mediaType, 'Docker-Content-Digest': found.digest, ETag: `"${found.digest}"` });
  }

  async function blob(req: IncomingMessage, res: ServerResponse, name: string, reference: string): Promise<void> {
    checkName(name);
    const digest = parseDigest(reference);
    // A composite's config is pushed with it, but a push skipped (budget spent) or failed leaves
    // it in this process's memory only; before a redirect, which would point at the upstream.
    const config = name === namespace ? resolver.configBlob(digest) : undefined;
    if (config) {
      const answer = blobAnswer(req, digest, config.length);
      res.writeHead(answer.status, answer.headers);
      res.end(req.method === 'HEAD' ? undefined : config.subarray(answer.start, answer.end + 1));
      return;
    }
    // Composite layers live in their package repositories; a registry upstream may also have them
    // mounted under the namespace, but the package repository is where they certainly are.
    const repo = (name === namespace ? resolver.blobSource(digest) : undefined) ?? name;
    if (deps.blobRedirect && upstream.blobUrl) {
      res.writeHead(307, { ...API_VERSION_HEADER, Location: upstream.blobUrl(repo, digest), 'Docker-Content-Digest': digest, 'Content-Length': '0' });
      res.end();
      return;
    }
    const size = await upstream.blobSize(repo, digest);
    if (size === null) throw new HostpullError('BLOB_UNKNOWN', `blob ${digest} is unknown in ${name}`, { details: { digest } });
    const { status, headers, start, end, ranged } = blobAnswer(req, digest, size);
    if (req.method === 'HEAD') {
      res.writeHead(status, headers);
      res.end();
      return;
    }
    const read = await upstream.getBlob(repo, digest, ranged ? { start, end } : undefined);
    if (!read) throw new HostpullError('BLOB_UNKNOWN', `blob ${digest} is unknown in ${name}`, { details: { digest } });
    res.writeHead(status, headers);
    // A whole blob is verified before its end is passed on: on a mismatch the response is cut
    // short, so a client never gets a complete body with the wrong content.
    const verify = ranged ? [] : [new VerifyingStream({ digest, size, source: `${upstream.location}/${repo}` })];
    await pipeline([read.stream, slice(read.start, start, end), ...verify, res]);
  }

  async function tags(req: IncomingMessage, res: ServerResponse, name: string, query: URLSearchParams): Promise<void> {
    checkName(name);
    const nParam = query.get('n');
    const n = nParam === null ? undefined : Number(nParam);
    if (n !== undefined && (!Number.isInteger(n) || n < 0 || n > 100_000)) {
      throw new HostpullError('PAGINATION_INVALID', `n=${JSON.stringify(nParam)} is not an integer in 0…100000`);
    }
    let all: string[];
    const stored = await upstream.listTags(name);
    if (name === namespace) {
      // Every code name alone is a valid composite; composites already generated are listed too,
      // but not the other tags stored there (referrers fallback `sha256-…`, prefetch lists) nor
      // composites of a code name that left the catalog: a GET of those answers 404.
      const entries = await catalog.entries();
      all = [...new Set([...entries.keys(), ...(stored ?? []).filter((t) => isOfferedComposite(t, entries))])].sort();
    } else {
      if (stored === null) throw new HostpullError('NAME_UNKNOWN', `repository ${name} is unknown`, { details: { name } });
      all = stored;
    }
    const last = query.get('last');
    let page = last === null ? all : all.filter((t) => t > last);
    const headers: Record<string, string> = {};
    if (n !== undefined && page.length > n) {
      page = page.slice(0, n);
      if (n > 0) headers.Link = `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(page[page.length - 1]!)}>; rel="next"`;
    }
    sendJson(req, res, 200, { name, tags: page }, headers);
  }

  async function route(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<Route> {
    const method = req.method ?? 'GET';
    if (path.startsWith(CATALOG_API_PREFIX) && (path.length === CATALOG_API_PREFIX.length || path[CATALOG_API_PREFIX.length] === '/')) {
      await handleCatalogApi(req, res, path, { catalog, upstream, token: deps.token, logger, maxExpansionRatio: deps.maxExpansionRatio });
      return 'catalog';
    }
    if (path.startsWith(`${PREFETCH_API_PREFIX}/`)) {
      await handlePrefetchApi(req, res, path, { upstream, namespace, resolver, logger, lists: prefetchLists });
      return 'prefetch';
    }
    if (path === '/metrics' && metrics && (method === 'GET' || method === 'HEAD')) {
      sendBytes(req, res, 200, Buffer.from(metrics.render()), { 'Content-Type': 'text/plain; version=0.0.4' });
      return 'metrics';
    }
    if (path !== '/v2' && !path.startsWith('/v2/')) throw new HostpullError('NOT_FOUND', 'not found: hostpull serves the OCI distribution API under /v2/');
    if (method !== 'GET' && method !== 'HEAD') {
      throw new HostpullError('UNSUPPORTED', `${method} is not supported: this server is read-only for registry clients`, {
        hint: 'publish packages with `hostpull publish DIR --code CODE --prefix /opt/DIR`',
      });
    }
    if (path === '/v2' || path === '/v2/') {
      sendJson(req, res, 200, {});
      return 'base';
    }
    const m = V2_RE.exec(path);
    if (m) {
      if (m[2] === 'manifests') {
        await manifest(req, res, m[1]!, m[3]!);
        return 'manifest';
      }
      await blob(req, res, m[1]!, m[3]!);
      return 'blob';
    }
    const t = TAGS_RE.exec(path);
    if (t) {
      await tags(req, res, t[1]!, query);
      return 'tags';
    }
    throw new HostpullError('NOT_FOUND', `no such endpoint ${path.slice(0, 200)}`);
  }

  return (req, res) => {
    const started = performance.now();
    let routeName: Route = 'other';
    const url = req.url ?? '/';
    const done = () => {
      metrics?.request(routeName, req.method ?? '', res.statusCode);
      logger.info({ method: req.method, url: url.slice(0, 300), status: res.statusCode, ms: Math.round(performance.now() - started), route: routeName }, 'request');
    };
    res.once('finish', done);
    res.once('close', () => {
      if (!res.writableFinished) logger.debug({ url: url.slice(0, 300) }, 'client went away');
    });
    if (url.length > MAX_URL_LENGTH) {
      sendError(req, res, toOciError(new HostpullError('URI_TOO_LONG', `request URL is ${url.length} characters; at most ${MAX_URL_LENGTH} accepted`)));
      return;
    }
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    routeName = classify(path);
    route(req, res, path, query).then(
      () => undefined,
      (err: unknown) => {
        const e = toOciError(err);
        if (e.status >= 500) logger.warn({ err, url: url.slice(0, 300) }, 'request failed');
        if (res.headersSent) {
          res.destroy();
          return;
        }
        sendError(req, res, e);
      },
    );
  };
}

/** Whether a tag stored under the namespace is a composite of code names all in the catalog. */
function isOfferedComposite(tag: string, entries: CatalogEntries): boolean {
  try {
    return parseCompositeTag(tag).every((code) => entries.has(code));
  } catch (err) {
    if (isHostpullError(err, 'TAG_INVALID')) return false;
    throw err;
  }
}

/** The route label for logs and metrics, decided before handling so it is set when `finish` fires. */
function classify(path: string): Route {
  if (path.startsWith(CATALOG_API_PREFIX)) return 'catalog';
  if (path.startsWith(`${PREFETCH_API_PREFIX}/`)) return 'prefetch';
  if (path === '/metrics') return 'metrics';
  if (path === '/v2' || path === '/v2/') return 'base';
  const m = V2_RE.exec(path);
  if (m) return m[2] === 'manifests' ? 'manifest' : 'blob';
  return TAGS_RE.test(path) ? 'tags' : 'other';
}

/**
 * Status, headers and byte span [start, end] of a blob answer of `size` bytes, for the request's
 * Range header; throws RANGE_NOT_SATISFIED (416) for a range outside the blob.
 */
function blobAnswer(req: IncomingMessage, digest: Digest, size: number): { status: number; headers: Record<string, string>; start: number; end: number; ranged: boolean } {
  const range = parseRange(req.headers.range, size);
  if (range.kind === 'unsatisfiable') {
    throw new HostpullError('RANGE_NOT_SATISFIED', `range ${req.headers.range} is outside the ${size}-byte blob`, { details: { size } });
  }
  const ranged = range.kind === 'range';
  const start = ranged ? range.start : 0;
  const end = ranged ? range.end : size - 1;
  const headers: Record<string, string> = {
    ...API_VERSION_HEADER,
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': digest,
    'Accept-Ranges': 'bytes',
    ETag: `"${digest}"`,
    'Content-Length': String(size === 0 ? 0 : end - start + 1),
  };
  if (ranged) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
  return { status: ranged ? 206 : 200, headers, start, end, ranged };
}

/**
 * Passes bytes [start, end] of a stream that begins at `streamStart` (a registry may ignore our
 * Range).
 */
function slice(streamStart: number, start: number, end: number): Transform {
  let pos = streamStart;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const from = Math.max(start - pos, 0);
      const to = Math.min(chunk.length, end + 1 - pos);
      pos += chunk.length;
      if (to <= from) return cb();
      cb(null, from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to));
    },
  });
}
