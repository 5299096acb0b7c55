import { inflateRaw, isNativeAvailable } from '../native/index.js';
import type { RawInflater } from '../oci/index.js';

/** ISA-L through the addon: a span's bytes in a buffer of their own, one byte over to see a span that inflates to more. */
const nativeInflater: RawInflater = async (deflate, length) => {
  const out = Buffer.allocUnsafe(length + 1);
  return out.subarray(0, await inflateRaw(deflate, out));
};

/**
 * How a lazy layer inflates its spans: the addon's ISA-L where it is built, about twice zlib's
 * speed (inflateSpan's default, used otherwise). A starting container waits for those spans, on
 * the CPU its own start needs.
 */
export function spanInflater(): RawInflater | undefined {
  return isNativeAvailable() ? nativeInflater : undefined;
}
