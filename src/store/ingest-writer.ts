import { close, fsync, write, writev } from 'node:fs';
import { Writable } from 'node:stream';

/**
 * Appends verified-as-they-pass bytes to an ingest file. On a clean end it fsyncs and closes the
 * file and then runs `commit` (rename into blobs/ + database row); on an error it only closes the
 * file, leaving the partial bytes for a later resume. Chunks are written with writev so one
 * syscall covers what the socket delivered meanwhile.
 */
export class IngestWriter extends Writable {
  #fd: number | undefined;
  readonly #commit: () => Promise<void>;

  constructor(fd: number, commit: () => Promise<void>) {
    super({ highWaterMark: 1 << 20 });
    this.#fd = fd;
    this.#commit = commit;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    writeAll(this.#fd!, chunk, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk);
    writev(this.#fd!, buffers, (err, written) => {
      if (err) return callback(err);
      const total = buffers.reduce((n, b) => n + b.length, 0);
      if (written === total) return callback();
      // Short writev (rare, e.g. a signal): write the rest one by one.
      writeAll(this.#fd!, Buffer.concat(buffers).subarray(written), callback);
    });
  }

  override _final(callback: (error?: Error | null) => void): void {
    const fd = this.#fd!;
    fsync(fd, (err) => {
      if (err) return callback(err);
      this.#fd = undefined;
      close(fd, (closeErr) => {
        if (closeErr) return callback(closeErr);
        this.#commit().then(() => callback(), callback);
      });
    });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd === undefined) return callback(error);
    close(fd, () => callback(error));
  }
}

function writeAll(fd: number, buf: Buffer, callback: (error?: Error | null) => void): void {
  write(fd, buf, 0, buf.length, null, (err, written) => {
    if (err) return callback(err);
    if (written < buf.length) return writeAll(fd, buf.subarray(written), callback);
    callback();
  });
}
