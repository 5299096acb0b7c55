import { Writable } from 'node:stream';
import { writeWithBackpressure } from '../util/index.js';

function endAndFinish(sink: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    sink.once('error', reject);
    sink.end(() => resolve());
  });
}

/**
 * One writable feeding two sinks (the blob file and the layer unpacker), advancing at the pace
 * of the slower one, so a download is written and unpacked in one pass over the bytes. It
 * finishes only when both sinks have finished (for the blob file: fsynced and committed).
 */
export class Tee extends Writable {
  readonly #a: Writable;
  readonly #b: Writable;

  constructor(a: Writable, b: Writable) {
    super({ highWaterMark: 1 << 20 });
    this.#a = a;
    this.#b = b;
    // A sink that fails (disk full, unpacker refusing an entry) fails the tee, and through it the
    // pipeline; the listener also keeps a sink's late 'error' from crashing the process.
    const fail = (err: Error) => this.destroy(err);
    a.on('error', fail);
    b.on('error', fail);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    Promise.all([writeWithBackpressure(this.#a, chunk), writeWithBackpressure(this.#b, chunk)]).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    Promise.all([endAndFinish(this.#a), endAndFinish(this.#b)]).then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (error) {
      if (!this.#a.destroyed) this.#a.destroy(error);
      if (!this.#b.destroyed) this.#b.destroy(error);
    }
    callback(error);
  }
}
