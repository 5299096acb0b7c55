import { existsSync } from 'node:fs';
import { chmod, chown, unlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { resolve as resolvePath } from 'node:path';
import { cleanStaleMounts } from '../gc/stale-mounts.js';
import type { Logger } from '../log.js';
import { resolveReference } from '../oci/reference.js';
import { RegistryClient } from '../registry/index.js';
import { unmountAllUnder } from '../rootfs/mount.js';
import { containerDirs } from '../container/container-dirs.js';
import { prepareContainer, removeContainer } from '../container/prepare-container.js';
import { HostpullError } from '../errors.js';
import { ContentStore } from '../store/content-store.js';
import { ApplyWorkers } from '../unpack/index.js';
import { createDaemonHandler } from './handler.js';
import { LocalHostApi } from './host-api.js';
import { DaemonMetrics } from './metrics.js';
import { SystemdNotifier } from './notify.js';
import { PullTracker } from './pull-tracker.js';
import { prepareSocketPath } from './socket-file.js';

export interface DaemonOptions {
  /** Store root. */
  root: string;
  /** Unix socket to listen on. */
  socketPath: string;
  /** Socket file mode. Default 0o660 (root and the socket's group). */
  socketMode?: number;
  /** Group that owns the socket, so its members may use the daemon (mode 0660). Default: ours. */
  socketGroup?: number | undefined;
  /** Server that short references resolve against. Default: none (full references only). */
  server?: string | undefined;
  /** Repository of composites on the server. Default 'hostpull'. */
  namespace?: string;
  /** Plain-http registries besides loopback. Default none. */
  insecureRegistries?: string[];
  logger: Logger;
  /** Byte budget for blobs + unpacked layers: GC runs every `gcIntervalMs` and after pulls. Default: none. */
  maxStoreSize?: number | undefined;
  /** Keep layer blobs after unpacking them (a node that serves its layers to others). Default false. */
  keepBlobs?: boolean;
  /** Period of the budget GC. Default 10 minutes. */
  gcIntervalMs?: number;
  /** The budget GC keeps anything used more recently than this (GcPolicy.graceMs). Default 10 minutes. */
  gcGraceMs?: number;
  /** At stop, how long in-flight pulls may take to finish before they are aborted. Default 30 s. */
  stopTimeoutMs?: number;
  /** Install SIGTERM/SIGINT handlers that stop the daemon. Default true. */
  handleSignals?: boolean;
  /** Systemd notification; default one built from $NOTIFY_SOCKET. */
  notifier?: SystemdNotifier;
  version?: string;
}

export interface RunningDaemon {
  socketPath: string;
  /** Stops gracefully (idempotent); resolves when everything is closed. */
  stop(reason?: string): Promise<void>;
  /** Resolves when the daemon has stopped, for whatever reason. */
  readonly stopped: Promise<void>;
}

/**
 * The composition root of `hostpull daemon`: opens the store (reconciling ingest and staging
 * leftovers), cleans rootfs of owners that are gone, listens on the unix socket, tells systemd
 * READY=1, runs the budget GC, and on SIGTERM stops gracefully: STOPPING=1, no new connections
 * or pulls, in-flight pulls get `stopTimeoutMs` to finish and are then aborted (their partial
 * downloads stay in ingest/ and resume on the next pull). Mounts are never touched at stop: a
 * running container keeps its rootfs across a daemon restart.
 */
export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const logger = options.logger;
  const notifier = options.notifier ?? new SystemdNotifier({ logger });
  const root = resolvePath(options.root);
  const socketPath = resolvePath(options.socketPath);
  // First: a second daemon on a live socket must fail before it touches the store or mounts.
  await prepareSocketPath(socketPath);
  // Signal handlers from here on: a SIGTERM while the store opens (reconcile can take a while) or
  // the socket binds, as systemd sends to a unit still starting, must not kill us with the
  // default action. Until we serve, it is remembered and acted on once stop() exists.
  const signalHandlers: Array<[NodeJS.Signals, () => void]> = [];
  let earlySignal: NodeJS.Signals | undefined;
  let onSignal = (sig: NodeJS.Signals) => void (earlySignal ??= sig);
  if (options.handleSignals !== false) {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      const fn = () => onSignal(sig);
      process.on(sig, fn);
      signalHandlers.push([sig, fn]);
    }
  }
  const removeSignalHandlers = () => {
    for (const [sig, fn] of signalHandlers) process.off(sig, fn);
  };
  let store: ContentStore;
  try {
    await notifier.notify({ STATUS: 'opening the store' });
    store = await ContentStore.open(root, { logger });
  } catch (err) {
    removeSignalHandlers();
    throw err;
  }
  const client = new RegistryClient({ insecureRegistries: options.insecureRegistries ?? [], logger });
  const tracker = new PullTracker();
  const metrics = new DaemonMetrics(store, { activePulls: () => tracker.size });
  // Unpack workers live as long as the daemon: a pull after the first finds them started and their
  // hot code already compiled (idle, they do not keep the process alive).
  const workers = new ApplyWorkers();
  const keepBlobs = options.keepBlobs ?? false;
  const api = new LocalHostApi({ store, client, logger, workers, keepBlobs });
  let server: Server | undefined;
  let gcTimer: NodeJS.Timeout | undefined;
  const closeResources = async () => {
    if (gcTimer) clearInterval(gcTimer);
    removeSignalHandlers();
    await workers.close().catch(() => undefined);
    await client.close().catch(() => undefined);
    store.close();
  };

  try {
    if (store.reconciled) logger.info({ reconcile: store.reconciled }, 'store reconciled');
    const stale = await cleanStaleMounts(store, { unmountAllUnder: (dir) => unmountAllUnder(dir) });
    if (stale.released.length > 0 || stale.failed.length > 0) logger.info({ stale }, 'stale rootfs cleaned');

    // Budget GC: single-flight, so a burst of pulls runs it once more at most.
    let gcRunning: Promise<void> | undefined;
    let gcAgain = false;
    const runGc = (why: string) => {
      if (options.maxStoreSize === undefined) return;
      if (gcRunning) {
        gcAgain = true;
        return;
      }
      gcRunning = api
        .gc({ maxStoreSize: options.maxStoreSize, ...(options.gcGraceMs !== undefined ? { graceMs: options.gcGraceMs } : {}) })
        .then((r) => {
          if (r.layersRemoved + r.blobsRemoved > 0 || r.overBudget) logger.info({ why, gc: r }, 'gc under the size budget');
        })
        .catch((err: unknown) => logger.warn({ err }, 'gc failed'))
        .finally(() => {
          gcRunning = undefined;
          if (gcAgain) {
            gcAgain = false;
            runGc('queued');
          }
        });
    };

    const handler = createDaemonHandler({
      api,
      metrics,
      tracker,
      logger,
      root,
      resolve: (input) => resolveReference(input, { server: options.server, namespace: options.namespace ?? 'hostpull' }),
      onPullDone: (r) => {
        if (!r.upToDate) runGc('after pull');
      },
      maxStoreSize: options.maxStoreSize,
      ...(options.version ? { version: options.version } : {}),
      containers: {
        async prepare(ref, body) {
          const c = await prepareContainer({ store, client, logger, keepBlobs }, ref, {
            // Prepared for someone else (a runtime, an orchestrator): it outlives this daemon.
            ownedByProcess: false,
            allowOverlap: body.allowOverlap ?? false,
            process: { ...(body.args ? { args: body.args } : {}), ...(body.env ? { env: body.env } : {}) },
          });
          return { id: c.id, rootfs: c.rootfs, bundle: c.bundle, reference: c.pull.reference, manifestDigest: c.pull.manifestDigest };
        },
        async remove(id) {
          if (!existsSync(containerDirs(store.layout, id).bundle)) throw new HostpullError('NOT_FOUND', `no prepared rootfs ${id} in ${store.layout.containersDir}`);
          await removeContainer(store, id);
        },
      },
    });
    const srv = createServer(handler);
    server = srv;
    // umask while binding, so the socket never exists with wider permissions than socketMode.
    const mode = options.socketMode ?? 0o660;
    const previous = process.umask(0o777 & ~mode);
    try {
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(socketPath, () => {
          srv.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(previous);
    }
    await chmod(socketPath, mode);
    if (options.socketGroup !== undefined) await chown(socketPath, process.getuid?.() ?? 0, options.socketGroup);
    if (options.maxStoreSize !== undefined) {
      gcTimer = setInterval(() => runGc('interval'), options.gcIntervalMs ?? 10 * 60_000);
      gcTimer.unref();
      runGc('start');
    }
    let resolveStopped!: () => void;
    const stopped = new Promise<void>((r) => (resolveStopped = r));
    let stopping: Promise<void> | undefined;
    const stop = (reason = 'stop requested'): Promise<void> => {
      stopping ??= (async () => {
        logger.info({ reason, activePulls: tracker.size }, 'daemon stopping');
        await notifier.notify({ STOPPING: 1, STATUS: `stopping: ${reason}` });
        const closed = new Promise<void>((r) => srv.close(() => r()));
        srv.closeIdleConnections();
        const aborted = await tracker.drain(options.stopTimeoutMs ?? 30_000);
        if (aborted > 0) logger.warn({ aborted }, 'in-flight pulls aborted at stop; their partial downloads resume on the next pull');
        await gcRunning;
        // Streams of aborted pulls have ended by now; what is left are idle keep-alive sockets.
        srv.closeAllConnections();
        await closed;
        await unlink(socketPath).catch(() => undefined);
        await closeResources();
        logger.info('daemon stopped');
        resolveStopped();
      })();
      return stopping;
    };
    onSignal = (sig) => void stop(sig);
    logger.info({ socket: socketPath, root, maxStoreSize: options.maxStoreSize ?? null }, 'daemon listening');
    await notifier.notify({ READY: 1, STATUS: `serving on ${socketPath}`, MAINPID: process.pid });
    if (earlySignal) void stop(`${earlySignal} while starting`);
    return { socketPath, stop, stopped };
  } catch (err) {
    server?.close();
    await closeResources();
    throw err;
  }
}
