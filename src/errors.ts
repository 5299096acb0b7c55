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
