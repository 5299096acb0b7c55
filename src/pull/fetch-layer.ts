import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { PassThrough, Readable, Transform, type Duplex, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorText, HostpullError, hintFor, isHostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { layerCompression, type LayerCompression, type Digest } from '../oci/index.js';
import { isRetryable, RegistryError, type RegistryReader, type RepositoryRef, type RetryBudget } from '../registry/index.js';
import { type PackageClaim, VerifyingStream } from '../archive/index.js';
import type { ContentStore, LayerCommit, LayerRow } from '../store/index.js';
import { applyLayer, type ApplyOptions, type ApplyResult, type ApplyWorkers } from '../unpack/index.js';
import { Tee } from './tee.js';
import { retryEvents, type PullEvent } from './events.js';
import { relayUntilWritten } from './relay-until-written.js';
import { unpacksInWorker } from './unpack-placement.js';

export interface LayerJob {
  repo: RepositoryRef;
  digest: Digest;
  diffId: Digest;
  size: number;
  mediaType: string;
  /** The package claim the layer is unpacked under (from the composite's annotations); none for a base layer. */
  claim?: PackageClaim | undefined;
}

export interface FetchLayerDeps {
  store: ContentStore;
  client: RegistryReader;
  logger: Logger;
  onEvent?: ((e: PullEvent) => void) | undefined;
  /** Worker threads for unpacking big layers; without them every layer is unpacked on this thread. */
  workers?: ApplyWorkers | undefined;
}

export interface FetchOutcome {
  fetchedBytes: number;
  resumedFrom: number;
  unpacked: boolean;
  layer?: LayerRow;
}

export interface FetchLayerOptions {
  unpack: boolean;
  /**
   * Keep the compressed blob once its layer is unpacked and verified. Default false: a node keeps
   * one copy of each layer, the unpacked one; the blob's digest and size stay recorded with the
   * layer and the image. Without `unpack` the blob is always kept (it is the only copy).
   */
  keepBlob?: boolean;
  signal?: AbortSignal;
}

/** Unpacks one layer where it is cheapest (see unpack-placement.ts). */
function unpackLayer(deps: FetchLayerDeps, job: LayerJob, source: Readable, options: ApplyOptions): Promise<ApplyResult> {
  return deps.workers && unpacksInWorker(job.size, deps.workers.idle) ? deps.workers.apply(source, options, job.size) : applyLayer(source, options);
}

function source(repo: RepositoryRef): string {
  return `${repo.registry}/${repo.repository}`;
}

/**
 * Makes sure the error that ends a layer names the blob and where it came from. Those of the
 * registry client name the request's URL (which names the blob), those of the verifying stream
 * carry its digest: they pass as they are.
 */
function describe(err: unknown, job: LayerJob, attempts: number): unknown {
  if (err instanceof RegistryError || (isHostpullError(err) && err.details?.digest === job.digest)) return err;
  const code = isHostpullError(err) ? err.code : 'BLOB_FETCH_FAILED';
  const why = errorText(err);
  return new HostpullError(code, `fetching blob ${job.digest} from ${source(job.repo)} failed${attempts > 1 ? ` after ${attempts} attempts` : ''}: ${why}`, {
    cause: err,
    ...(isHostpullError(err) && err.details ? { details: err.details } : {}),
    // A wrapped error keeps its own hint (or the full-disk one); only a bare I/O error, or an
    // interrupt, gets ours.
    hint: hintFor(err) ?? (!isHostpullError(err) || err.code === 'ABORTED' ? 'the partial download is kept; pulling again resumes it' : undefined),
  });
}

/** Counts bytes for progress without touching them. */
function progressCounter(job: LayerJob, start: number, onEvent?: (e: PullEvent) => void): Transform {
  let bytes = start;
  let lastEmit = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      const now = Date.now();
      if (onEvent && (now - lastEmit > 100 || bytes === job.size)) {
        lastEmit = now;
        onEvent({ type: 'layer-progress', digest: job.digest, bytes, size: job.size });
      }
      cb(null, chunk);
    },
  });
}

/**
 * Downloads one layer blob into the store, verifying size and digest as bytes arrive, and — when
 * `unpack` is set and the download starts at byte 0 — unpacks it in the same pass. A transfer
 * that breaks is resumed with Range from what reached the disk; a resumed or already stored blob
 * is unpacked from its file afterwards. Once unpacked and verified, the blob is dropped unless
 * `keepBlob` says otherwise.
 */
export async function fetchLayer(deps: FetchLayerDeps, job: LayerJob, options: FetchLayerOptions): Promise<FetchOutcome> {
  const { store } = deps;
  const compression = layerCompression(job.mediaType);
  let fetchedBytes = 0;
  let resumedFrom = 0;
  const unpacked = async (layer: LayerRow): Promise<FetchOutcome> => {
    if (!options.keepBlob) await store.blobs.drop(job.digest);
    return { fetchedBytes, resumedFrom, unpacked: true, layer };
  };

  if (!store.blobs.has(job.digest)) {
    // One retry budget for the whole download, shared with the transport's own retries of each
    // request: a registry that is down is waited for once (backoff, then the budget), whether it
    // refuses connections, answers 503 or goes silent in the middle of the body.
    const retry = deps.client.retryBudget(job.repo.registry, {
      signal: options.signal,
      what: `blob ${job.digest}`,
      ...(deps.onEvent ? { onRetry: retryEvents(deps.onEvent) } : {}),
    });
    for (let first = true; ; first = false) {
      // What this attempt fetched, known whether it ends well or not.
      const attempt: TransferAttempt = { fetched: 0 };
      try {
        const result = await transfer(deps, job, compression, options, retry, attempt);
        fetchedBytes += attempt.fetched;
        if (first) resumedFrom = result.resumedFrom;
        if (result.layer) return unpacked(result.layer);
        break;
      } catch (err) {
        const got = attempt.fetched;
        fetchedBytes += got;
        // Cut short by its signal (Ctrl-C, a daemon's stop): say why, not what the cut looked
        // like from inside the stream ("The operation was aborted", "reading aborted").
        if (options.signal?.aborted) throw describe(options.signal.reason instanceof Error ? options.signal.reason : err, job, retry.retries + 1);
        if (isHostpullError(err, 'DIGEST_MISMATCH') || (isHostpullError(err, 'SIZE_MISMATCH') && !isRetryable(err))) {
          // The bytes on disk cannot be trusted: no partial is kept for this blob.
          await store.blobs.discardIngest(job.digest);
          throw err;
        }
        // Bytes arrived: the registry is alive, so the budget starts again at the next failure.
        if (got > 0) retry.progressed();
        try {
          await retry.failed(err);
        } catch (final) {
          throw describe(final, job, retry.retries + 1);
        }
      }
    }
  }
  if (!options.unpack) return { fetchedBytes, resumedFrom, unpacked: false };
  try {
    return await unpacked(await unpackFromFile(deps, job, compression, options.signal));
  } catch (err) {
    // A stored blob that no longer hashes to its digest is corrupt on disk, not a bad layer:
    // quarantine it and fetch it again, once (a second failure is the layer's own).
    if (fetchedBytes > 0 || !(await store.blobs.corruptOnDisk(job.digest))) throw err;
    deps.logger.warn({ digest: job.digest }, 'stored layer blob is corrupt; quarantined, fetching it again');
    store.blobs.quarantine(job.digest);
    return fetchLayer(deps, job, options);
  }
}

/** applyLayer's options for a job: its claim and the store's bounds (also a lazy layer's completion, src/lazy). */
export function applyOptions(store: ContentStore, job: Pick<LayerJob, 'diffId' | 'size' | 'claim'>, compression: LayerCompression, target: string, signal: AbortSignal | undefined): ApplyOptions {
  const limits = store.unpackLimits();
  return {
    compression,
    target,
    expectedDiffId: job.diffId,
    compressedSize: job.size,
    maxExpansionRatio: limits.maxExpansionRatio,
    keepFreeBytes: limits.keepFreeBytes,
    ...(job.claim ? { claim: job.claim } : {}),
    ...(signal ? { signal } : {}),
  };
}

/** What the store records of an unpacked layer. */
export function layerCommit(job: Pick<LayerJob, 'digest' | 'diffId'>, result: ApplyResult): LayerCommit {
  return {
    diffId: job.diffId,
    blobDigest: job.digest,
    unpackedSize: result.uncompressedSize,
    entries: result.entries,
    ownedPaths: result.ownedPaths,
    footprint: result.footprint,
    treeChecksum: result.treeChecksum,
  };
}

/** Bytes one transfer attempt received from the registry, kept up to date while it runs. */
interface TransferAttempt {
  fetched: number;
}

async function transfer(
  deps: FetchLayerDeps,
  job: LayerJob,
  compression: LayerCompression,
  options: FetchLayerOptions,
  retry: RetryBudget,
  attempt: TransferAttempt,
): Promise<{ resumedFrom: number; layer?: LayerRow }> {
  const { store, client } = deps;
  // A blob dropped once its layer is committed needs no fsync (openIngest's `durable`).
  const durable = !options.unpack || options.keepBlob === true;
  let ingest = await store.blobs.openIngest(job.digest, job.size, job.mediaType, { resume: true, direct: true, durable });
  if (ingest.offset === job.size) {
    // Every byte reached the disk before the last process stopped: its digest decides, as a
    // download's would (a mismatch discards the partial), and nothing is asked of the registry.
    const verifier = new VerifyingStream({ digest: job.digest, size: job.size, source: source(job.repo), hash: ingest.hash, offset: ingest.offset });
    await pipeline(Readable.from([]), verifier, ingest.writer, { signal: options.signal });
    return { resumedFrom: ingest.offset };
  }
  let response = await client.getBlob(job.repo, job.digest, { offset: ingest.offset, signal: options.signal, retry });
  if (response.offset !== ingest.offset) {
    // The registry ignored our Range: start over from byte 0 with what it sends.
    response.stream.destroy();
    ingest.writer.destroy();
    ingest = await store.blobs.openIngest(job.digest, job.size, job.mediaType, { resume: false, direct: true, durable });
    response = await client.getBlob(job.repo, job.digest, { offset: 0, signal: options.signal, retry });
  }
  const resumedFrom = ingest.offset;
  // A break mid-body is passed on only once what arrived is on disk: the resume starts there.
  const writer = ingest.writer;
  const body = relayUntilWritten(response.stream, () => writer.kept);
  deps.onEvent?.({ type: 'layer-start', digest: job.digest, size: job.size, resumeFrom: resumedFrom });
  const verifier = new VerifyingStream({ digest: job.digest, size: job.size, source: source(job.repo), hash: ingest.hash, offset: ingest.offset });
  const counter = progressCounter(job, ingest.offset, deps.onEvent);
  const fetchedFrom = ingest.offset;
  try {
    // One pass: unpack while downloading, unless this is a resumed transfer (the unpacker needs
    // the stream from byte 0; the stored file is unpacked afterwards instead).
    if (!options.unpack || resumedFrom > 0) {
      await pipeline(body, verifier, counter, ingest.writer, { signal: options.signal });
      return { resumedFrom };
    }
    return { resumedFrom, layer: await downloadAndUnpack(deps, job, compression, [body, verifier, counter], ingest.writer, options.signal) };
  } catch (err) {
    // A failed pipeline rejects as soon as it fails, while the writer may still be writing out
    // what it holds (its destroy drains the direct buffer): the next attempt sizes the partial
    // file to resume from, so it must come after. Seen under load 10 as a resume that fetched
    // 1.5 MB twice (registry-faults "cut every 1.5 MB").
    if (!writer.closed) {
      const closed = new Promise((resolve) => writer.once('close', resolve));
      writer.destroy();
      await closed;
    }
    throw err;
  } finally {
    attempt.fetched = verifier.bytes - fetchedFrom;
  }
}

/**
 * The download written to the ingest file and unpacked into a staging directory in one pass (a
 * Tee at the pace of the slower side), then committed as a layer; nothing staged is left behind
 * on failure.
 */
async function downloadAndUnpack(
  deps: FetchLayerDeps,
  job: LayerJob,
  compression: LayerCompression,
  source: [Readable, ...Duplex[]],
  blobFile: Writable,
  signal: AbortSignal | undefined,
): Promise<LayerRow> {
  const { store } = deps;
  const staging = await store.layers.stage();
  const unpackInput = new PassThrough({ highWaterMark: 1 << 20 });
  const abort = new AbortController();
  const onAbort = () => abort.abort(signal?.reason);
  // Aborted already (a stop while the staging directory was made): an aborted signal tells no new listener.
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  const unpacked = unpackLayer(deps, job, unpackInput, applyOptions(store, job, compression, staging, abort.signal));
  try {
    const download = pipeline([...source, new Tee(blobFile, unpackInput)], { signal: abort.signal });
    let result: ApplyResult;
    try {
      [, result] = await Promise.all([
        download.catch((err) => {
          unpackInput.destroy(err);
          throw err;
        }),
        unpacked.catch((err) => {
          abort.abort(err);
          throw err;
        }),
      ]);
    } catch (err) {
      // Let both sides settle before the staging dir goes away.
      await Promise.allSettled([download, unpacked]);
      throw err;
    }
    return await store.layers.commit(staging, layerCommit(job, result));
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Unpacks a blob that is already in the store (resumed download, or pulled with --no-unpack). */
async function unpackFromFile(deps: FetchLayerDeps, job: LayerJob, compression: LayerCompression, signal?: AbortSignal): Promise<LayerRow> {
  const { store } = deps;
  const existing = store.layers.get(job.diffId);
  if (existing) return existing;
  const staging = await store.layers.stage();
  try {
    const result = await unpackLayer(deps, job, createReadStream(store.blobs.path(job.digest), { highWaterMark: 1 << 20 }), applyOptions(store, job, compression, staging, signal));
    return await store.layers.commit(staging, layerCommit(job, result));
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    if (isHostpullError(err)) throw err;
    throw new HostpullError('UNPACK_FAILED', `unpacking layer ${job.digest} from ${store.blobs.path(job.digest)} failed: ${(err as Error).message}`, { cause: err });
  }
}
