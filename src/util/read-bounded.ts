import type { Readable } from 'node:stream';

/**
 * The one way a body is read into memory: refused as soon as it passes `max` bytes, checked on
 * each chunk as it arrives, so a hostile or broken peer cannot make us buffer more than `max`.
 * Returns undefined when the body is larger than `max` (the stream is destroyed then); the caller
 * says what that means (a registry's manifest too large, a request body refused…).
 */
export async function readBounded(body: AsyncIterable<unknown> & Pick<Readable, 'destroy'>, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > max) {
      body.destroy();
      return undefined;
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}
