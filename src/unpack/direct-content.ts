import { closeSync, openSync, writeSync, constants as fsc } from 'node:fs';
import { errnoCode } from '../errors.js';
import { alignedBuffer, DIRECT_IO_ALIGNMENT } from '../native/index.js';

/**
 * Regular files at least this big have their content written through O_DIRECT: in the benchmark's
 * package layers, files of 128 KiB and more hold 85-98% of the bytes (JDK 11 and 17, Gradle) in
 * 1-2% of the JDK's files; one more open and close each is nothing against their size.
 */
export const DIRECT_MIN_BYTES = 128 * 1024;
/** Bytes per direct write. */
const BLOCK = 1024 * 1024;
/** Direct bytes written before the device's pace is judged (see {@link DirectContentOptions.minBytesPerSecond}). */
const JUDGE_AFTER_BYTES = 8 * BLOCK;

export interface DirectContentOptions {
  /**
   * The slowest pace of the direct writes (bytes per second, over the layer's first
   * JUDGE_AFTER_BYTES of them) at which they stay on. A direct write waits for the device where a
   * buffered one returns once copied: on a device slower than the page cache's copy, direct
   * writes would make the unpack wait for the disk, so the rest of the layer goes buffered.
   * Default 512 MiB/s (this machine's disk takes 1 MiB direct writes at 1.6 GB/s; the page
   * cache's copy ran at 0.2-1.5 GB/s here, depending on how much the kernel held dirty).
   */
  minBytesPerSecond?: number;
  /** Monotonic clock in nanoseconds (tests). */
  now?: () => bigint;
}

/**
 * The content of a layer's big files, written through a second, O_DIRECT descriptor of each file:
 * whole aligned blocks from one reused aligned buffer, and only the last partial block through
 * the file's own descriptor. The two never write the same range.
 *
 * Why: a buffered write() copies every byte into a fresh page-cache page. On this machine's VM,
 * after a few GB had been written or deleted, that copy became the largest single cost of a cold
 * pull (perf: 26% of all CPU in copy_folio_from_iter_atomic, 6% zeroing the pages; the sha256 of
 * the blob and the diffID together were 8%). Here the bytes are copied once into a buffer that
 * stays hot and leave by DMA. The file's pages are then not cached until something reads them:
 * a container's first start reads them from the disk.
 *
 * A filesystem without direct I/O (EINVAL at the open or at a write: some FUSE and network
 * filesystems) or a build without the native addon (no aligned memory) turns it off for the rest
 * of the layer, and the bytes go through the page cache as before. Errors of a write (a full
 * disk) are thrown to the caller as the buffered write's are.
 */
export class DirectContent {
  readonly #minBytesPerSecond: number;
  readonly #now: () => bigint;
  /** Bytes the direct writes took and how long, until judged (then undefined). */
  #pace: { bytes: number; ns: bigint } | undefined = { bytes: 0, ns: 0n };
  #buffer: Buffer | undefined;
  #available = true;
  /** The direct descriptor of the file being written, or -1 (none, or given up on for it). */
  #directFd = -1;
  /** The file's own descriptor while its content goes through here (-1 otherwise): the tail, and the rest of a write the direct one refused. */
  #fd = -1;
  #filled = 0;
  /** File offset of the buffer's first byte. */
  #pos = 0;
  /** Bytes written through O_DIRECT so far (tests, and to see it work). */
  directBytes = 0;

  constructor(options: DirectContentOptions = {}) {
    this.#minBytesPerSecond = options.minBytesPerSecond ?? 512 * 1024 ** 2;
    this.#now = options.now ?? process.hrtime.bigint;
  }

  /** A file's content goes through here: from a `begin` that said yes to its `end` or `close`. */
  get active(): boolean {
    return this.#fd >= 0;
  }

  /**
   * Starts the content of the file open on `fd` (empty, just created). False when direct writes
   * are not to be had: then nothing else of this class is called for the file.
   */
  begin(fd: number): boolean {
    if (!this.#available) return false;
    try {
      this.#buffer ??= alignedBuffer(BLOCK, DIRECT_IO_ALIGNMENT);
      // The same open file again, not its name: nothing can have replaced it in between.
      this.#directFd = openSync(`/proc/self/fd/${fd}`, fsc.O_WRONLY | fsc.O_DIRECT);
    } catch {
      this.#available = false;
      return false;
    }
    this.#fd = fd;
    this.#filled = 0;
    this.#pos = 0;
    return true;
  }

  write(chunk: Buffer): void {
    const buffer = this.#buffer!;
    let off = 0;
    while (off < chunk.length) {
      const n = chunk.copy(buffer, this.#filled, off);
      this.#filled += n;
      off += n;
      if (this.#filled === BLOCK) this.#flush(BLOCK);
    }
  }

  /** Writes what is left (its aligned part direct, the tail buffered) and closes the direct descriptor. */
  end(): void {
    try {
      const aligned = this.#filled - (this.#filled % DIRECT_IO_ALIGNMENT);
      if (aligned > 0) this.#flush(aligned);
      if (this.#filled > 0) writeAll(this.#fd, this.#buffer!.subarray(0, this.#filled), this.#pos);
      this.#pos += this.#filled;
      this.#filled = 0;
    } finally {
      this.close();
    }
  }

  /** Ends the file (after a failure too): closes the direct descriptor; the file's own stays the caller's. */
  close(): void {
    this.#fd = -1;
    this.#closeDirect();
  }

  /** Gives up the direct descriptor; the rest of the file goes through its own. */
  #closeDirect(): void {
    if (this.#directFd < 0) return;
    const fd = this.#directFd;
    this.#directFd = -1;
    closeSync(fd);
  }

  /** Writes the buffer's first `n` bytes (a multiple of DIRECT_IO_ALIGNMENT) and moves the rest to its start. */
  #flush(n: number): void {
    const buffer = this.#buffer!;
    let written = 0;
    if (this.#directFd >= 0) {
      const start = this.#now();
      try {
        written = writeSync(this.#directFd, buffer, 0, n, this.#pos);
        this.directBytes += written;
      } catch (err) {
        if (errnoCode(err) !== 'EINVAL') throw err;
        this.#available = false;
        this.#closeDirect();
      }
      this.#judge(written, this.#now() - start);
    }
    // A refused or short direct write: the rest through the page cache, which also says why it was short.
    if (written < n) writeAll(this.#fd, buffer.subarray(written, n), this.#pos + written);
    buffer.copy(buffer, 0, n, this.#filled);
    this.#filled -= n;
    this.#pos += n;
  }

  /** Counts a direct write; once enough are in, a device slower than the bound turns direct writes off. */
  #judge(bytes: number, ns: bigint): void {
    const pace = this.#pace;
    if (!pace) return;
    pace.bytes += bytes;
    pace.ns += ns;
    if (pace.bytes < JUDGE_AFTER_BYTES) return;
    this.#pace = undefined;
    if (pace.bytes * 1e9 < this.#minBytesPerSecond * Number(pace.ns)) {
      this.#available = false;
      this.#closeDirect();
    }
  }
}

function writeAll(fd: number, bytes: Buffer, at: number): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off, at + off);
}
