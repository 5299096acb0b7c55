import { inflateRawOpen, inflateRawRun, isNativeAvailable } from '../native/index.js';
import { type RawInflater, zlibRawInflater } from '../oci/index.js';

/**
 * One step of a span's inflation into its buffer: inflates on until the buffer holds `until`
 * bytes (or is full), or the deflate data ends, and resolves to the bytes it holds (a step may
 * give more than asked for, never fewer unless the data ended). One step at a time.
 */
export type InflateStep = (until: number) => Promise<number>;

/** Starts inflating raw deflate data `deflate` into `out` in steps. */
export type SteppedInflater = (deflate: Buffer, out: Buffer) => InflateStep;

/** The addon's: each step a job on the pool that stops where it was asked to. */
const nativeStepped: SteppedInflater = (deflate, out) => {
  const handle = inflateRawOpen();
  return (until) => inflateRawRun(handle, deflate, out, until);
};

/** Node's zlib, which cannot stop part way: the first step inflates everything (the buffer's worth). */
const zlibStepped: SteppedInflater = (deflate, out) => {
  let all: Promise<number> | undefined;
  return () => (all ??= zlibRawInflater(deflate, out.length - 1).then((bytes) => bytes.copy(out, 0, 0, Math.min(bytes.length, out.length))));
};

/** How a lazy layer's reads inflate their spans in steps (see InflatingSpan): the addon where it is built, else zlib at once. */
export function steppedInflater(native = isNativeAvailable()): SteppedInflater {
  return native ? nativeStepped : zlibStepped;
}

/** The addon's in one step: a span's bytes in a buffer of their own, one byte over to see a span that inflates to more. */
const nativeInflater: RawInflater = async (deflate, length) => {
  const out = Buffer.allocUnsafe(length + 1);
  return out.subarray(0, await nativeStepped(deflate, out)(out.length));
};

/**
 * How a lazy layer's completion inflates its spans whole: the addon's ISA-L where it is built,
 * about twice zlib's speed (inflateSpan's default, used otherwise), on the cores the container
 * it serves runs on.
 */
export function spanInflater(): RawInflater | undefined {
  return isNativeAvailable() ? nativeInflater : undefined;
}
