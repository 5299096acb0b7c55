import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import type { LazyCandidate, LazyLayers, LazyMount } from '../lazy/index.js';
import { parseImageConfig, type Descriptor, type Digest, type ImageConfig, type ImageReference } from '../oci/index.js';
import { type DeferCandidate, type PullEvent, Puller, type PullPolicy, type PullResult } from '../pull/index.js';
import type { RegistryClient } from '../registry/index.js';
import { type Mount, performMount, createMountDirs, planImageRootfs } from '../rootfs/index.js';
import { buildRuntimeSpec, type RuntimeSpecInput, writeBundle } from '../runtime/index.js';
import type { ContentStore } from '../store/index.js';
import type { ApplyWorkers } from '../unpack/index.js';
import { containerDirs, createContainerDir, MOUNT_FILE, newContainerId, PERSISTENT_MARKER, type ContainerDirs } from './container-dirs.js';
import { removeContainer } from './remove-container.js';
import { claimContainerName } from './container-names.js';
import { markKept } from './keep-container.js';
import { writeContainerInfo } from './list-containers.js';

export interface HostDeps {
  store: ContentStore;
  client: RegistryClient;
  logger: Logger;
  /** Keep layer blobs after unpacking (PullOptions.keepBlobs). Default false. */
  keepBlobs?: boolean;
  /** Unpack workers to share (the daemon's). Default: each pull starts its own. */
  workers?: ApplyWorkers;
}

export interface PrepareContainerOptions {
  /** Process settings for config.json (command, env, user, cwd, tty…); image defaults otherwise. */
  process?: Omit<RuntimeSpecInput, 'imageConfig' | 'rootfsPath' | 'containerId'>;
  allowOverlap?: boolean;
  concurrency?: number;
  /** When to ask the registry (see PullPolicy). Default `always`. */
  pullPolicy?: PullPolicy;
  /** `--name`: given to the container once its mount is recorded (NAME_IN_USE if a live one has it). */
  name?: string;
  /**
   * The container belongs to the calling process (`hostpull run`): when that process dies, the
   * next start removes it. Otherwise (a rootfs prepared by the daemon for an orchestrator) it
   * stays until removed explicitly, across restarts. Default true.
   */
  ownedByProcess?: boolean;
  /**
   * `hostpull run --keep`: mark the container kept (keep-container.ts) before its mount is
   * recorded, so no cleanup removes it from then on, even after its run was killed. Default false.
   */
  keep?: boolean;
  signal?: AbortSignal;
  onPullEvent?: (e: PullEvent) => void;
  /**
   * Mount layers that are not unpacked yet lazily, from their TOC, while they complete in the
   * background (src/lazy). The rootfs then depends on this process (its FUSE helper), so it is
   * recorded as owned by it whatever `ownedByProcess` says. Default: pull every layer whole.
   */
  lazy?: LazyLayers;
}

export interface PreparedContainer {
  id: string;
  dirs: ContainerDirs;
  /** The mounted rootfs (the bundle's config.json points at it). */
  rootfs: string;
  /** The OCI bundle directory, ready for `runc run --bundle`. */
  bundle: string;
  imageConfig: ImageConfig;
  pull: PullResult;
  /** Layers mounted lazily for this container (empty unless `lazy`). */
  lazyMounts: LazyMount[];
}

/**
 * Pulls the image (a no-op when its manifest is already complete), mounts its layers as one
 * overlay with a writable upper for this container, and writes the OCI bundle next to it. On any
 * failure nothing is left behind.
 */
export async function prepareContainer(deps: HostDeps, ref: ImageReference, options: PrepareContainerOptions = {}): Promise<PreparedContainer> {
  const staged = await stageContainer(deps, ref, options, { rootless: false });
  const { dirs, imageConfig, pull, lazyMounts } = staged;
  try {
    await writeFile(join(dirs.bundle, MOUNT_FILE), `${JSON.stringify(staged.mount)}\n`);
    options.signal?.throwIfAborted();
    performMount(staged.mount);
    startPrefetch(options.lazy, staged);
    const spec = buildRuntimeSpec({ ...options.process, imageConfig, rootfsPath: dirs.rootfs, containerId: dirs.id });
    await writeBundle(dirs.bundle, spec);
    options.signal?.throwIfAborted();
    return { id: dirs.id, dirs, rootfs: dirs.rootfs, bundle: dirs.bundle, imageConfig, pull, lazyMounts };
  } catch (err) {
    await removeContainer(deps.store, dirs.id, options.lazy);
    throw err;
  }
}

export interface StagedContainer {
  dirs: ContainerDirs;
  /** The overlay to mount on dirs.rootfs, planned but not performed. */
  mount: Mount;
  imageConfig: ImageConfig;
  pull: PullResult;
  lazyMounts: LazyMount[];
  /** The learned prefetch list of each lazy layer, to start once the rootfs is mounted ({@link startPrefetch}). */
  prefetch: ReadonlyMap<Digest, number[]>;
}

/**
 * Starts the learned prefetch of a staged container's lazy layers, once its rootfs is mounted:
 * a view mounted with its list (see LazyLayers.choose) is fetching from it already, and the
 * helper asks for nothing more; one whose list came after its TOC starts here.
 */
export function startPrefetch(lazy: LazyLayers | undefined, staged: Pick<StagedContainer, 'lazyMounts' | 'prefetch'>): void {
  for (const m of staged.lazyMounts) void lazy?.prefetch(m.blobDigest, staged.prefetch.get(m.blobDigest) ?? []);
}

/**
 * Everything before the mount, shared by root and rootless containers: pull and unpack, create
 * containers/<id> with its upper and work dirs, plan the overlay, and record the layers as held
 * (so GC keeps them). A rootless plan reads whiteouts from `user.overlay.*` (`userxattr`) and is
 * mounted by the namespace helper. On any failure nothing is left behind.
 */
export async function stageContainer(
  deps: HostDeps,
  ref: ImageReference,
  options: PrepareContainerOptions,
  how: { rootless: boolean },
): Promise<StagedContainer> {
  const { store } = deps;
  const repo = { registry: ref.registry, repository: ref.repository };
  const lazy = options.lazy;
  let chosen = new Map<Digest, LazyCandidate>();
  let learned: Promise<ReadonlyMap<Digest, number[]>> | undefined;
  const pull = await new Puller(deps).pull(ref, {
    unpack: true,
    // Using an image already stored is not a pull (see PullOptions.recordUpToDate).
    recordUpToDate: false,
    ...(lazy
      ? {
          // The TOCs and the learned prefetch list are asked for beside the config, a round trip
          // sooner than defer could (a run without root mounts no view).
          onManifest: (image: { manifestDigest: Digest; layers: readonly Descriptor[] }) => {
            if (!how.rootless && lazy.fetchTocsAhead(repo, image.layers)) learned = lazy.prefetchFor(repo, image.manifestDigest);
          },
          defer: async (candidates: DeferCandidate[], image: { manifestDigest: Digest }) => {
            // The learned prefetch list comes while the TOCs are fetched: a view mounted after it starts its prefetch at once.
            if (!how.rootless) learned ??= lazy.prefetchFor(repo, image.manifestDigest);
            chosen = await lazy.choose(repo, candidates, how.rootless ? 'a run without root cannot mount FUSE' : undefined, learned);
            return new Set(chosen.keys());
          },
        }
      : {}),
    ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    ...(options.pullPolicy ? { policy: options.pullPolicy } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onPullEvent ? { onEvent: options.onPullEvent } : {}),
  });
  const image = store.images.get(pull.reference);
  if (!image) throw new HostpullError('IMAGE_UNKNOWN', `${pull.reference} vanished from the store after pulling it`);
  const imageConfig = parseImageConfig(await store.blobs.readBytes(image.configDigest), `config of ${pull.reference}`);

  const dirs = containerDirs(store.layout, newContainerId());
  // A rootfs over lazy layers lives only as long as this process serves them.
  const ownedByProcess = chosen.size > 0 || (options.ownedByProcess ?? true);
  await createContainerDir(dirs);
  try {
    if (!ownedByProcess) await writeFile(join(dirs.bundle, PERSISTENT_MARKER), `${pull.reference}\n`);
    await writeContainerInfo(dirs.bundle, { reference: pull.reference, manifestDigest: pull.manifestDigest });
    if (options.keep) await markKept(dirs.bundle);
    const lazyMounts: LazyMount[] = [];
    let prefetch: ReadonlyMap<Digest, number[]> = new Map();
    if (lazy && chosen.size > 0) {
      lazyMounts.push(...(await Promise.all([...chosen.values()].map((cand) => lazy.mount(repo, cand, dirs.id)))));
      prefetch = (await learned) ?? new Map();
    }
    const writable = { upperdir: dirs.upperdir, workdir: dirs.workdir };
    const plan = await planImageRootfs(store, image, {
      target: dirs.rootfs,
      writable,
      allowOverlap: options.allowOverlap ?? false,
      rootless: how.rootless,
      lazy: new Map(lazyMounts.map((m) => [m.diffId, m])),
    });
    await createMountDirs({ target: dirs.rootfs, writable });
    options.signal?.throwIfAborted();
    // Recorded before mounting: from here on GC will not evict these layers. A process-owned
    // record dies with its process, and the next start cleans up after a kill -9.
    store.mounts.record(dirs.id, plan.layers.map((l) => l.diffId), ownedByProcess ? { ownerPid: process.pid } : {});
    if (options.name !== undefined) await claimContainerName(store, options.name, dirs.id);
    return { dirs, mount: plan.mount, imageConfig, pull, lazyMounts, prefetch };
  } catch (err) {
    await removeContainer(store, dirs.id, lazy);
    throw err;
  }
}

/**
 * Hands a container prepared by this process to someone who outlives it (the daemon's client):
 * from now on only an explicit remove ends it. The marker goes first, then the record: a crash
 * between them leaves a record whose owner is dead, which the next start removes with its
 * directory — right, since whoever asked for it is only told its id after this returns.
 */
export async function handOverContainer(store: ContentStore, id: string, reference: string): Promise<void> {
  await writeFile(join(containerDirs(store.layout, id).bundle, PERSISTENT_MARKER), `${reference}\n`);
  if (!store.mounts.disown(id)) throw new HostpullError('NOT_FOUND', `rootfs ${id} has no mount record in ${store.layout.root}; it was removed meanwhile`);
}
