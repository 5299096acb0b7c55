import { HostpullError, isErrorCode, type ErrorCode, type HostpullErrorOptions, type HttpAnswer } from '../errors.js';
import { redactUrl } from './redact.js';

/** One entry of the distribution-spec error body: `{"errors":[{code,message,detail}]}`. */
export interface RegistryErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

export interface RegistryErrorOptions extends HostpullErrorOptions {
  status?: number;
  errors?: RegistryErrorEntry[];
  /** Whether trying again later can help (go-containerregistry's `Temporary()`); drives retries. */
  temporary?: boolean;
}

/** An error talking to a registry: HTTP status, the registry's own diagnostics, retryability. */
export class RegistryError extends HostpullError {
  readonly status: number | undefined;
  readonly errors: RegistryErrorEntry[];
  readonly temporary: boolean;

  constructor(code: ErrorCode, message: string, options: RegistryErrorOptions = {}) {
    super(code, message, options);
    this.name = 'RegistryError';
    this.status = options.status;
    this.errors = options.errors ?? [];
    this.temporary = options.temporary ?? false;
  }

  /**
   * Whatever the registry said (even 401), at our HTTP edges it is our gateway's problem, not the
   * client's request: 503 while the registry is down or throttling (or never answered), 502 for
   * anything else it did.
   */
  override httpAnswer(): HttpAnswer {
    const unavailable = this.code !== 'DIGEST_MISMATCH' && (this.status === undefined || this.status >= 500 || this.status === 429);
    return unavailable ? { status: 503, oci: 'UNAVAILABLE', upstream: true } : { status: 502, oci: 'UPSTREAM_ERROR', upstream: true };
  }
}

export function isRegistryError(err: unknown, code?: ErrorCode): err is RegistryError {
  return err instanceof RegistryError && (code === undefined || err.code === code);
}

/** Statuses after which the same request may succeed later. */
export const TEMPORARY_STATUSES: ReadonlySet<number> = new Set([408, 429, 502, 503, 504]);

/** Parses a distribution-spec error body; anything else yields an empty list. */
function parseErrorBody(text: string): RegistryErrorEntry[] {
  try {
    const json: unknown = JSON.parse(text);
    if (typeof json !== 'object' || json === null || !Array.isArray((json as { errors?: unknown }).errors)) return [];
    const out: RegistryErrorEntry[] = [];
    for (const e of (json as { errors: unknown[] }).errors) {
      if (typeof e !== 'object' || e === null) continue;
      const rec = e as Record<string, unknown>;
      const entry: RegistryErrorEntry = {
        code: typeof rec.code === 'string' ? rec.code : 'UNKNOWN',
        message: typeof rec.message === 'string' ? rec.message : '',
      };
      if (rec.detail !== undefined) entry.detail = rec.detail;
      out.push(entry);
    }
    return out;
  } catch {
    return [];
  }
}

export interface StatusErrorContext {
  method: string;
  url: string | URL;
  status: number;
  /** Raw response body (bounded by the caller); may be empty. */
  body?: string;
  /** What a plain 404 means for this request when the body does not say. */
  notFoundCode?: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN' | 'NAME_UNKNOWN' | 'NOT_FOUND';
  hint?: string;
  registry?: string;
}

/** The distribution-spec codes a registry may put in an error body, taken as ours. */
const KNOWN_SPEC_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'MANIFEST_UNVERIFIED',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'TAG_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
]);

/** Statuses that name our code whatever the body says. */
const CODE_BY_STATUS: ReadonlyMap<number, ErrorCode> = new Map<number, ErrorCode>([
  [401, 'UNAUTHORIZED'],
  [403, 'DENIED'],
  [416, 'RANGE_NOT_SATISFIED'],
  [429, 'TOO_MANY_REQUESTS'],
]);

/** Our code for an unexpected status: the status decides, then the spec code of the body, then REGISTRY_ERROR. */
function codeFor(ctx: StatusErrorContext, specCode: string | undefined): ErrorCode {
  if (ctx.status === 404) {
    return specCode === 'MANIFEST_UNKNOWN' || specCode === 'BLOB_UNKNOWN' || specCode === 'NAME_UNKNOWN' ? specCode : (ctx.notFoundCode ?? 'NOT_FOUND');
  }
  const byStatus = CODE_BY_STATUS.get(ctx.status);
  if (byStatus !== undefined) return byStatus;
  if (ctx.status >= 500) return 'REGISTRY_UNAVAILABLE';
  if (specCode === 'TOOMANYREQUESTS') return 'TOO_MANY_REQUESTS';
  return isErrorCode(specCode) && KNOWN_SPEC_CODES.has(specCode) ? specCode : 'REGISTRY_ERROR';
}

/** Maps an unexpected HTTP status to a RegistryError whose message says method, URL and status. */
export function errorFromStatus(ctx: StatusErrorContext): RegistryError {
  const errors = ctx.body ? parseErrorBody(ctx.body) : [];
  const specCode = errors[0]?.code?.toUpperCase();
  const code = codeFor(ctx, specCode);
  const detail = errors.map((e) => (e.message ? `${e.code}: ${e.message}` : e.code)).join('; ');
  const where = ctx.registry ? ` (registry ${ctx.registry})` : '';
  const message = `${ctx.method} ${redactUrl(ctx.url)}${where}: HTTP ${ctx.status}${detail ? ` (${detail})` : ''}`;
  const opts: RegistryErrorOptions = {
    status: ctx.status,
    errors,
    temporary: TEMPORARY_STATUSES.has(ctx.status),
    details: { method: ctx.method, url: redactUrl(ctx.url), status: ctx.status },
  };
  if (ctx.hint !== undefined) opts.hint = ctx.hint;
  return new RegistryError(code, message, opts);
}
