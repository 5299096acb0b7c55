import type { LogLevel } from '../log.js';
import type { ImageReference } from '../oci/index.js';
import type { PullEvent, PullPolicy, PullResult } from '../pull/index.js';
import { checkRootless, runInUserNamespace } from '../rootless/index.js';
import { detectRuntime, runContainer, type BindMount, type NetworkMode, type RunResult, type RuntimeInfo } from '../runtime/index.js';
import { runtimeStateDir } from './container-dirs.js';
import { prepareContainer, stageContainer, type HostDeps, type PrepareContainerOptions } from './prepare-container.js';
import { cleanupLeftoverContainers, removeContainer } from './remove-container.js';
import { keepContainer } from './keep-container.js';
import { learnPrefetch } from './learn-prefetch.js';
import { checkNameFree } from './container-names.js';
import { recordContainerRuntime } from './list-containers.js';
import { cleanupStaleLazyMounts, LazyLayers, pruneSpanCaches, type FetchPolicy, type FuseHelper } from '../lazy/index.js';
import type { Digest } from '../oci/index.js';

export interface RunImageOptions {
  /** `-- CMD…`: replaces the image's Cmd. */
  args?: string[];
  entrypoint?: string[];
  /** `-e KEY=VAL` */
  env?: string[];
  user?: string;
  cwd?: string;
  tty?: boolean;
  /** `-v HOST:CONTAINER[:ro]` (see parseVolumes). */
  mounts?: BindMount[];
  /** `--network`; default `none` (loopback only). */
  network?: NetworkMode;
  /** `--hostname`; default the container id's first 12 characters. */
  hostname?: string;
  /** `--name`: the container can be named in `hostpull exec` and is shown by `hostpull ps`. */
  name?: string;
  /** `--read-only`: the rootfs read-only, with tmpfs on /tmp, /var/tmp and /run. */
  readonlyRootfs?: boolean;
  /** `runc` or `crun`; default: the first that works here. */
  runtime?: string;
  /**
   * Keep the container after exit, as podman keeps an exited container: its directory (upper
   * layer, bundle) stays, unmounted, until `hostpull rm`; `ps` lists it as exited; its layers
   * stay held from GC and its `--name` taken (see keepContainer). Default false: removed.
   */
  keep?: boolean;
  allowOverlap?: boolean;
  concurrency?: number;
  /** When to ask the registry (see PullPolicy). Default `always`. */
  pullPolicy?: PullPolicy;
  /** `inherit` (default) or `pipe` (output captured in the result). */
  stdio?: 'inherit' | 'pipe';
  /** Aborts the pull and preparation; once the container runs, signals are forwarded to it instead. */
  signal?: AbortSignal;
  onPullEvent?: (e: PullEvent) => void;
  /**
   * Called once the runtime is chosen, before the container starts, when the signals this process
   * gets are the container's (forwarded, or ending its start): a caller's own SIGINT/SIGTERM
   * handlers go then, not before.
   */
  onRuntime?: (runtime: RuntimeInfo) => void;
  /**
   * Run without root: pull and unpack as this user, then mount and run inside a private user and
   * mount namespace (src/rootless). Default: `process.getuid() !== 0`.
   */
  rootless?: boolean;
  /** `unshare` program for rootless runs. Default `unshare` from $PATH. */
  unshare?: string;
  /**
   * Start before the layers have arrived: mount each layer that has a TOC lazily (FUSE), complete
   * it in the background, and wait for that after the container exits (so the next run uses the
   * unpacked layer). Default: pull every layer whole first.
   */
  lazy?: LazyRunOptions;
}

export interface LazyRunOptions {
  /** Hosts the span fetcher may reach over plain http besides loopback. Default []. */
  insecureRegistries?: string[];
  /** Bound on a lazy read's fetch (see SpanFetcher). Default 3 attempts of 10 s. */
  fetch?: Partial<FetchPolicy>;
  /** Wait for the background pulls before returning. Default true. */
  waitForCompletion?: boolean;
  /** Stops that wait (a SIGINT or SIGTERM after the container exited): the verified spans stay cached for the next run. */
  stopWaiting?: AbortSignal;
  /** Delay before a layer's background pull starts (see LazyLayersOptions). Default 2000 ms. */
  backgroundDelayMs?: number;
  /** A FUSE helper started already, which the run then owns (see LazyLayersOptions.helper). */
  helper?: FuseHelper;
}

export interface RunImageResult extends RunResult {
  containerId: string;
  runtime: RuntimeInfo;
  pull: PullResult;
  /** Blob digests of the layers this run mounted lazily. */
  lazy?: Digest[];
}

/**
 * `hostpull run`: prepare the container (pull, overlay with a writable upper, bundle), run it in
 * the foreground, and remove the mounts and directories on every exit path; with `keep`, unmount
 * and keep the directory instead (keepContainer).
 */
export async function runImage(deps: HostDeps, ref: ImageReference, options: RunImageOptions = {}): Promise<RunImageResult> {
  const { store, logger } = deps;
  const rootless = options.rootless ?? process.getuid?.() !== 0;
  // Like the runtime probe below: a user who cannot have the namespaces learns it before a download.
  if (rootless) await checkRootless({ ...(options.unshare ? { unshare: options.unshare } : {}), ...(options.signal ? { signal: options.signal } : {}) });
  const lazy = options.lazy
    ? new LazyLayers({
        store,
        client: deps.client,
        logger,
        ...(options.lazy.insecureRegistries ? { insecureRegistries: options.lazy.insecureRegistries } : {}),
        ...(options.lazy.fetch ? { fetch: options.lazy.fetch } : {}),
        ...(options.lazy.backgroundDelayMs !== undefined ? { backgroundDelayMs: options.lazy.backgroundDelayMs } : {}),
        ...(options.lazy.helper ? { helper: options.lazy.helper } : {}),
      })
    : undefined;
  // The FUSE helper (a node process, ~0.2 s to load) starts first, so its start
  // overlaps the cleanups, the runtime probe and the pull; its mounts are never a leftover to them.
  if (lazy && !rootless) lazy.prestart();
  try {
    await cleanupLeftoverContainers(store, logger);
    // After the containers (whose overlays use them): lazy mounts whose helper is gone.
    await cleanupStaleLazyMounts(store.layout, logger);
    await pruneSpanCaches(store);
    const stateRoot = runtimeStateDir(store.layout);
    // Probe before pulling: a host without a working runtime fails in a second, not after a
    // download. A lazy start downloads only tables of contents before the container runs, so its
    // probe runs beside the preparation instead (0.2-0.4 s of a fresh node's first output).
    const probing = detectRuntime(options.runtime, { stateRoot, logger });
    if (lazy) probing.catch(() => undefined); // awaited once the rootfs is ready
    else await probing;
    // A name in use fails before anything is pulled (it is claimed for good once the mount is recorded).
    if (options.name !== undefined) await checkNameFree(store, options.name);
    const prepareOptions: PrepareContainerOptions = {
      process: {
        ...(options.args?.length ? { args: options.args } : {}),
        ...(options.entrypoint ? { entrypoint: options.entrypoint } : {}),
        ...(options.env ? { env: options.env } : {}),
        ...(options.user ? { user: options.user } : {}),
        ...(options.cwd ? { cwd: options.cwd } : {}),
        ...(options.mounts?.length ? { mounts: options.mounts } : {}),
        ...(options.network ? { network: options.network } : {}),
        ...(options.hostname ? { hostname: options.hostname } : {}),
        ...(options.readonlyRootfs ? { readonlyRootfs: true } : {}),
        ...(options.tty ? { tty: true, consoleSize: { height: process.stdout.rows ?? 24, width: process.stdout.columns ?? 80 } } : {}),
      },
      allowOverlap: options.allowOverlap ?? false,
      ...(options.keep ? { keep: true } : {}),
      ...(options.name !== undefined ? { name: options.name } : {}),
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      ...(options.pullPolicy ? { pullPolicy: options.pullPolicy } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onPullEvent ? { onPullEvent: options.onPullEvent } : {}),
    };
    if (rootless) return await runRootless(deps, ref, await probing, stateRoot, { ...prepareOptions, ...(lazy ? { lazy } : {}) }, options);
    const container = await prepareContainer(deps, ref, { ...prepareOptions, ...(lazy ? { lazy } : {}) }).catch(async (err: unknown) => {
      await probing.catch(() => undefined); // a probe still running cleans up after itself first
      throw err;
    });
    let exitCode: number | undefined;
    try {
      const runtime = await probing;
      await recordContainerRuntime(container.bundle, runtime);
      // No await from here into runContainer: a signal is either an abort seen here, or one the
      // container's forwarding takes (the caller drops its own handlers in onRuntime, only then).
      options.signal?.throwIfAborted();
      const result = await runContainer({
        runtime,
        bundleDir: container.bundle,
        containerId: container.id,
        stateRoot,
        tty: options.tty ?? false,
        stdio: options.stdio ?? 'inherit',
        // The runtime's state is deleted whether or not the container is kept: a kept container
        // is its directory, not a runtime container to start again.
        keep: false,
        // The container stays ours until removeContainer or keepContainer below is done with it.
        keepOwnerFile: true,
        onSignalsTaken: () => options.onRuntime?.(runtime),
        logger,
      });
      exitCode = result.exitCode;
      if (lazy) await learnPrefetch(deps, lazy, ref, container.pull.manifestDigest, container.lazyMounts);
      return { ...result, containerId: container.id, runtime, pull: container.pull, lazy: container.lazyMounts.map((m) => m.blobDigest) };
    } finally {
      // Kept once it ran (an exit status came back); a container that never ran (interrupted
      // before its command, or a command that could not start) is removed, with or without --keep.
      if (options.keep && exitCode !== undefined) await keepContainer(store, container.id, { exitCode, ...(lazy ? { lazy } : {}) });
      else await removeContainer(store, container.id, lazy);
    }
  } finally {
    if (lazy) {
      if (options.lazy?.waitForCompletion !== false && !options.signal?.aborted) await untilAborted(lazy.settled(), options.lazy?.stopWaiting);
      await lazy.close();
    }
  }
}

function untilAborted(work: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return work;
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** runImage without root: the same steps, with mount and runtime run by the namespace helper. */
async function runRootless(
  deps: HostDeps,
  ref: ImageReference,
  runtime: RuntimeInfo,
  stateRoot: string,
  prepareOptions: PrepareContainerOptions,
  options: RunImageOptions,
): Promise<RunImageResult> {
  // Pulled, unpacked and planned as this user; the helper mounts it (and builds the spec against
  // the mounted rootfs). Owned by this process: the mount dies with the helper's namespace.
  const { dirs, mount, imageConfig, pull } = await stageContainer(deps, ref, { ...prepareOptions, ownedByProcess: true }, { rootless: true });
  // Like a root run's: with --keep, what the container wrote stays once it ran in its mounted rootfs.
  let mounted = false;
  let exitCode: number | undefined;
  try {
    options.signal?.throwIfAborted();
    options.onRuntime?.(runtime);
    const result = await runInUserNamespace({
      request: {
        mount,
        spec: { ...prepareOptions.process, imageConfig, rootfsPath: dirs.rootfs, containerId: dirs.id },
        bundleDir: dirs.bundle,
        containerId: dirs.id,
        stateRoot,
        runtime,
        tty: options.tty ?? false,
        keep: options.keep ?? false,
        logLevel: deps.logger.level as LogLevel,
        logFormat: deps.logger.format,
      },
      stdio: options.stdio ?? 'inherit',
      onMounted: () => (mounted = true),
      logger: deps.logger,
      ...(options.unshare ? { unshare: options.unshare } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    exitCode = result.exitCode;
    return { ...result, containerId: dirs.id, runtime, pull };
  } finally {
    // The mount went with the helper's namespace: keeping is marking and disowning.
    if (options.keep && mounted && exitCode !== undefined) await keepContainer(deps.store, dirs.id, { exitCode });
    else await removeContainer(deps.store, dirs.id);
  }
}
