import { close, fsync, write, writev } from 'node:fs';
import { Writable } from 'node:stream';
import { HostpullError } from '../errors.js';

type Done = (error?: Error | null) => void;

/**
 * Appends verified-as-they-pass bytes to an ingest file. On a clean end it fsyncs and closes the
 * file and then runs `commit` (rename into blobs/ + database row); on an error it only closes the
 * file, leaving the partial bytes for a later resume. Chunks are written with writev so one
 * syscall covers what the socket delivered meanwhile.
 *
 * A destroy (the other side of the tee failed: a full disk while unpacking, a digest mismatch)
 * can come while a write or the fsync is still running on the threadpool. The descriptor is then
 * closed only after that operation returns: closing it earlier would let the number be reused by
 * a file opened meanwhile, and the pending write land in that file.
 */
export class IngestWriter extends Writable {
  #fd: number | undefined;
  readonly #commit: () => Promise<void>;
  /** An fs operation on #fd is in flight. */
  #busy = false;
  /** A destroy that waits for the in-flight operation. */
  #closeWhenIdle: (() => void) | undefined;

  constructor(fd: number, commit: () => Promise<void>) {
    super({ highWaterMark: 1 << 20 });
    this.#fd = fd;
    this.#commit = commit;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: Done): void {
    this.#onFd((fd, done) => writeAll(fd, chunk, done), callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: Done): void {
    const buffers = chunks.map((c) => c.chunk);
    this.#onFd(
      (fd, done) =>
        writev(fd, buffers, (err, written) => {
          if (err) return done(err);
          const total = buffers.reduce((n, b) => n + b.length, 0);
          if (written === total) return done();
          // Short writev (a signal, or the disk filling up): write the rest, which reports why.
          writeAll(fd, Buffer.concat(buffers).subarray(written), done);
        }),
      callback,
    );
  }

  override _final(callback: Done): void {
    this.#onFd(
      (fd, done) => fsync(fd, done),
      (err) => {
        if (err) return callback(err);
        const fd = this.#fd;
        if (fd === undefined) return callback(closedError());
        this.#fd = undefined;
        close(fd, (closeErr) => {
          if (closeErr) return callback(closeErr);
          this.#commit().then(() => callback(), callback);
        });
      },
    );
  }

  override _destroy(error: Error | null, callback: Done): void {
    const closeNow = () => {
      const fd = this.#fd;
      this.#fd = undefined;
      if (fd === undefined) return callback(error);
      close(fd, () => callback(error));
    };
    if (this.#busy) this.#closeWhenIdle = closeNow;
    else closeNow();
  }

  /** Runs one fs operation on the descriptor, keeping it open until the operation returns. */
  #onFd(op: (fd: number, done: Done) => void, callback: Done): void {
    const fd = this.#fd;
    if (fd === undefined) return callback(closedError());
    this.#busy = true;
    op(fd, (err) => {
      this.#busy = false;
      const pendingClose = this.#closeWhenIdle;
      this.#closeWhenIdle = undefined;
      pendingClose?.();
      callback(err ?? (pendingClose ? closedError() : null));
    });
  }
}

function closedError(): HostpullError {
  return new HostpullError('INGEST_CLOSED', 'the ingest file was closed before this write (the pull failed elsewhere)');
}

function writeAll(fd: number, buf: Buffer, callback: Done): void {
  write(fd, buf, 0, buf.length, null, (err, written) => {
    if (err) return callback(err);
    if (written < buf.length) return writeAll(fd, buf.subarray(written), callback);
    callback();
  });
}
