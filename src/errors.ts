/**
 * The one error type of hostpull. `code` is a stable UPPER_SNAKE string that callers and the
 * server's HTTP edge switch on (like containerd's errdefs or undici's UND_ERR_* codes);
 * `message` says what failed and where; `hint` says what the user can do about it.
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
  readonly code: string;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options: HostpullErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HostpullError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }
}

export function isHostpullError(err: unknown, code?: string): err is HostpullError {
  return err instanceof HostpullError && (code === undefined || err.code === code);
}

/** errno code of a Node system error (`ENOENT`, `EEXIST`…), or undefined. */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
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
  code: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}

/** err as ErrorJson; anything that is not a HostpullError gets `fallbackCode`. */
export function errorToJson(err: unknown, fallbackCode = 'INTERNAL'): ErrorJson {
  const hint = hintFor(err);
  const details = isHostpullError(err) && err.details !== undefined ? jsonSafe(err.details) : undefined;
  return {
    ...(isHostpullError(err) ? { code: err.code, message: err.message } : { code: fallbackCode, message: err instanceof Error ? err.message : String(err) }),
    ...(hint ? { hint } : {}),
    ...(details ? { details } : {}),
  };
}

/** The HostpullError an ErrorJson describes, with the same code, message, hint and details. */
export function errorFromJson(e: ErrorJson): HostpullError {
  return new HostpullError(e.code, e.message, {
    ...(e.hint ? { hint: e.hint } : {}),
    ...(e.details !== undefined ? { details: e.details } : {}),
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
