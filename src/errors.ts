import { errorRow, isErrorCode, type ErrorCode, type OciErrorCode } from './error-codes.js';

export { ERROR_CODES, errorRow, isErrorCode, type ErrorCode, type ErrorCodeRow, type GrpcStatusName, type OciErrorCode } from './error-codes.js';

/**
 * The one error type of hostpull. `code` is one of the closed set in error-codes.ts (like
 * containerd's errdefs or undici's UND_ERR_* codes), which also says how it surfaces over HTTP,
 * gRPC and as an exit code; `message` says what failed and where; `hint` says what the user can
 * do about it. Errors are recognised by class and code, never by name or message text, and are
 * not changed after they are thrown: what a catcher needs to know travels beside them.
 */
export interface HostpullErrorOptions {
  /** What the user can do about it, printed after the message by the CLI. */
  hint?: string;
  /** The underlying error, kept for logs and `--log-level debug`. */
  cause?: unknown;
  /** Structured facts (path, digest, status…) for logs and JSON output. */
  details?: Record<string, unknown>;
}

export class HostpullError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: HostpullErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HostpullError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }

  /**
   * How the HTTP edges (the server's OCI API, the daemon's socket API) answer this error: its row
   * of the table. A code whose row is 500 but whose cause is a network failure answers as an
   * unreachable upstream. RegistryError answers as a gateway whatever its code.
   */
  httpAnswer(): HttpAnswer {
    const row = errorRow(this.code);
    if (row.http === 500 && networkFailure(this) !== undefined) return { status: 503, oci: 'UNAVAILABLE', upstream: true };
    return { status: row.http, oci: row.oci, upstream: false };
  }
}

/** Status and OCI code of an HTTP error answer. */
export interface HttpAnswer {
  status: number;
  /** The code in the server's OCI error body. */
  oci: OciErrorCode;
  /** It reports what another service (a registry) did or failed to do, not what the client asked. */
  upstream: boolean;
}

/** The answer for any thrown value: a HostpullError's own; a bare network failure is an unreachable upstream; anything else is a bug (500). */
export function httpAnswerFor(err: unknown): HttpAnswer {
  if (err instanceof HostpullError) return err.httpAnswer();
  if (networkFailure(err) !== undefined) return { status: 503, oci: 'UNAVAILABLE', upstream: true };
  return { status: 500, oci: 'INTERNAL', upstream: false };
}

export function isHostpullError(err: unknown, code?: ErrorCode): err is HostpullError {
  return err instanceof HostpullError && (code === undefined || err.code === code);
}

/** What went wrong, as text: an Error's message, else the thrown value itself. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** errorText, led by the error's code when it is a HostpullError (`LAZY_TIMEOUT: …`): for logs and recorded reasons. */
export function describeError(err: unknown): string {
  return isHostpullError(err) ? `${err.code}: ${err.message}` : errorText(err);
}

/** errno code of a Node system error (`ENOENT`, `EEXIST`…), or undefined. */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

/**
 * The one list of network failures (Node errnos and undici codes), and whether trying again can
 * help: a connection refused, reset, timed out or cut short may work next time (the registry
 * client retries those); a host name that does not resolve will not. Both mean the peer cannot
 * be reached (the server answers 503).
 */
const NETWORK_ERRNOS: ReadonlyMap<string, 'transient' | 'lasting'> = new Map([
  ['ECONNRESET', 'transient'],
  ['ECONNREFUSED', 'transient'],
  ['ECONNABORTED', 'transient'],
  ['EPIPE', 'transient'],
  ['ETIMEDOUT', 'transient'],
  ['EAI_AGAIN', 'transient'],
  ['ENETUNREACH', 'transient'],
  ['EHOSTUNREACH', 'transient'],
  ['UND_ERR_SOCKET', 'transient'],
  ['UND_ERR_CONNECT_TIMEOUT', 'transient'],
  // The headers and body-idle timeouts the registry transport sets on every request.
  ['UND_ERR_HEADERS_TIMEOUT', 'transient'],
  ['UND_ERR_BODY_TIMEOUT', 'transient'],
  ['UND_ERR_CLOSED', 'transient'],
  // A response body that ended before its end (the connection went away mid-body).
  ['ERR_STREAM_PREMATURE_CLOSE', 'transient'],
  ['ENOTFOUND', 'lasting'],
]);

/** The network errno of err or of an error in its cause chain (undici wraps some), or undefined. */
export function networkFailure(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    const code = errnoCode(e);
    if (code !== undefined && NETWORK_ERRNOS.has(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** True when err is a network failure that another attempt may get past (a refused, reset or silent connection). */
export function isTransientNetworkFailure(err: unknown): boolean {
  const errno = networkFailure(err);
  return errno !== undefined && NETWORK_ERRNOS.get(errno) === 'transient';
}

/** errnos of a full filesystem or an exhausted quota, and SQLite's word for the same. */
const NO_SPACE_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

/** True when err, or an error in its cause chain, is a full filesystem or an exhausted quota. */
export function isNoSpace(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (NO_SPACE_ERRNOS.has(errnoCode(e) ?? '') || (isHostpullError(e) && NO_SPACE_ERRNOS.has(String(e.details?.errno ?? '')))) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * What to do when the store's filesystem is full. Each command named here frees space right
 * after the failure (test/integration/pull/full-disk.test.ts runs it): `--min-age 0`, because a
 * partial download just written is younger than gc's default min-age.
 */
const NO_SPACE_HINT =
  'the filesystem of the store is full: free space there (`hostpull gc --min-age 0` removes partial downloads and what no image uses; `hostpull gc --min-age 0 --max-store-size SIZE` also evicts unused layers) or use a --root with room; if you do neither, the part already downloaded is kept and the next pull resumes it';

/** What to tell the user to do about err: its own hint, or the full-disk one when that is the cause. */
export function hintFor(err: unknown): string | undefined {
  if (isHostpullError(err) && err.hint) return err.hint;
  return isNoSpace(err) ? NO_SPACE_HINT : undefined;
}

/**
 * An error as it crosses a process boundary (the daemon's socket, the rootless helper's channel):
 * the fields a receiver needs to rebuild it as a HostpullError. No stack, no cause.
 */
export interface ErrorJson {
  /** An ErrorCode when both sides run the same hostpull; checked again on arrival. */
  code: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}

/** err as ErrorJson; anything that is not a HostpullError gets `fallbackCode`. */
export function errorToJson(err: unknown, fallbackCode: ErrorCode = 'INTERNAL'): ErrorJson {
  const hint = hintFor(err);
  const details = isHostpullError(err) && err.details !== undefined ? jsonSafe(err.details) : undefined;
  return {
    ...(isHostpullError(err) ? { code: err.code, message: err.message } : { code: fallbackCode, message: errorText(err) }),
    ...(hint ? { hint } : {}),
    ...(details ? { details } : {}),
  };
}

/**
 * The HostpullError an ErrorJson describes, with the same code, message, hint and details. A code
 * this hostpull does not know (a peer of another version) arrives as `unknownCode`, the peer's
 * code kept in `details.peerCode`.
 */
export function errorFromJson(e: ErrorJson, unknownCode: ErrorCode = 'INTERNAL'): HostpullError {
  const code = isErrorCode(e.code) ? e.code : undefined;
  const details = code !== undefined ? e.details : { ...e.details, peerCode: e.code };
  return new HostpullError(code ?? unknownCode, e.message, {
    ...(e.hint ? { hint: e.hint } : {}),
    ...(details !== undefined ? { details } : {}),
  });
}

/** details as plain JSON (a BigInt or a cycle in them must not break the message that carries them). */
function jsonSafe(details: Record<string, unknown>): Record<string, unknown> | undefined {
  try {
    return JSON.parse(JSON.stringify(details)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
