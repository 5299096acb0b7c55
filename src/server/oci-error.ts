import { HostpullError, httpAnswerFor, networkFailure, type OciErrorCode } from '../errors.js';

export interface OciErrorResponse {
  status: number;
  body: { errors: Array<{ code: OciErrorCode; message: string; detail?: unknown }> };
  headers?: Record<string, string>;
}

function ociError(status: number, code: OciErrorCode, message: string, detail?: unknown): OciErrorResponse {
  return { status, body: { errors: [detail === undefined ? { code, message } : { code, message, detail }] } };
}

/**
 * Maps any thrown value to the response a client gets: the status and OCI code of its row in
 * error-codes.ts (HostpullError.httpAnswer). The storage and composite layers only throw
 * HostpullError; this is the one place where they become HTTP. What an upstream did is said as
 * such; a 500 (a bug, or a fault of this host) says little, since its message may name local paths.
 */
export function toOciError(err: unknown): OciErrorResponse {
  const answer = httpAnswerFor(err);
  if (!(err instanceof HostpullError)) {
    return answer.upstream ? ociError(answer.status, answer.oci, `upstream unavailable (${networkFailure(err)})`) : ociError(500, 'INTERNAL', 'internal server error');
  }
  if (answer.upstream) return ociError(answer.status, answer.oci, `${answer.status === 503 ? 'upstream unavailable' : 'upstream'}: ${err.message}`);
  if (answer.status === 500) return ociError(500, 'INTERNAL', 'internal server error');
  const res = ociError(answer.status, answer.oci, err.message, err.details);
  if (err.code === 'UNAUTHORIZED') res.headers = { 'WWW-Authenticate': 'Bearer realm="hostpull"' };
  if (err.code === 'RANGE_NOT_SATISFIED' && typeof err.details?.size === 'number') res.headers = { 'Content-Range': `bytes */${err.details.size}` };
  return res;
}
