import { Server, ServerCredentials } from '@grpc/grpc-js';
import { chmod, unlink } from 'node:fs/promises';
import type { LazyLayers } from '../lazy/index.js';
import type { Logger } from '../log.js';
import type { RegistryClient } from '../registry/index.js';
import { LazySnapshotLayers, snapshotsService, loadProto, serviceOf, SNAPSHOTS_PROTO, SNAPSHOTS_SERVICE, RemoteLayers, Snapshotter } from '../snapshotter/index.js';
import type { ContentStore } from '../store/index.js';
import type { ApplyWorkers } from '../unpack/index.js';
import type { Listener } from './listener.js';
import type { RequestTracker } from './request-tracker.js';
import { prepareSocketPath } from './socket-file.js';

export interface SnapshotterListenerOptions {
  socketPath: string;
  /** The daemon's store, registry client (credentials, registry settings) and logger. */
  store: ContentStore;
  client: RegistryClient;
  logger: Logger;
  /**
   * The daemon's in-flight requests: each call is one (kind 'snapshot'), and so is each layer
   * fetched ahead ('layer-fetch'), so the daemon's stop drains them with its HTTP requests.
   */
  tracker: RequestTracker;
  /** The daemon's unpack workers, and whether its pulls keep layer blobs. */
  workers?: ApplyWorkers;
  keepBlobs?: boolean;
  /**
   * Serve layers with a table of contents lazily on CRI pulls (`--snapshotter-lazy`), through the
   * daemon's lazy layers (one FUSE helper with the rootfs API). Default: off, layers are fetched whole.
   */
  lazy?: LazyLayers;
}

export interface SnapshotterListener extends Listener {
  socketPath: string;
}

/** How long the connections get to close after the drain (answers still being written), before they are cut. */
const CLOSE_GRACE_MS = 5_000;

/**
 * The containerd snapshotter inside the daemon: containerd's snapshots.v1 service on its own unix
 * socket (mode 0600: containerd runs as root), over the daemon's store and registry client, so
 * pulls, GC and metrics see its layers. A socket left by a killed daemon is replaced; a live one
 * is an error (prepareSocketPath). Kept apart from startDaemon so start-up and shutdown only call
 * start, stopAccepting and close.
 *
 * At the daemon's stop its calls are drained like HTTP requests: stopAccepting() shuts the server
 * gracefully (GOAWAY: containerd's next call meets UNAVAILABLE) while the calls in flight keep
 * running, a layer fetch included, until they end or the stop timeout fires the tracker's signal
 * (a fetch cut short answers DAEMON_STOPPING, gRPC UNAVAILABLE); a call that slips in meanwhile is
 * refused with DAEMON_STOPPING. close() comes after the drain, so the store is closed only once
 * no call, commit or fetch touches it.
 */
export async function startSnapshotterListener(options: SnapshotterListenerOptions): Promise<SnapshotterListener> {
  const { socketPath, store, client, logger, workers, keepBlobs, tracker } = options;
  await prepareSocketPath(socketPath);
  const lazy = options.lazy ? new LazySnapshotLayers(options.lazy, logger) : undefined;
  const remote = new RemoteLayers(
    { store, client, logger, ...(workers ? { workers } : {}), ...(keepBlobs ? { keepBlobs } : {}) },
    { signal: tracker.signal, background: (work) => tracker.run('layer-fetch', work), ...(lazy ? { lazy } : {}) },
  );
  const snapshotter = new Snapshotter({ store, logger, remote, ...(lazy ? { lazy } : {}) });
  const removed = await snapshotter.cleanup();
  if (removed > 0) logger.info({ removed }, 'snapshotter: removed directories no snapshot owns');
  // Layers a stopped daemon was still completing lazily: their FUSE views went with it (the stale
  // mounts are gone, cleanupStaleLazyMounts), so they come back now, in the background; a mount
  // asked for meanwhile makes its own layer present first.
  void tracker
    .run('layer-fetch', () => snapshotter.resumeArrivingLayers())
    .then((n) => n > 0 && logger.info({ layers: n, lazy: lazy !== undefined }, 'snapshotter: layers still arriving when the daemon stopped are being made present again'))
    .catch((err: unknown) => logger.warn({ err }, 'snapshotter: resuming the layers still arriving failed; each is made present when mounted'));
  const server = new Server();
  // Commit and Remove change rows and directories together: they are waited for, never counted as aborted.
  const track = <T>(method: string, fn: () => Promise<T>) => tracker.run('snapshot', fn, { abortable: method !== 'Commit' && method !== 'Remove' });
  server.addService(serviceOf(loadProto(SNAPSHOTS_PROTO), SNAPSHOTS_SERVICE).service, snapshotsService(snapshotter, logger, { track }));
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix:${socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  } finally {
    process.umask(previous);
  }
  await chmod(socketPath, 0o600);
  logger.info({ socket: socketPath }, 'containerd snapshotter listening');
  let shutdown: Promise<void> | undefined;
  const stopAccepting = () => {
    shutdown ??= new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  };
  let closed: Promise<void> | undefined;
  return {
    name: `containerd snapshotter on ${socketPath}`,
    socketPath,
    stopAccepting,
    close: () =>
      (closed ??= (async () => {
        stopAccepting();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, CLOSE_GRACE_MS);
          void shutdown!.then(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        await unlink(socketPath).catch(() => undefined);
      })()),
  };
}
