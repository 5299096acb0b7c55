/**
 * Where a layer is unpacked: layers at least this big (compressed) in a worker thread, smaller
 * ones on the calling thread, which is mostly idle during a pull and where they cost less than a
 * worker's start (~60 ms of CPU). A module of its own so the Puller can count the workers a pull
 * needs (and start them early) without loading the layer machinery.
 */
const WORKER_MIN_BYTES = 16 * 1024 * 1024;

export function unpacksInWorker(compressedSize: number): boolean {
  return compressedSize >= WORKER_MIN_BYTES;
}
