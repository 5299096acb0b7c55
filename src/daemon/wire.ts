import { hintFor, HostpullError, isHostpullError } from '../errors.js';
import type { PullEvent } from '../pull/events.js';
import type { PullResult } from '../pull/puller.js';

/** An error as it crosses the socket: the HostpullError fields a client needs to rebuild it. */
export interface WireError {
  code: string;
  message: string;
  hint?: string;
}

/** One line of the `POST /v1/pull` NDJSON stream: progress events, then exactly one result or error. */
export type PullStreamLine = PullEvent | { type: 'result'; result: PullResult } | { type: 'error'; error: WireError };

export function toWireError(err: unknown): WireError {
  const hint = hintFor(err);
  const wire: WireError = isHostpullError(err) ? { code: err.code, message: err.message } : { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
  return hint ? { ...wire, hint } : wire;
}

export function fromWireError(e: WireError): HostpullError {
  return new HostpullError(e.code, e.message, e.hint ? { hint: e.hint } : {});
}
