import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { errorToJson, HostpullError, httpAnswerFor } from '../errors.js';
import type { Logger } from '../log.js';
import { readBounded } from '../util/index.js';
import type { ImageReference } from '../oci/index.js';
import type { PullResult } from '../pull/index.js';
import type { HostApi } from './host-api.js';
import type { DaemonMetrics } from './metrics.js';
import type { RequestTracker } from './request-tracker.js';
import type { PullStreamLine } from './wire.js';

export interface DaemonHandlerDeps {
  /** Does the work (in the daemon: a LocalHostApi on the daemon's store). */
  api: HostApi;
  metrics: DaemonMetrics;
  /** Every request but health and metrics runs through it, so that a stop can wait for them. */
  tracker: RequestTracker;
  logger: Logger;
  /** Store root, reported by /v1/health so a CLI only uses a daemon that serves its --root. */
  root: string;
  /** Turns the `reference` of a pull request into a reference (short names use the daemon's --server). */
  resolve: (input: string) => ImageReference;
  /** Called after each successful pull (the daemon schedules GC under its budget). */
  onPullDone?: (result: PullResult) => void;
  /** Budget used by `POST /v1/gc` when the request names none. Default: none. */
  maxStoreSize?: number | undefined;
  version?: string;
  /** Rootfs preparation for runtimes and orchestrators; the routes answer 404 without it. */
  containers?: ContainerApi;
}

export interface PreparedRootfs {
  id: string;
  rootfs: string;
  bundle: string;
  reference: string;
  manifestDigest: string;
}

/**
 * Prepared rootfs as the daemon hands them out: mounted, with an OCI bundle beside them. A rootfs
 * is the daemon's own until it is handed over, which happens just before its id is sent: one
 * that its client never receives (the client left, the daemon stopped) is removed, and one the
 * daemon was still preparing when it died is removed at the next start.
 */
export interface ContainerApi {
  /** Prepares a rootfs owned by the daemon; on any failure or abort nothing is left behind. */
  prepare(ref: ImageReference, options: { args?: string[]; env?: string[]; allowOverlap?: boolean; lazy?: boolean }, signal: AbortSignal): Promise<PreparedRootfs>;
  /**
   * Makes it outlive the daemon: from now on only {@link remove} ends it. A rootfs over lazy
   * layers stays the daemon's (its FUSE helper dies with the daemon): it lives until removed or
   * until the daemon stops, and the next start removes it.
   */
  handOver(rootfs: PreparedRootfs): Promise<void>;
  /** Unmounts and removes it, finishing whatever an earlier removal left; true if anything was there. */
  remove(id: string): Promise<boolean>;
}

export type DaemonHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** Request bodies are small JSON documents; anything bigger is a client bug. */
const MAX_BODY_BYTES = 64 * 1024;

const PullBody = z.strictObject({
  reference: z.string().min(1).max(1024),
  concurrency: z.number().int().min(1).max(64).optional(),
  unpack: z.boolean().optional(),
  keepBlobs: z.boolean().optional(),
});

const GcBody = z.strictObject({
  maxStoreSize: z.number().int().nonnegative().optional(),
  dryRun: z.boolean().optional(),
  graceMs: z.number().int().nonnegative().optional(),
});

const RootfsBody = z.strictObject({
  reference: z.string().min(1).max(1024),
  args: z.array(z.string()).max(4096).optional(),
  env: z.array(z.string().regex(/^[^=]+=/)).max(4096).optional(),
  allowOverlap: z.boolean().optional(),
  lazy: z.boolean().optional(),
});

const RemoveRootfsBody = z.strictObject({ id: z.string().regex(/^[a-f0-9]{12}$/) });

const RemoveImagesBody = z.strictObject({ references: z.array(z.string().min(1).max(1024)).min(1).max(1024) });

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The status of the code's row in error-codes.ts; the body always carries code, message and hint (the callers are local). */
function sendError(res: ServerResponse, err: unknown): void {
  const wire = errorToJson(err);
  // A stopping daemon keeps no connection open: the client's next request must find the new one.
  if (wire.code === 'DAEMON_STOPPING') res.setHeader('connection', 'close');
  sendJson(res, httpAnswerFor(err).status, { error: wire });
}

/**
 * Sends a JSON answer and tells whether it reached the client's socket (true once the kernel took
 * every byte; false when the connection closed first): the answer that carries a new rootfs id
 * must not be lost without the rootfs being rolled back.
 */
function deliverJson(res: ServerResponse, status: number, body: unknown): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    res.once('close', () => resolve(res.writableFinished));
    sendJson(res, status, body);
    res.once('finish', () => resolve(true));
  });
}

/** Fires when the client closes the connection before its answer is complete. */
function clientGone(res: ServerResponse): AbortSignal {
  const gone = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) gone.abort(new HostpullError('CLIENT_GONE', 'the client closed the connection'));
  });
  return gone.signal;
}

async function readJson<T>(req: IncomingMessage, schema: z.ZodType<T>): Promise<T> {
  const body = await readBounded(req, MAX_BODY_BYTES);
  if (!body) throw new HostpullError('TOO_LARGE', `request body over ${MAX_BODY_BYTES} bytes`);
  let value: unknown = {};
  if (body.length > 0) {
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      throw new HostpullError('BAD_REQUEST', 'request body is not JSON');
    }
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new HostpullError('BAD_REQUEST', `invalid request body: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

/**
 * The daemon's HTTP API as a plain request handler (no socket, no signals: startDaemon wires
 * those), so every route is testable by calling it with a request and a response object.
 *
 *   GET  /v1/health   {ok, pid, root, version, activePulls, inFlight, stopping}
 *   POST /v1/pull     {reference, concurrency?, unpack?, keepBlobs?} → NDJSON: PullEvents, then one
 *                     {type:'result', result} or {type:'error', error:{code, message, hint}}
 *   GET  /v1/images   ImageSummary[]
 *   GET  /v1/stats    HostStats
 *   POST /v1/gc       {maxStoreSize?, dryRun?, graceMs?} → GcReport
 *   DELETE /v1/images {references} → RemovedImage[]: all of them, or none and 404 IMAGE_UNKNOWN
 *   POST /v1/rootfs   {reference, args?, env?, allowOverlap?, lazy?} → 201 {id, rootfs, bundle, reference, manifestDigest}:
 *                     a mounted rootfs with a writable upper and an OCI bundle, kept until removed;
 *                     `lazy`: layers with a TOC are mounted lazily and completed in the background
 *                     (such a rootfs lives as long as this daemon: its FUSE helper serves it);
 *                     rolled back if the answer does not reach the client
 *   DELETE /v1/rootfs {id} → 204: unmount and remove it; idempotent (204 also when it is gone,
 *                     as CRI's RemoveContainer), so a client that lost the answer just asks again
 * Every route but health and metrics is refused with 503 DAEMON_STOPPING once the daemon stops.
 *   GET  /metrics     Prometheus text
 */
export function createDaemonHandler(deps: DaemonHandlerDeps): DaemonHandler {
  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>> = {
    'GET /v1/health': async (_req, res) =>
      sendJson(res, 200, {
        ok: true,
        pid: process.pid,
        root: deps.root,
        version: deps.version ?? null,
        activePulls: deps.tracker.count('pull'),
        inFlight: deps.tracker.count(),
        stopping: deps.tracker.stopping,
      }),
    'GET /v1/images': (_req, res) => deps.tracker.run('query', async () => sendJson(res, 200, await deps.api.images())),
    'GET /v1/stats': (_req, res) => deps.tracker.run('query', async () => sendJson(res, 200, await deps.api.stats())),
    'POST /v1/gc': async (req, res) => {
      const body = await readJson(req, GcBody);
      const maxStoreSize = body.maxStoreSize ?? deps.maxStoreSize;
      await deps.tracker.run('gc', async (signal) => {
        const report = await deps.api.gc({
          ...(maxStoreSize !== undefined ? { maxStoreSize } : {}),
          ...(body.graceMs !== undefined ? { graceMs: body.graceMs } : {}),
          dryRun: body.dryRun ?? false,
          signal,
        });
        sendJson(res, 200, report);
      });
    },
    'DELETE /v1/images': async (req, res) => {
      const body = await readJson(req, RemoveImagesBody);
      await deps.tracker.run('query', async () => sendJson(res, 200, await deps.api.removeImages(body.references)));
    },
    'GET /metrics': async (_req, res) => {
      const text = await deps.metrics.render();
      res.writeHead(200, { 'content-type': deps.metrics.contentType, 'content-length': Buffer.byteLength(text) });
      res.end(text);
    },
    'POST /v1/pull': (req, res) => pullRoute(deps, req, res),
    'POST /v1/rootfs': (req, res) => rootfsRoute(deps, req, res),
    'DELETE /v1/rootfs': async (req, res) => {
      const body = await readJson(req, RemoveRootfsBody);
      const containers = requireContainers(deps);
      // Never aborted at stop: a removal is quick, and one left half-done is what strands state.
      const removed = await deps.tracker.run('rootfs-remove', () => containers.remove(body.id), { abortable: false });
      deps.logger.info({ id: body.id, removed }, removed ? 'rootfs removed' : 'rootfs already gone');
      res.writeHead(204).end();
    },
  };

  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const route = routes[`${req.method} ${path}`];
    let run: Promise<void>;
    if (route) {
      run = route(req, res);
    } else if (Object.keys(routes).some((k) => k.endsWith(` ${path}`))) {
      run = Promise.reject(new HostpullError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`));
    } else {
      run = Promise.reject(new HostpullError('NOT_FOUND', `no route ${req.method} ${path}`));
    }
    run.catch((err: unknown) => {
      deps.logger.debug({ err, method: req.method, path }, 'request failed');
      if (!res.headersSent) sendError(res, err);
      else res.end();
    });
  };
}

/**
 * POST /v1/rootfs as a transaction: prepare (the daemon's own), hand over, answer; if the answer
 * cannot reach the client — it left, or the daemon is stopping and gave up waiting — the rootfs
 * is unmounted and removed, so no rootfs exists whose id nobody received.
 */
async function rootfsRoute(deps: DaemonHandlerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(req, RootfsBody);
  const containers = requireContainers(deps);
  const ref = deps.resolve(body.reference);
  const options = {
    ...(body.args ? { args: body.args } : {}),
    ...(body.env ? { env: body.env } : {}),
    ...(body.allowOverlap !== undefined ? { allowOverlap: body.allowOverlap } : {}),
    ...(body.lazy !== undefined ? { lazy: body.lazy } : {}),
  };
  await deps.tracker.run(
    'rootfs',
    async (signal) => {
      const prepared = await containers.prepare(ref, options, signal);
      try {
        signal.throwIfAborted();
        await containers.handOver(prepared);
        if (!(await deliverJson(res, 201, prepared))) {
          throw new HostpullError('CLIENT_GONE', `the client closed the connection before it received rootfs ${prepared.id}`);
        }
      } catch (err) {
        await containers.remove(prepared.id);
        deps.logger.info({ id: prepared.id, why: errorToJson(err).message }, 'rootfs rolled back: its client never received its id');
        throw err;
      }
    },
    { signal: clientGone(res) },
  );
}

function requireContainers(deps: DaemonHandlerDeps): ContainerApi {
  if (!deps.containers) throw new HostpullError('NOT_FOUND', 'this daemon does not prepare rootfs');
  return deps.containers;
}

async function pullRoute(deps: DaemonHandlerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(req, PullBody);
  // A client that goes away (Ctrl-C on `hostpull pull`) stops its pull, as it would in-process;
  // another pull waiting on the same blob takes the lease over and resumes the partial file.
  const gone = clientGone(res);
  const write = (line: PullStreamLine) => {
    if (!res.destroyed) res.write(`${JSON.stringify(line)}\n`);
  };
  let result: PullResult;
  try {
    const ref = deps.resolve(body.reference);
    result = await deps.tracker.run(
      'pull',
      (signal) =>
        deps.api.pull(ref, {
          ...(body.concurrency !== undefined ? { concurrency: body.concurrency } : {}),
          ...(body.unpack !== undefined ? { unpack: body.unpack } : {}),
          ...(body.keepBlobs !== undefined ? { keepBlobs: body.keepBlobs } : {}),
          signal,
          onEvent: (e) => {
            if (!res.headersSent) startStream(res);
            write(e);
          },
        }),
      { signal: gone },
    );
  } catch (err) {
    // Errors before any event (bad reference, stopping) still travel in the stream: the client
    // reads one protocol whatever happens.
    if (!res.headersSent) startStream(res);
    write({ type: 'error', error: errorToJson(err) });
    res.end();
    deps.logger.info({ reference: body.reference, err: errorToJson(err) }, 'pull failed');
    return;
  }
  if (!res.headersSent) startStream(res);
  write({ type: 'result', result });
  res.end();
  deps.metrics.observePull(result);
  deps.logger.info({ reference: result.reference, digest: result.manifestDigest, bytesFetched: result.bytesFetched, ms: result.phases.total }, 'pulled');
  deps.onPullDone?.(result);
}

function startStream(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  // Progress must reach the client as it happens, not when a buffer fills.
  res.flushHeaders();
}
