import { addAbortSignal, type Readable } from 'node:stream';
import { gunzipClose, gunzipEnd, gunzipOpen, gunzipRun, type Gunzip } from '../native/index.js';

/**
 * Bytes of tar one threadpool job writes at most. Two buffers of this size take turns: one is
 * being filled on the pool while the tar in the other is read and applied on this thread. Twice
 * COALESCE_BYTES: a full input of a package layer (1.1-2× its compressed size) is inflated by one
 * job; with 1 MiB, a step-2 pull of the peer images took 6 ms more (medians of 10, alternated).
 */
const OUTPUT_BYTES = 2 * 1024 * 1024;

/**
 * Compressed bytes one job takes at most when several chunks wait: they are copied into one
 * buffer (reused for the whole stream) and inflated by one job. Each job is a round trip to the
 * pool and a wake-up of this thread. A socket delivers 64 KiB chunks, and they pile up while this
 * thread applies a layer of many small files: one job per chunk meant 136 jobs for the peer
 * images' 8.9 MB Maven layer (941 entries), 19 with 512 KiB coalesced. Measured alternated on a
 * tmpfs store: a pull of that one layer 248 → 228 ms (medians of 12), a cold pull of the 209 MB
 * composite 1.34 → 1.26 s (medians of 6).
 */
const COALESCE_BYTES = 1024 * 1024;

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
  const inputs = new ChunkQueue(source, inputDone);
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
        inputs.inflated(input!);
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
 * The source's chunks in order: one chunk as it was written when it waits alone, else the
 * waiting chunks copied into one staging buffer (up to COALESCE_BYTES), which is reused: the
 * caller asks for the next input only once the pool is done with the last. Not the source's
 * async iterator: that concatenates into a fresh buffer whenever more than one chunk waits.
 */
class ChunkQueue {
  readonly #source: Readable;
  readonly #inputDone: ((chunk: Buffer) => void) | undefined;
  readonly #queue: Buffer[] = [];
  #queuedBytes = 0;
  #staging: Buffer | undefined;
  #ended = false;
  #error: unknown;
  #wake: (() => void) | undefined;
  readonly #onData = (chunk: Buffer) => {
    this.#queue.push(chunk);
    this.#queuedBytes += chunk.length;
    // One full staging buffer waiting keeps the pool busy; the rest waits in the source (back-pressure).
    if (this.#queuedBytes >= COALESCE_BYTES) this.#source.pause();
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

  /** `inputDone` gets each chunk of the source once nothing here holds it (copied, or inflated). */
  constructor(source: Readable, inputDone: ((chunk: Buffer) => void) | undefined) {
    this.#source = source;
    this.#inputDone = inputDone;
    source.on('data', this.#onData);
    source.once('end', this.#onEnd);
    source.once('error', this.#onError);
    // A source destroyed without an error (an abort elsewhere) closes without 'end'.
    source.once('close', () => {
      if (!this.#ended && this.#error === undefined && !source.readableEnded) this.#onError(new Error('the layer stream was closed before its end'));
    });
  }

  /** The next input, or undefined at the end; throws the source's error. */
  async next(): Promise<Buffer | undefined> {
    for (;;) {
      if (this.#error !== undefined) throw this.#error;
      if (this.#queue.length > 0) {
        const [first, second] = this.#queue as [Buffer, Buffer | undefined];
        const input = second && first.length + second.length <= COALESCE_BYTES ? this.#coalesce() : this.#take();
        if (this.#queuedBytes < COALESCE_BYTES && this.#source.isPaused()) this.#source.resume();
        return input;
      }
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** The pool is done with `input` (returned by {@link next}). */
  inflated(input: Buffer): void {
    if (input.buffer !== this.#staging?.buffer) this.#inputDone?.(input);
  }

  /** Stops listening; an error the source raises after this has nobody left to tell. */
  close(): void {
    this.#source.off('data', this.#onData);
    this.#source.off('end', this.#onEnd);
    this.#source.off('error', this.#onError);
    this.#source.on('error', () => undefined);
  }

  #take(): Buffer {
    const chunk = this.#queue.shift()!;
    this.#queuedBytes -= chunk.length;
    return chunk;
  }

  /** Copies the waiting chunks that fit (at least the first two) into the staging buffer. */
  #coalesce(): Buffer {
    const staging = (this.#staging ??= Buffer.allocUnsafe(COALESCE_BYTES));
    let filled = 0;
    while (this.#queue.length > 0 && filled + this.#queue[0]!.length <= staging.length) {
      const chunk = this.#take();
      chunk.copy(staging, filled);
      filled += chunk.length;
      this.#inputDone?.(chunk);
    }
    return staging.subarray(0, filled);
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
