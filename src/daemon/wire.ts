import type { ErrorJson } from '../errors.js';
import type { PullEvent, PullResult } from '../pull/index.js';

/** One line of the `POST /v1/pull` NDJSON stream: progress events, then exactly one result or error. */
export type PullStreamLine = PullEvent | { type: 'result'; result: PullResult } | { type: 'error'; error: ErrorJson };
