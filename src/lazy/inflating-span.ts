import { spanDeflate, spanSizeMismatch, type SeekableToc } from '../oci/index.js';
import type { SteppedInflater } from './span-inflater.js';

interface Waiter {
  need: number;
  resolve: (bytes: Buffer) => void;
  reject: (err: unknown) => void;
}

/**
 * One span of a lazy layer on its way into memory: its verified compressed bytes, once they are
 * here, inflated in steps, so that a read waits for the bytes it asked for and not for the whole
 * span. A first node's `mvn -v` waited for 37 span misses, each answered only after all of its
 * 1 MiB span was inflated (2.9 ms on average, an instrumented run), for reads of 4-128 KiB.
 *
 * The first step stops once the buffer holds what the reads waiting then need (their furthest
 * end); the next ones at what later reads need, or at the end. Nothing unverified is handed out:
 * the compressed bytes were checked against the TOC's sha256 before the first step, and each
 * prefix of their inflation is the published tar's. The span's size is judged at its last step
 * (TOC_INVALID if it is not the TOC's), as for a span inflated at once.
 */
export class InflatingSpan {
  /** All the span's bytes, checked against the TOC's size. */
  readonly whole: Promise<Buffer>;
  #out: Buffer | undefined;
  /** Bytes #out holds. */
  #held = 0;
  #done = false;
  readonly #waiters: Waiter[] = [];
  readonly #us: number;

  constructor(compressed: Promise<Buffer>, toc: SeekableToc, index: number, inflater: SteppedInflater) {
    this.#us = toc.spans[index]!.us;
    this.whole = compressed.then((bytes) => this.#inflate(spanDeflate(toc, index, bytes), index, inflater));
    this.whole.then(
      (bytes) => {
        this.#done = true;
        for (const w of this.#waiters.splice(0)) w.resolve(bytes);
      },
      (err: unknown) => {
        this.#done = true;
        for (const w of this.#waiters.splice(0)) w.reject(err);
      },
    );
  }

  /**
   * At least the span's first `need` bytes: a view of its buffer (later steps write after them,
   * never over them), or all of it.
   */
  prefix(need: number): Promise<Buffer> {
    if (this.#done || need >= this.#us) return this.whole;
    if (this.#out && this.#held >= need) return Promise.resolve(this.#out.subarray(0, this.#held));
    return new Promise((resolve, reject) => this.#waiters.push({ need, resolve, reject }));
  }

  async #inflate(deflate: Buffer, index: number, inflater: SteppedInflater): Promise<Buffer> {
    const us = this.#us;
    // One byte over, to see a span that inflates to more than the TOC says.
    const out = (this.#out = Buffer.allocUnsafe(us + 1));
    const step = inflater(deflate, out);
    for (;;) {
      const target = this.#nextStop();
      this.#held = await step(target);
      if (this.#held > us) throw spanSizeMismatch(index, this.#held, us);
      if (this.#held < target) {
        // The data ended: it must have ended where the TOC says.
        if (this.#held !== us) throw spanSizeMismatch(index, this.#held, us);
        return out.subarray(0, us);
      }
      const ready = out.subarray(0, this.#held);
      for (let k = this.#waiters.length - 1; k >= 0; k--) {
        const w = this.#waiters[k]!;
        if (w.need > this.#held) continue;
        this.#waiters.splice(k, 1);
        w.resolve(ready);
      }
    }
  }

  /** Where the next step stops: the furthest end a waiting read needs, or past the end (the rest) when none waits. */
  #nextStop(): number {
    let stop = 0;
    for (const w of this.#waiters) stop = Math.max(stop, w.need);
    return stop > this.#held && stop < this.#us ? stop : this.#us + 1;
  }
}
