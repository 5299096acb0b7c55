import type { TransformCallback } from 'node:stream';
import type { Hash } from 'node:crypto';
import { HostpullError } from '../errors.js';
import { digestAlgorithm, shortDigest, type Digest } from '../oci/index.js';
import { HashingStream } from '../oci/index.js';

export interface VerifyingStreamOptions {
  digest: Digest;
  size: number;
  /** Where the bytes come from, for error messages (`127.0.0.1:5000/pkg/jdk`). */
  source: string;
  /** A digester already fed with bytes received earlier (resumed download). */
  hash?: Hash;
  /** Bytes already fed into `hash`. */
  offset?: number;
}

/**
 * Passes bytes through while hashing and counting them, and fails *before* signalling
 * end-of-stream when the size or digest is wrong, so a consumer never sees a clean end of
 * unverified content. Too many bytes fail at once, without waiting for the end.
 *
 * The chunk that reaches the declared size is held until the digest has been checked: a consumer
 * that counts bytes rather than waiting for the end (an HTTP client reading Content-Length bytes
 * of what `hostpull serve` relays) would otherwise hold a complete body of wrong content.
 */
export class VerifyingStream extends HashingStream {
  readonly #digest: Digest;
  readonly #size: number;
  readonly #source: string;
  /** The chunk that completed the declared size, released by _flush once the digest matches. */
  #last: Buffer | undefined;

  constructor(options: VerifyingStreamOptions) {
    super({ algorithm: digestAlgorithm(options.digest), ...(options.hash ? { hash: options.hash } : {}), ...(options.offset ? { offset: options.offset } : {}) });
    this.#digest = options.digest;
    this.#size = options.size;
    this.#source = options.source;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    if (this.bytes + chunk.length > this.#size) {
      callback(
        new HostpullError('SIZE_MISMATCH', `blob ${shortDigest(this.#digest)} from ${this.#source}: more than the ${this.#size} bytes the manifest declares`, {
          details: { digest: this.#digest, expected: this.#size },
        }),
      );
      return;
    }
    this.count(chunk);
    if (this.bytes < this.#size) {
      callback(null, chunk);
      return;
    }
    // The size is reached: only empty chunks may follow, and they must not replace this one.
    if (chunk.length > 0) this.#last = chunk;
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.bytes !== this.#size) {
      callback(
        new HostpullError('SIZE_MISMATCH', `blob ${shortDigest(this.#digest)} from ${this.#source}: got ${this.bytes} bytes, the manifest declares ${this.#size}`, {
          hint: 'the transfer was cut short or the registry serves different content; pulling again resumes or refetches it',
          details: { digest: this.#digest, expected: this.#size, actual: this.bytes },
        }),
      );
      return;
    }
    const actual = this.digest();
    if (actual !== this.#digest) {
      callback(
        new HostpullError('DIGEST_MISMATCH', `blob ${this.#digest} from ${this.#source}: content hashes to ${actual}`, {
          hint: 'the registry serves corrupt or substituted content; nothing was stored',
          details: { digest: this.#digest, actual },
        }),
      );
      return;
    }
    if (this.#last) this.push(this.#last);
    callback();
  }
}
