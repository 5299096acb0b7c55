/**
 * Where a layer is unpacked: layers at least this big (compressed) in a worker thread; smaller
 * ones on the calling thread, where they cost less than a worker's start (~60 ms of CPU), unless
 * a worker is already running and idle (a daemon keeps its workers, and a pull's big layers
 * started some). There, the layer's inflating, parsing and writing run beside this thread's
 * receiving, hashing and blob writing, on two cores, as `curl | pigz -d | tar -x` does: a daemon
 * pulled a layer of 8.9 MB (941 entries) in 134 ms instead of 172 ms (medians of 10 alternated
 * pulls).
 * A module of its own so the Puller can count the workers a pull needs (and start them early)
 * without loading the layer machinery.
 */
const WORKER_MIN_BYTES = 16 * 1024 * 1024;

/** `idleWorkers`: workers running with nothing to do (0 when the caller only decides which workers to start). */
export function unpacksInWorker(compressedSize: number, idleWorkers = 0): boolean {
  return compressedSize >= WORKER_MIN_BYTES || idleWorkers > 0;
}
