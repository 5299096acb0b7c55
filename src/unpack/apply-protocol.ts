import type { ErrorJson } from '../errors.js';
import type { ApplyOptions, ApplyResult } from './apply-layer.js';

/**
 * Messages between {@link ApplyWorkers} and a worker (apply-worker.ts). A worker applies several
 * layers at once, so every message names its job (but `recycle`). Data chunks are transferred,
 * not cloned: the parent copies each chunk once into a buffer of its own and hands that buffer
 * over; once applied, the worker hands it back to be filled again.
 */
export type ToWorker =
  | { type: 'start'; job: number; options: Omit<ApplyOptions, 'signal' | 'onInputDone'> }
  | { type: 'data'; job: number; chunk: Uint8Array }
  | { type: 'end'; job: number }
  | { type: 'abort'; job: number };

export type FromWorker =
  | { type: 'ack'; job: number; bytes: number }
  /** A data chunk's memory, transferred back once applied: the parent fills it again. */
  | { type: 'recycle'; buffer: ArrayBuffer }
  | { type: 'done'; job: number; result: ApplyResult }
  | { type: 'error'; job: number; error: ErrorJson };
