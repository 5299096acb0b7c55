import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Catalog } from './catalog.js';
import { catalogEntriesJson, parseCatalogEntry, validateCodeName } from './catalog-entry.js';
import { readBody, sendJson } from './http-util.js';
import type { Upstream } from './upstream.js';
import { verifyPackage } from './verify-package.js';

export const CATALOG_API_PREFIX = '/hostpull/v1/catalog';
const MAX_BODY = 64 * 1024;

export interface CatalogApiDeps {
  catalog: Catalog;
  upstream: Upstream;
  /** Bearer token for writes; without one, writes are refused. */
  token?: string | undefined;
  logger: Logger;
  /** Expansion bound of a package layer, as on the nodes. Default 100. */
  maxExpansionRatio?: number | undefined;
}

/**
 * Compares the presented token with ours in constant time. Both sides are hashed first so the
 * comparison does not leak the token's length either.
 */
function tokenMatches(header: string | undefined, token: string | undefined): boolean {
  if (!token || !header) return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  const a = createHash('sha256').update(m[1]!).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

function authorize(req: IncomingMessage, deps: CatalogApiDeps): void {
  if (!deps.token) {
    throw new HostpullError('DENIED', 'catalog writes are disabled: the server was started without --token-file');
  }
  if (!tokenMatches(req.headers.authorization, deps.token)) {
    throw new HostpullError('UNAUTHORIZED', 'catalog writes need `Authorization: Bearer <token>` with the server\'s token', {
      hint: 'pass --token-file with the file the server was started with',
    });
  }
}

/** Our own API under /hostpull/v1/catalog: GET (list / one), PUT /<code> (register), DELETE /<code>. */
export async function handleCatalogApi(req: IncomingMessage, res: ServerResponse, path: string, deps: CatalogApiDeps): Promise<void> {
  const rest = path.slice(CATALOG_API_PREFIX.length);
  const method = req.method ?? 'GET';
  if (rest === '' || rest === '/') {
    if (method !== 'GET' && method !== 'HEAD') throw new HostpullError('UNSUPPORTED', `${method} is not supported on ${CATALOG_API_PREFIX}`);
    sendJson(req, res, 200, { entries: catalogEntriesJson(await deps.catalog.entries()) });
    return;
  }
  const code = validateCodeName(rest.slice(1));
  if (method === 'GET' || method === 'HEAD') {
    const entry = (await deps.catalog.entries()).get(code);
    if (!entry) throw new HostpullError('NOT_FOUND', `code name ${code} is not registered`);
    sendJson(req, res, 200, { code, entry });
    return;
  }
  if (method !== 'PUT' && method !== 'DELETE') throw new HostpullError('UNSUPPORTED', `${method} is not supported on the catalog`);
  authorize(req, deps);
  if (!deps.catalog.writable) {
    throw new HostpullError('UNSUPPORTED', `the catalog is the static file ${deps.catalog.location}; it cannot be changed through the API`);
  }
  if (method === 'DELETE') {
    if (!(await deps.catalog.remove(code))) throw new HostpullError('NOT_FOUND', `code name ${code} is not registered`);
    deps.logger.info({ code }, 'catalog entry removed');
    sendJson(req, res, 200, { code, removed: true });
    return;
  }
  const body = await readBody(req, MAX_BODY);
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HostpullError('CATALOG_INVALID', 'request body is not valid JSON');
  }
  const { digest: _clientDigest, ...asked } = parseCatalogEntry(code, json, deps.upstream);
  // The pin is what the server itself checked, whatever the request said.
  const entry = { ...asked, digest: await verifyPackage(deps.upstream, code, asked, deps.maxExpansionRatio !== undefined ? { maxExpansionRatio: deps.maxExpansionRatio } : {}) };
  await deps.catalog.put(code, entry);
  deps.logger.info({ code, image: entry.image, digest: entry.digest }, 'catalog entry registered');
  sendJson(req, res, 201, { code, entry });
}
