import type { Hash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDigester, digestFromHash, type Digest, type DigestAlgorithm } from './digest.js';

export interface HashingStreamOptions {
  /** Default sha256. */
  algorithm?: DigestAlgorithm;
  /** A digester already fed with bytes received earlier (a resumed download). */
  hash?: Hash;
  /** Bytes already fed into `hash`. */
  offset?: number;
}

/**
 * The one hash-while-streaming primitive: passes bytes through unchanged while hashing and
 * counting them. Its digest is read once the stream has ended; VerifyingStream builds on it to
 * check an expected digest and size before passing end-of-stream on.
 */
export class HashingStream extends Transform {
  readonly #algorithm: DigestAlgorithm;
  readonly #hash: Hash;
  #count: number;
  #digest: Digest | undefined;

  constructor(options: HashingStreamOptions = {}) {
    super();
    this.#algorithm = options.algorithm ?? 'sha256';
    this.#hash = options.hash ?? createDigester(this.#algorithm);
    this.#count = options.offset ?? 0;
  }

  /** Bytes seen so far, including a resumed prefix. */
  get bytes(): number {
    return this.#count;
  }

  /** The digest of every byte seen (a digester can be finished once: later calls return the same). */
  digest(): Digest {
    this.#digest ??= digestFromHash(this.#hash, this.#algorithm);
    return this.#digest;
  }

  /** Counts and hashes one chunk; subclasses check before they count it. */
  protected count(chunk: Buffer): void {
    this.#count += chunk.length;
    this.#hash.update(chunk);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.count(chunk);
    callback(null, chunk);
  }
}

async function drain(source: Readable, hashing: HashingStream): Promise<void> {
  await pipeline(source, hashing, async (chunks: AsyncIterable<unknown>) => {
    for await (const _ of chunks);
  });
}

/** Reads `source` to its end and returns the digest and size of what it held. */
export async function digestStream(source: Readable, algorithm: DigestAlgorithm = 'sha256'): Promise<{ digest: Digest; size: number }> {
  const hashing = new HashingStream({ algorithm });
  await drain(source, hashing);
  return { digest: hashing.digest(), size: hashing.bytes };
}

/** Feeds all of `source` into `hash`, which stays open for more (a resumed download); returns the byte count. */
export async function hashInto(source: Readable, hash: Hash): Promise<number> {
  const hashing = new HashingStream({ hash });
  await drain(source, hashing);
  return hashing.bytes;
}
