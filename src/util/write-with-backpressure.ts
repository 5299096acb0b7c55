import type { Writable } from 'node:stream';

/** Writes a chunk and resolves once the sink accepts more (after 'drain' when it is full). */
export function writeWithBackpressure(sink: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sink.destroyed) return reject(sink.errored ?? new Error('sink destroyed'));
    const ok = sink.write(chunk, (err) => {
      if (err) reject(err);
    });
    if (ok) return resolve();
    const onDrain = () => {
      sink.off('error', onError);
      resolve();
    };
    const onError = (err: Error) => {
      sink.off('drain', onDrain);
      reject(err);
    };
    sink.once('drain', onDrain);
    sink.once('error', onError);
  });
}
