/**
 * Entry of a worker thread of {@link ApplyWorkers}: it runs `applyLayer` unchanged, once per job,
 * on a Readable fed by the parent's messages, and answers each job with its result or its error.
 * Not imported by anything: `new Worker(<this file>)` runs it.
 */
import { Readable } from 'node:stream';
import { parentPort } from 'node:worker_threads';
import { errorToJson } from '../errors.js';
import { applyLayer } from './apply-layer.js';
import type { FromWorker, ToWorker } from './apply-protocol.js';

const port = parentPort!;
const send = (m: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);

/** The chunks the parent sent, whose memory is theirs alone: only these are given back. */
const fromParent = new WeakSet<Buffer>();

/** A chunk the applier is done with goes back to the parent, which fills it again. */
function giveBack(chunk: Buffer): void {
  if (!fromParent.delete(chunk) || !(chunk.buffer instanceof ArrayBuffer)) return;
  send({ type: 'recycle', buffer: chunk.buffer }, [chunk.buffer]);
}

/**
 * One layer's input. A chunk is acknowledged when the stream takes it, so the parent's bytes in
 * flight are what waits here plus at most one highWaterMark inside the stream: the parent's
 * limit is the back-pressure.
 */
class JobInput extends Readable {
  readonly #job: number;
  readonly #queue: Buffer[] = [];
  #ended = false;
  /** The stream asked for data while the queue was empty: push the next chunk as soon as it comes. */
  #wanted = false;

  constructor(job: number) {
    super({ highWaterMark: 1 << 20 });
    this.#job = job;
  }

  add(chunk: Buffer): void {
    this.#queue.push(chunk);
    if (this.#wanted) this.#pump();
  }

  finish(): void {
    this.#ended = true;
    if (this.#wanted) this.#pump();
  }

  override _read(): void {
    this.#pump();
  }

  #pump(): void {
    this.#wanted = false;
    while (this.#queue.length > 0) {
      const chunk = this.#queue.shift()!;
      send({ type: 'ack', job: this.#job, bytes: chunk.length });
      if (!this.push(chunk)) return;
    }
    if (this.#ended) this.push(null);
    else this.#wanted = true;
  }
}

const jobs = new Map<number, { input: JobInput; abort: AbortController }>();

function start(job: number, options: Extract<ToWorker, { type: 'start' }>['options']): void {
  const input = new JobInput(job);
  const abort = new AbortController();
  jobs.set(job, { input, abort });
  applyLayer(input, { ...options, signal: abort.signal, onInputDone: giveBack }).then(
    (result) => {
      jobs.delete(job);
      send({ type: 'done', job, result });
    },
    (err: unknown) => {
      jobs.delete(job);
      send({ type: 'error', job, error: errorToJson(err, 'LAYER_WRITE_FAILED') });
    },
  );
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'start') return start(m.job, m.options);
  const j = jobs.get(m.job);
  if (!j) return; // a job that already answered (it failed while the parent was still sending)
  switch (m.type) {
    case 'data': {
      const chunk = Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength);
      fromParent.add(chunk);
      j.input.add(chunk);
      break;
    }
    case 'end':
      j.input.finish();
      break;
    case 'abort':
      j.abort.abort();
      break;
  }
});
