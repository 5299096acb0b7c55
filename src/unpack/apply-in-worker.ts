import { availableParallelism } from 'node:os';
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { errorFromJson, HostpullError } from '../errors.js';
import { mapReadError } from '../archive/index.js';
import { buildFile } from '../util/index.js';
import type { ApplyOptions, ApplyResult } from './apply-layer.js';
import type { FromWorker, ToWorker } from './apply-protocol.js';

export interface ApplyWorkersOptions {
  /** Worker threads at most. Default: `os.availableParallelism()`. */
  size?: number;
  /** Worker entry script. Default: apply-worker.js beside this module (dist/unpack/). */
  entry?: string;
  /** Compressed bytes of one job handed to its worker and not yet taken by its stream. Default 4 MiB. */
  maxInFlight?: number;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, WorkerJob>;
  /** Declared bytes of the jobs not yet handed over: what this worker still has to chew. */
  pending: number;
}

/**
 * Bytes per data message to a worker. A socket delivers 16-64 KiB at a time, and every chunk
 * costs a message, an acknowledgement and a trip through the worker's stream, and each message is
 * one input chunk of the worker's gunzip (one threadpool job per output chunk, the last one
 * short): batches of 256 KiB cut a cold pull's CPU by ~9%, 1 MiB (with 512 KiB gunzip output
 * chunks, archive/decompress.ts) by 12% more. Transferring the socket's 64 KiB chunks as they are
 * instead of copying them was measured too: less memory, but +0.3 s of CPU, from the smaller
 * gunzip inputs.
 */
const BATCH = 1024 * 1024;
/**
 * How many batch buffers the workers gave back are kept to be filled again. A fresh 1 MiB buffer
 * per batch cost ~22k page faults per cold pull of the full-size peer images, and V8 GCs for the
 * external memory; a job has at most `maxInFlight` (4 MiB) in flight.
 */
const MAX_SPARE_BATCHES = 8;

function defaultEntry(): string {
  return buildFile('unpack/apply-worker.js');
}

/**
 * `applyLayer` in worker threads, with the same contract (options, result, error codes; cleaning
 * the target up stays the caller's job, and a call settles only once its worker has stopped
 * touching the target).
 *
 * Why: measured on a cold pull of four layers (209 MB gzip, 346 MB of files), one thread did the
 * synchronous file writes, the tar parsing, the diffID sha256 and the opens of every layer and
 * was busy 91% of the wall time while the process used 1.3 of 2 cores. With the layers in
 * workers the calling thread keeps only the network, the blob digest and the blob file.
 *
 * At most one worker per core, each applying several layers at once (their chunks interleave):
 * a worker costs ~60 ms of CPU to start and compiles the hot code again in its own isolate, so
 * one per layer spent more CPU than it saved once there were more layers than cores. Each chunk
 * is copied once into a buffer that is transferred to the worker (the caller's chunk may still
 * be on its way into the blob file).
 *
 * One object per pull (or per daemon); `close()` stops the workers. Idle workers do not keep the
 * process alive.
 */
export class ApplyWorkers {
  readonly #size: number;
  readonly #entry: string;
  readonly #maxInFlight: number;
  readonly #slots: Slot[] = [];
  readonly #spares = new SpareBatches();
  #nextJob = 1;

  constructor(options: ApplyWorkersOptions = {}) {
    this.#size = Math.max(1, options.size ?? availableParallelism());
    this.#entry = options.entry ?? defaultEntry();
    this.#maxInFlight = options.maxInFlight ?? 4 * 1024 * 1024;
  }

  /** Workers running now (for tests and metrics). */
  get workers(): number {
    return this.#slots.length;
  }

  /** Batch buffers the workers gave back, waiting to be filled again (for tests and metrics). */
  get spareBatches(): number {
    return this.#spares.count;
  }

  /** Workers running with no layer to apply: one takes the next layer without a start. */
  get idle(): number {
    return this.#slots.filter((s) => s.jobs.size === 0).length;
  }

  /**
   * Starts workers, up to `count` (within the size), before any layer is handed over: a worker's
   * start (a fresh isolate loading the unpack modules: ~70 ms of CPU, longer in wall time on a
   * busy machine) then overlaps what the caller does before the first bytes arrive, instead of
   * holding the layer's first megabytes back. Idle, they do not keep the process alive.
   */
  warm(count: number): void {
    while (this.#slots.length < Math.min(count, this.#size)) this.#spawn().worker.unref();
  }

  /**
   * Applies one layer in a worker. `bytes` (the compressed size, when known) balances the layers
   * over the workers; a worker that has fewer bytes left to apply gets the next layer.
   */
  apply(source: Readable, options: ApplyOptions, bytes = 0): Promise<ApplyResult> {
    const slot = this.#pick();
    const job = new WorkerJob(slot, this.#nextJob++, source, options, bytes, this.#maxInFlight, this.#spares);
    return job.result;
  }

  /** Stops the workers; call it once no apply() is pending. */
  async close(): Promise<void> {
    const slots = this.#slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  /** An idle worker, else a new one while there are fewer than `size`, else the one with the fewest bytes left. */
  #pick(): Slot {
    let best: Slot | undefined;
    for (const s of this.#slots) if (!best || s.jobs.size === 0 || (best.jobs.size > 0 && s.pending < best.pending)) best = s;
    if (best && (best.jobs.size === 0 || this.#slots.length >= this.#size)) return best;
    return this.#spawn();
  }

  #spawn(): Slot {
    const worker = new Worker(this.#entry);
    const slot: Slot = { worker, jobs: new Map(), pending: 0 };
    const gone = (why: string, cause?: unknown) => {
      const i = this.#slots.indexOf(slot);
      if (i >= 0) this.#slots.splice(i, 1);
      for (const job of [...slot.jobs.values()]) job.onWorkerGone(why, cause);
    };
    worker.on('message', (m: FromWorker) => (m.type === 'recycle' ? this.#spares.give(m.buffer) : slot.jobs.get(m.job)?.onMessage(m)));
    worker.on('error', (err) => gone(`failed: ${err.message}`, err));
    worker.on('exit', (code) => gone(`exited (code ${code})`));
    this.#slots.push(slot);
    return slot;
  }
}

/** Batch buffers back from the workers, filled again instead of allocated (see MAX_SPARE_BATCHES). */
class SpareBatches {
  readonly #spare: Buffer[] = [];

  get count(): number {
    return this.#spare.length;
  }

  take(): Buffer {
    return this.#spare.pop() ?? Buffer.allocUnsafeSlow(BATCH);
  }

  give(buffer: ArrayBuffer): void {
    if (buffer.byteLength === BATCH && this.#spare.length < MAX_SPARE_BATCHES) this.#spare.push(Buffer.from(buffer));
  }
}

/**
 * One layer applied by a worker: feeds the source's bytes to it in batches (sent when full, or
 * once the chunks at hand are in), pauses the source while `maxInFlight` bytes wait in the
 * worker, and settles `result` when the worker answers, or dies.
 */
class WorkerJob {
  readonly result: Promise<ApplyResult>;
  readonly #slot: Slot;
  readonly #id: number;
  readonly #source: Readable;
  readonly #options: ApplyOptions;
  readonly #maxInFlight: number;
  readonly #spares: SpareBatches;
  #resolve!: (r: ApplyResult) => void;
  #reject!: (err: unknown) => void;
  /** Declared bytes not yet handed over (counted in the slot's `pending`). */
  #unsent: number;
  #inFlight = 0;
  #batch: Buffer | undefined;
  #filled = 0;
  #flushQueued = false;
  #settled = false;
  #sourceError: unknown;
  readonly #onData = (chunk: Buffer) => this.#take(chunk);
  readonly #onEnd = () => {
    this.#flush();
    this.#post({ type: 'end', job: this.#id });
  };
  readonly #onSourceError = (err: Error) => {
    // As in applyLayer's pipeline the source's error is the one reported, once the worker has
    // stopped writing (it answers the abort with ABORTED, which this replaces).
    this.#sourceError ??= err;
    this.#post({ type: 'abort', job: this.#id });
  };
  readonly #onAbort = () => this.#post({ type: 'abort', job: this.#id });

  constructor(slot: Slot, id: number, source: Readable, options: ApplyOptions, bytes: number, maxInFlight: number, spares: SpareBatches) {
    this.#slot = slot;
    this.#spares = spares;
    this.#id = id;
    this.#source = source;
    this.#options = options;
    this.#maxInFlight = maxInFlight;
    this.#unsent = bytes;
    slot.pending += bytes;
    this.result = new Promise<ApplyResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    slot.jobs.set(id, this);
    slot.worker.ref();
    // The signal and the input callback stay here: the worker has its own.
    const { signal, onInputDone: _ownCallback, ...workerOptions } = options;
    this.#post({ type: 'start', job: id, options: workerOptions });
    if (signal?.aborted) this.#onAbort();
    else signal?.addEventListener('abort', this.#onAbort, { once: true });
    source.on('data', this.#onData);
    source.once('end', this.#onEnd);
    source.on('error', this.#onSourceError);
  }

  /** A message of the worker about this job. */
  onMessage(m: FromWorker): void {
    switch (m.type) {
      case 'ack':
        this.#inFlight -= m.bytes;
        if (this.#inFlight < this.#maxInFlight && this.#source.isPaused()) this.#source.resume();
        break;
      case 'done':
        this.#settle(undefined, m.result);
        break;
      case 'error':
        this.#settle(this.#sourceError !== undefined ? mapReadError(this.#sourceError, undefined, this.#options.target, this.#options.compression, undefined) : errorFromJson(m.error, 'LAYER_WRITE_FAILED'));
        break;
    }
  }

  /** The worker died: the layer fails, naming it. */
  onWorkerGone(why: string, cause?: unknown): void {
    const target = this.#options.target;
    this.#settle(new HostpullError('LAYER_WRITE_FAILED', `layer ${target}: the unpack worker ${why}`, { ...(cause === undefined ? {} : { cause }), details: { layerDir: target } }));
  }

  #post(m: ToWorker, transfer?: ArrayBuffer[]): void {
    if (!this.#settled) this.#slot.worker.postMessage(m, transfer);
  }

  #take(chunk: Buffer): void {
    this.#inFlight += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      this.#batch ??= chunk.length - off > BATCH ? Buffer.allocUnsafeSlow(chunk.length - off) : this.#spares.take();
      const n = chunk.copy(this.#batch, this.#filled, off);
      this.#filled += n;
      off += n;
      if (this.#filled === this.#batch.length) this.#flush();
    }
    if (this.#inFlight >= this.#maxInFlight) {
      this.#flush();
      this.#source.pause();
    } else if (this.#filled > 0 && !this.#flushQueued) {
      this.#flushQueued = true;
      setImmediate(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushQueued = false;
    if (!this.#batch || this.#filled === 0 || this.#settled) return;
    const chunk = this.#batch.subarray(0, this.#filled);
    this.#batch = undefined;
    this.#filled = 0;
    const counted = Math.min(this.#unsent, chunk.length);
    this.#unsent -= counted;
    this.#slot.pending -= counted;
    this.#post({ type: 'data', job: this.#id, chunk }, [chunk.buffer as ArrayBuffer]);
  }

  #settle(err: unknown, result?: ApplyResult): void {
    if (this.#settled) return;
    this.#settled = true;
    const slot = this.#slot;
    slot.pending -= this.#unsent;
    slot.jobs.delete(this.#id);
    if (slot.jobs.size === 0) slot.worker.unref();
    this.#options.signal?.removeEventListener('abort', this.#onAbort);
    this.#source.off('data', this.#onData);
    this.#source.off('end', this.#onEnd);
    if (err === undefined) {
      this.#source.off('error', this.#onSourceError);
      this.#resolve(result!);
      return;
    }
    // As applyLayer's pipeline does: the source is torn down with the error (our listener stays,
    // so a source nobody else listens to does not throw it again).
    if (!this.#source.destroyed) this.#source.destroy(err as Error);
    this.#reject(err);
  }
}
