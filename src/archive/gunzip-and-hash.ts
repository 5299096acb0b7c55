import { addAbortSignal, type Readable } from 'node:stream';
import { gunzipClose, gunzipEnd, gunzipOpen, gunzipRun, type Gunzip } from '../native/index.js';

/**
 * Bytes of tar one threadpool job writes at most. Two buffers of this size take turns: one is
 * being filled on the pool while the tar in the other is read and applied on this thread.
 */
const OUTPUT_BYTES = 1024 * 1024;

/** A failure of the gzip stream itself (its framing or its deflate data), as opposed to its source's or the consumer's. */
export class GunzipError extends Error {
  override name = 'GunzipError';
}

/**
 * Inflates a gzip stream with the addon (native/src/gunzip.c) and returns the sha256 (hex) of
 * the inflated bytes, handing them to `consume` in order as they come out.
 *
 * Against Node's zlib stream plus a hash on this thread, as a layer's unpack did: the inflating
 * and the hashing both run on a pool thread, into two buffers reused for the whole stream (no
 * allocation, page faults or GC per chunk), and without the gzip CRC-32 (the diffID's sha256
 * checks every inflated byte). While `consume` handles one buffer the pool fills the other.
 *
 * `consume` gets a view of a reused buffer: it must be done with it when it returns (as the tar
 * reader is). `inputDone`, when given, gets each chunk of the source once it is inflated, to
 * reuse its memory. Errors: GunzipError for bad gzip data, else what the source, `consume` or
 * the signal threw.
 */
export async function gunzipAndHash(source: Readable, consume: (tar: Buffer) => void, signal?: AbortSignal, inputDone?: (chunk: Buffer) => void): Promise<string> {
  if (signal) addAbortSignal(signal, source);
  const handle = gunzipOpen();
  const outputs = [Buffer.allocUnsafe(OUTPUT_BYTES), Buffer.allocUnsafe(OUTPUT_BYTES)];
  const inputs = new ChunkQueue(source);
  let turn = 0;
  let job: { output: Buffer; done: Promise<[number, number]> } | undefined;
  const start = (input: Buffer, offset: number) => {
    const output = outputs[turn]!;
    turn ^= 1;
    job = { output, done: run(handle, input, offset, output) };
  };
  const nextInput = async (): Promise<Buffer | undefined> => {
    for (;;) {
      const next = await inputs.next();
      if (next === undefined || next.length > 0) return next;
    }
  };
  try {
    let input = await nextInput();
    if (input) start(input, 0);
    while (job) {
      const { output, done } = job;
      const [reached, produced] = await done;
      signal?.throwIfAborted();
      // The next job starts before this output is consumed, so the pool inflates while this thread applies.
      if (reached < input!.length) start(input!, reached);
      else {
        inputDone?.(input!);
        if ((input = await nextInput())) start(input, 0);
        else job = undefined;
      }
      if (produced > 0) consume(output.subarray(0, produced));
    }
    return end(handle);
  } catch (err) {
    // As pipeline() does: the source is torn down with the error, so whoever writes into it
    // (the download's tee) fails with this error rather than with a write into a closed stream.
    source.destroy(err as Error);
    throw err;
  } finally {
    inputs.close();
    // A job still on the pool holds its buffers and the handle: let it finish before closing.
    if (job) await job.done.catch(() => undefined);
    gunzipClose(handle);
  }
}

/**
 * The source's chunks one at a time, as they were written. Not its async iterator: that reads
 * whatever is buffered as one chunk, which concatenates (a fresh buffer, copied into) whenever
 * more than one chunk waits.
 */
class ChunkQueue {
  readonly #source: Readable;
  readonly #queue: Buffer[] = [];
  #ended = false;
  #error: unknown;
  #wake: (() => void) | undefined;
  readonly #onData = (chunk: Buffer) => {
    this.#queue.push(chunk);
    // Two waiting are enough to keep the pool busy; the rest waits in the source (back-pressure).
    if (this.#queue.length >= 2) this.#source.pause();
    this.#wakeUp();
  };
  readonly #onEnd = () => {
    this.#ended = true;
    this.#wakeUp();
  };
  readonly #onError = (err: unknown) => {
    this.#error = err;
    this.#wakeUp();
  };

  constructor(source: Readable) {
    this.#source = source;
    source.on('data', this.#onData);
    source.once('end', this.#onEnd);
    source.once('error', this.#onError);
    // A source destroyed without an error (an abort elsewhere) closes without 'end'.
    source.once('close', () => {
      if (!this.#ended && this.#error === undefined && !source.readableEnded) this.#onError(new Error('the layer stream was closed before its end'));
    });
  }

  /** The next chunk, or undefined at the end; throws the source's error. */
  async next(): Promise<Buffer | undefined> {
    for (;;) {
      if (this.#error !== undefined) throw this.#error;
      const chunk = this.#queue.shift();
      if (chunk) {
        if (this.#queue.length < 2 && this.#source.isPaused()) this.#source.resume();
        return chunk;
      }
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** Stops listening; an error the source raises after this has nobody left to tell. */
  close(): void {
    this.#source.off('data', this.#onData);
    this.#source.off('end', this.#onEnd);
    this.#source.off('error', this.#onError);
    this.#source.on('error', () => undefined);
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

async function run(handle: Gunzip, input: Buffer, offset: number, output: Buffer): Promise<[number, number]> {
  try {
    return await gunzipRun(handle, input, offset, output);
  } catch (err) {
    throw new GunzipError((err as Error).message, { cause: err });
  }
}

function end(handle: Gunzip): string {
  try {
    return gunzipEnd(handle);
  } catch (err) {
    throw new GunzipError((err as Error).message, { cause: err });
  }
}
