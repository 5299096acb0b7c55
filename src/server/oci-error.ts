import { HostpullError } from '../errors.js';

export interface OciErrorResponse {
  status: number;
  body: { errors: Array<{ code: string; message: string; detail?: unknown }> };
  headers?: Record<string, string>;
}

/**
 * HostpullError code → HTTP status and distribution-spec error code. The storage and composite
 * layers only throw HostpullError; this is the one place where they become HTTP. Input errors
 * are 4xx, an unreachable upstream 502/503; only a bug is a 500.
 */
const MAP: Record<string, [number, string]> = {
  TAG_INVALID: [400, 'TAG_INVALID'],
  ENV_CONFLICT: [400, 'TAG_INVALID'],
  NAME_INVALID: [400, 'NAME_INVALID'],
  DIGEST_INVALID: [400, 'DIGEST_INVALID'],
  REFERENCE_INVALID: [400, 'NAME_INVALID'],
  CATALOG_INVALID: [400, 'MANIFEST_INVALID'],
  PACKAGE_REFUSED: [400, 'MANIFEST_INVALID'],
  BAD_REQUEST: [400, 'UNSUPPORTED'],
  UNAUTHORIZED: [401, 'UNAUTHORIZED'],
  DENIED: [403, 'DENIED'],
  MANIFEST_UNKNOWN: [404, 'MANIFEST_UNKNOWN'],
  BLOB_UNKNOWN: [404, 'BLOB_UNKNOWN'],
  NAME_UNKNOWN: [404, 'NAME_UNKNOWN'],
  NOT_FOUND: [404, 'NOT_FOUND'],
  UNSUPPORTED: [405, 'UNSUPPORTED'],
  CATALOG_CONFLICT: [409, 'CONFLICT'],
  TOO_LARGE: [413, 'SIZE_INVALID'],
  URI_TOO_LONG: [414, 'NAME_INVALID'],
  RANGE_NOT_SATISFIABLE: [416, 'RANGE_INVALID'],
  HEADERS_TOO_LARGE: [431, 'UNSUPPORTED'],
  PACKAGE_INVALID: [502, 'MANIFEST_INVALID'],
  MANIFEST_INVALID: [502, 'MANIFEST_INVALID'],
  CONFIG_INVALID: [502, 'MANIFEST_INVALID'],
  MANIFEST_UNSUPPORTED: [502, 'MANIFEST_INVALID'],
  PLATFORM_UNAVAILABLE: [404, 'MANIFEST_UNKNOWN'],
  DIGEST_MISMATCH: [502, 'UPSTREAM_ERROR'],
  BLOB_TOO_LARGE: [502, 'UPSTREAM_ERROR'],
  UPSTREAM_ERROR: [502, 'UPSTREAM_ERROR'],
  UPSTREAM_UNAVAILABLE: [503, 'UNAVAILABLE'],
  LOCK_TIMEOUT: [503, 'UNAVAILABLE'],
};

const NETWORK_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

function findCode(err: unknown, depth = 0): string | undefined {
  if (depth > 4 || typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && NETWORK_ERRNOS.has(code)) return code;
  return findCode((err as { cause?: unknown }).cause, depth + 1);
}

export function ociError(status: number, code: string, message: string, detail?: unknown): OciErrorResponse {
  return { status, body: { errors: [detail === undefined ? { code, message } : { code, message, detail }] } };
}

/** Maps any thrown value to the response a client gets. Unknown errors are 500 and say little. */
export function toOciError(err: unknown): OciErrorResponse {
  if (err instanceof HostpullError && err.name === 'RegistryError') {
    // From the registry client: whatever the upstream said (even 401), it is our gateway's
    // problem, not the client's request.
    const status = (err as { status?: unknown }).status;
    if (err.code === 'DIGEST_MISMATCH') return ociError(502, 'UPSTREAM_ERROR', `upstream: ${err.message}`);
    const unavailable = status === undefined || (typeof status === 'number' && (status >= 500 || status === 429));
    return unavailable ? ociError(503, 'UNAVAILABLE', `upstream unavailable: ${err.message}`) : ociError(502, 'UPSTREAM_ERROR', `upstream: ${err.message}`);
  }
  if (err instanceof HostpullError) {
    const registryStatus = (err as { status?: unknown }).status;
    const mapped = MAP[err.code];
    if (mapped) {
      const res = ociError(mapped[0], mapped[1], err.message, err.details);
      if (err.code === 'UNAUTHORIZED') res.headers = { 'WWW-Authenticate': 'Bearer realm="hostpull"' };
      return res;
    }
    // Errors from the registry client carry the upstream status: any upstream failure is a gateway problem.
    if (typeof registryStatus === 'number') {
      return ociError(registryStatus >= 500 || registryStatus === 429 ? 503 : 502, 'UPSTREAM_ERROR', `upstream: ${err.message}`);
    }
    if (findCode(err)) return ociError(503, 'UNAVAILABLE', `upstream unavailable: ${err.message}`);
  }
  const net = findCode(err);
  if (net) return ociError(503, 'UNAVAILABLE', `upstream unavailable (${net})`);
  return ociError(500, 'INTERNAL', 'internal server error');
}
