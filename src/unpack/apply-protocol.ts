import type { ErrorJson } from '../errors.js';
import type { ApplyOptions, ApplyResult } from './apply-layer.js';

/**
 * Messages between {@link ApplyWorkers} and a worker (apply-worker.ts). A worker applies several
 * layers at once, so every message names its job. Data chunks are transferred, not cloned: the
 * parent copies each chunk once into a buffer of its own and hands that buffer over.
 */
export type ToWorker =
  | { type: 'start'; job: number; options: Omit<ApplyOptions, 'signal'> }
  | { type: 'data'; job: number; chunk: Uint8Array }
  | { type: 'end'; job: number }
  | { type: 'abort'; job: number };

export type FromWorker =
  | { type: 'ack'; job: number; bytes: number }
  | { type: 'done'; job: number; result: ApplyResult }
  | { type: 'error'; job: number; error: ErrorJson };
