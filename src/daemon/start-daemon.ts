import { resolve as resolvePath } from 'node:path';
import { reconcileContainers } from '../container/index.js';
import { DEFAULT_NAMESPACE } from '../defaults.js';
import type { Logger } from '../log.js';
import { resolveReference } from '../oci/index.js';
import { RegistryClient, type RegistryClientOptions } from '../registry/index.js';
import { cleanupStaleLazyMounts, LazyLayers, pruneSpanCaches, type LazyLayersOptions } from '../lazy/index.js';
import { ContentStore, type UnpackLimitOptions } from '../store/index.js';
import { ApplyWorkers } from '../unpack/index.js';
import { createDaemonHandler } from './handler.js';
import { LocalHostApi } from './host-api.js';
import { listenUnixHttp, type Listener } from './listener.js';
import { DaemonMetrics } from './metrics.js';
import { SystemdNotifier } from './notify.js';
import { RequestTracker } from './request-tracker.js';
import { rootfsApi } from './rootfs-api.js';
import { prepareSocketPath } from './socket-file.js';
import { startSnapshotterListener } from './snapshotter-listener.js';

export interface DaemonOptions {
  /** Store root. */
  root: string;
  /** Bounds on unpacks into the store (expansion ratio, disk reserve). Default: the store's defaults. */
  unpackLimits?: UnpackLimitOptions;
  /** Flush each unpacked layer to disk before recording it (`--sync-fs`). Default false. */
  syncFs?: boolean;
  /** Unix socket to listen on. */
  socketPath: string;
  /** Also serve containerd's snapshots.v1 service on this unix socket. Default: off. */
  snapshotterSocket?: string | undefined;
  /** The snapshotter serves layers that have a table of contents lazily on CRI pulls (FUSE views, completed in the background). Default false. */
  snapshotterLazy?: boolean;
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
  /** Lazy rootfs and lazy snapshots: span fetch bounds and the background pull's delay (see LazyLayersOptions). */
  lazy?: Pick<LazyLayersOptions, 'fetch' | 'backgroundDelayMs'>;
  /** How long after preparing a lazy rootfs its reads are learned as the image's prefetch list. Default 30 s. */
  lazyLearnMs?: number;
  /** Registry headers/idle timeouts and retry budget. Default: the RegistryClient's (30 s, 30 s, 60 s). */
  registry?: Pick<RegistryClientOptions, 'headersTimeoutMs' | 'bodyTimeoutMs' | 'retryBudgetMs'>;
  logger: Logger;
  /** Byte budget for blobs + unpacked layers: GC runs every `gcIntervalMs` and after pulls. Default: none. */
  maxStoreSize?: number | undefined;
  /** Keep layer blobs after unpacking them (a node that serves its layers to others). Default false. */
  keepBlobs?: boolean;
  /** Period of the budget GC. Default 10 minutes. */
  gcIntervalMs?: number;
  /** The budget GC keeps anything used more recently than this (GcPolicy.graceMs). Default 10 minutes. */
  gcGraceMs?: number;
  /**
   * At stop, how long requests in flight may take to finish before they are aborted (a pull is
   * parked, a rootfs not yet answered is rolled back; a removal always finishes). Default 30 s.
   */
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
 * leftovers), reconciles containers/ with the mount records, listens on the unix socket, tells
 * systemd READY=1 and runs the budget GC.
 *
 * Stop (SIGTERM, SIGINT or stop()) is a transaction boundary, in this order:
 *  1. STOPPING=1; every listener stops accepting; requests on open connections get 503, and
 *     snapshotter calls UNAVAILABLE (DAEMON_STOPPING);
 *  2. requests in flight, on either socket, get `stopTimeoutMs` to finish; then pulls, rootfs not
 *     yet answered and snapshotter calls (a layer fetch for containerd) are aborted and roll back
 *     completely (a partial download stays in ingest/ and resumes; a rootfs is unmounted and
 *     removed; containerd is answered UNAVAILABLE), and removals and commits run to their end;
 *  3. the listeners close their connections;
 *  4. the registry client and, last, the store are closed.
 * Mounts handed out are never touched at stop: a running container keeps its rootfs across a
 * daemon restart. Every listener runs its requests through the one RequestTracker.
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
  const signals = new StopSignals(options.handleSignals !== false);
  let store: ContentStore;
  try {
    await notifier.notify({ STATUS: 'opening the store' });
    store = await ContentStore.open(root, { logger, ...(options.unpackLimits ? { unpackLimits: options.unpackLimits } : {}), syncFs: options.syncFs ?? false });
  } catch (err) {
    signals.release();
    throw err;
  }
  // node:http, not undici: nothing to load or compile at the first pull (node-http-dispatcher.ts),
  // and a pull sends a few requests, as the CLI's do.
  const client = new RegistryClient({ insecureRegistries: options.insecureRegistries ?? [], logger, httpClient: 'node', ...options.registry });
  const tracker = new RequestTracker();
  const metrics = new DaemonMetrics(store, { activePulls: () => tracker.count('pull') });
  // Unpack workers live as long as the daemon: a pull after the first finds them started and their
  // hot code already compiled (idle, they do not keep the process alive). One starts now, so that
  // every layer, small ones included, is unpacked beside the thread that receives it
  // (pull/unpack-placement.ts).
  const workers = new ApplyWorkers();
  workers.warm(1);
  const keepBlobs = options.keepBlobs ?? false;
  const api = new LocalHostApi({ store, client, logger, workers, keepBlobs });
  // Lazy layers of rootfs prepared with `lazy` and of lazy snapshots: one FUSE helper, started at the first use.
  const lazy = new LazyLayers({ store, client, logger, insecureRegistries: options.insecureRegistries ?? [], ...(options.lazy ?? {}) });
  const listeners: Listener[] = [];
  let gcTimer: NodeJS.Timeout | undefined;
  const closeResources = async () => {
    if (gcTimer) clearInterval(gcTimer);
    signals.release();
    await lazy.close().catch((err: unknown) => logger.warn({ err }, 'closing lazy layers failed'));
    await workers.close().catch(() => undefined);
    await client.close().catch(() => undefined);
    store.close();
  };

  try {
    if (store.reconciled) logger.info({ reconcile: store.reconciled }, 'store reconciled');
    await notifier.notify({ STATUS: 'reconciling containers' });
    const containers = await reconcileContainers(store);
    if (Object.values(containers).some((list) => list.length > 0)) logger.info({ containers }, 'containers reconciled');
    // After the rootfs that used them: FUSE mounts of a lazy helper that died with an earlier daemon.
    await cleanupStaleLazyMounts(store.layout, logger);
    await pruneSpanCaches(store);

    const runGc = budgetGc({ api, tracker, logger, maxStoreSize: options.maxStoreSize, graceMs: options.gcGraceMs });

    const handler = createDaemonHandler({
      api,
      metrics,
      tracker,
      logger,
      root,
      resolve: (input) => resolveReference(input, { server: options.server, namespace: options.namespace ?? DEFAULT_NAMESPACE }),
      onPullDone: (r) => {
        if (!r.upToDate) runGc('after pull');
      },
      maxStoreSize: options.maxStoreSize,
      ...(options.version ? { version: options.version } : {}),
      containers: rootfsApi({ store, client, logger, workers, keepBlobs }, { layers: lazy, ...(options.lazyLearnMs !== undefined ? { learnMs: options.lazyLearnMs } : {}) }),
    });
    // containerd's snapshotter first: once the HTTP socket answers (what clients and tests wait
    // for), the snapshotter socket does too.
    if (options.snapshotterSocket) {
      listeners.push(await startSnapshotterListener({ socketPath: resolvePath(options.snapshotterSocket), store, client, logger, tracker, workers, keepBlobs, ...(options.snapshotterLazy ? { lazy } : {}) }));
    }
    listeners.push(await listenUnixHttp({ path: socketPath, handler, mode: options.socketMode ?? 0o660, group: options.socketGroup }));
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
        const inFlight = tracker.counts();
        logger.info({ reason, inFlight: tracker.count(), activePulls: tracker.count('pull'), snapshotterCalls: tracker.count('snapshot'), byKind: inFlight }, 'daemon stopping');
        await notifier.notify({ STOPPING: 1, STATUS: `stopping: ${reason}` });
        for (const l of listeners) l.stopAccepting();
        const t0 = performance.now();
        const aborted = await tracker.drain(options.stopTimeoutMs ?? 30_000);
        if (Object.keys(aborted).length > 0) {
          logger.warn({ aborted }, 'requests aborted at stop: partial downloads resume on the next pull, rootfs not yet answered were removed, snapshotter calls were answered UNAVAILABLE');
        }
        logger.info({ inFlight, aborted, ms: Math.round(performance.now() - t0) }, 'requests drained');
        for (const l of listeners) await l.close();
        await closeResources();
        logger.info('daemon stopped');
        resolveStopped();
      })();
      return stopping;
    };
    logger.info({ socket: socketPath, root, maxStoreSize: options.maxStoreSize ?? null }, 'daemon listening');
    await notifier.notify({ READY: 1, STATUS: `serving on ${socketPath}`, MAINPID: process.pid });
    signals.onStop(stop);
    return { socketPath, stop, stopped };
  } catch (err) {
    for (const l of listeners) await l.close().catch(() => undefined);
    await closeResources();
    throw err;
  }
}

/**
 * SIGTERM and SIGINT stop the daemon. Caught from the start of start-up (a unit still starting
 * gets SIGTERM from systemd like a running one); one that arrives before the daemon serves is
 * remembered and acted on as soon as there is a stop to call.
 */
class StopSignals {
  readonly #handlers: Array<[NodeJS.Signals, () => void]> = [];
  #early: NodeJS.Signals | undefined;
  #stop: ((reason: string) => Promise<void>) | undefined;

  constructor(install: boolean) {
    if (!install) return;
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      const fn = () => {
        if (this.#stop) void this.#stop(sig);
        else this.#early ??= sig;
      };
      process.on(sig, fn);
      this.#handlers.push([sig, fn]);
    }
  }

  /** From now on a signal calls `stop`; one that came earlier does so at once. */
  onStop(stop: (reason: string) => Promise<void>): void {
    this.#stop = stop;
    if (this.#early) void stop(`${this.#early} while starting`);
  }

  release(): void {
    for (const [sig, fn] of this.#handlers) process.off(sig, fn);
  }
}

/**
 * GC under the size budget, single-flight: a burst of pulls runs it once more at most. It is a
 * tracked request like any other, so a stop waits for it (or aborts it) before closing the store.
 * Does nothing without a budget.
 */
function budgetGc(deps: { api: LocalHostApi; tracker: RequestTracker; logger: Logger; maxStoreSize: number | undefined; graceMs: number | undefined }): (why: string) => void {
  const { api, tracker, logger, maxStoreSize } = deps;
  let running = false;
  let again = false;
  const run = (why: string): void => {
    if (maxStoreSize === undefined || tracker.stopping) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    tracker
      .run('gc', (signal) => api.gc({ maxStoreSize, signal, ...(deps.graceMs !== undefined ? { graceMs: deps.graceMs } : {}) }))
      .then((r) => {
        if (r.layersRemoved + r.blobsRemoved + r.partialsRemoved > 0 || r.overBudget) logger.info({ why, gc: r }, 'gc under the size budget');
      })
      .catch((err: unknown) => {
        if (!tracker.stopping) logger.warn({ err }, 'gc failed');
      })
      .finally(() => {
        running = false;
        if (again) {
          again = false;
          run('queued');
        }
      });
  };
  return run;
}
