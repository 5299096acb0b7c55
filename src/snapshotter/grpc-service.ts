import { status, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { errorRow, errorText, HostpullError, isHostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Labels } from './labels.js';
import type { ContainerdMount } from './snapshot-mounts.js';
import type { SnapshotInfo, Snapshotter } from './snapshotter.js';

interface GrpcError {
  code: status;
  details: string;
}

/**
 * Our error → a gRPC status (the `grpc` column of error-codes.ts), which containerd turns into its
 * errdefs (NotFound, AlreadyExists, FailedPrecondition…) and acts on: e.g. its unpacker applies a
 * layer's missing parent first on NOT_FOUND, and takes ALREADY_EXISTS on a prepare with a target
 * label as "the snapshotter has it".
 */
function toGrpc(err: unknown): GrpcError {
  if (isHostpullError(err)) return { code: status[errorRow(err.code).grpc], details: `${err.code}: ${err.message}` };
  return { code: status.UNKNOWN, details: errorText(err) };
}

interface Timestamp {
  seconds: number;
  nanos: number;
}

function timestamp(ms: number): Timestamp {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

const KIND = { view: 'VIEW', active: 'ACTIVE', committed: 'COMMITTED' } as const;

function wireInfo(i: SnapshotInfo): Record<string, unknown> {
  return { name: i.name, parent: i.parent, kind: KIND[i.kind], created_at: timestamp(i.createdAt), updated_at: timestamp(i.updatedAt), labels: i.labels };
}

function wireMounts(mounts: ContainerdMount[]): Array<Record<string, unknown>> {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: '', options: m.options }));
}

interface KeyRequest {
  key: string;
  parent?: string;
  labels?: Labels;
}

/** How many Info entries one List response carries (containerd reads a stream of batches). */
const LIST_BATCH = 100;

/** A snapshots.v1 method, for logs and for {@link SnapshotsServiceOptions.track}. */
export type SnapshotsMethod = 'Prepare' | 'View' | 'Mounts' | 'Commit' | 'Remove' | 'Stat' | 'Update' | 'List' | 'Usage' | 'Cleanup';

export interface SnapshotsServiceOptions {
  /**
   * Runs each call as the daemon's in-flight work (its RequestTracker), so that a stop waits for
   * it and refuses calls once it began: a rejection (DAEMON_STOPPING) is the call's answer.
   * Default: calls run as they come.
   */
  track?: <T>(method: SnapshotsMethod, fn: () => Promise<T>) => Promise<T>;
}

/**
 * The grpc-js implementation of containerd.services.snapshots.v1.Snapshots over a
 * {@link Snapshotter}: decoding, status codes and a debug line per call; nothing else.
 */
export function snapshotsService(snapshotter: Snapshotter, logger: Logger, options: SnapshotsServiceOptions = {}): UntypedServiceImplementation {
  const track = options.track ?? (<T>(_method: SnapshotsMethod, fn: () => Promise<T>) => fn());
  const unary =
    <Req, Res>(method: SnapshotsMethod, fn: (req: Req) => Promise<Res> | Res) =>
    (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      const t0 = performance.now();
      track(method, async () => fn(call.request)).then(
        (res) => {
          logger.debug({ method, request: call.request, ms: Math.round(performance.now() - t0) }, 'snapshotter call');
          callback(null, res);
        },
        (err: unknown) => {
          const e = toGrpc(err);
          // NOT_FOUND on Stat is how containerd asks "do you have it?": not worth a warning.
          const level = e.code === status.NOT_FOUND || e.code === status.ALREADY_EXISTS ? 'debug' : 'warn';
          logger[level]({ method, request: call.request, err: e.details }, 'snapshotter call failed');
          callback({ ...e, name: 'SnapshotterError', message: e.details });
        },
      );
    };

  return {
    Prepare: unary<KeyRequest, unknown>('Prepare', async (req) => {
      const r = await snapshotter.prepare(req.key, req.parent ?? '', req.labels ?? {});
      // The layer is committed under the target name: containerd finds it there and skips it.
      if ('committed' in r) throw new HostpullError('SNAPSHOT_EXISTS', `target snapshot ${r.committed} is committed`);
      return { mounts: wireMounts(r.mounts) };
    }),
    View: unary<KeyRequest, unknown>('View', async (req) => ({ mounts: wireMounts(await snapshotter.view(req.key, req.parent ?? '', req.labels ?? {})) })),
    Mounts: unary<KeyRequest, unknown>('Mounts', async (req) => ({ mounts: wireMounts(await snapshotter.mounts(req.key)) })),
    Commit: unary<{ name: string; key: string; labels?: Labels }, unknown>('Commit', async (req) => {
      await snapshotter.commit(req.name, req.key, req.labels ?? {});
      return {};
    }),
    Remove: unary<KeyRequest, unknown>('Remove', async (req) => {
      await snapshotter.remove(req.key);
      return {};
    }),
    Stat: unary<KeyRequest, unknown>('Stat', (req) => ({ info: wireInfo(snapshotter.stat(req.key)) })),
    Update: unary<{ info?: { name: string; labels?: Labels }; update_mask?: { paths?: string[] } }, unknown>('Update', (req) => ({
      info: wireInfo(snapshotter.update(req.info?.name ?? '', req.info?.labels ?? {}, req.update_mask?.paths ?? [])),
    })),
    List: (call: ServerWritableStream<{ filters?: string[] }, unknown>): void => {
      track('List', async () => snapshotter.list(call.request.filters ?? [])).then(
        (all) => {
          for (let i = 0; i < all.length; i += LIST_BATCH) call.write({ info: all.slice(i, i + LIST_BATCH).map(wireInfo) });
          call.end();
        },
        (err: unknown) => {
          const e = toGrpc(err);
          logger.warn({ method: 'List', filters: call.request.filters, err: e.details }, 'snapshotter call failed');
          call.destroy(Object.assign(new Error(e.details), e));
        },
      );
    },
    Usage: unary<KeyRequest, unknown>('Usage', (req) => snapshotter.usage(req.key)),
    Cleanup: unary<unknown, unknown>('Cleanup', async () => {
      await snapshotter.cleanup();
      return {};
    }),
  };
}
