import { HostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseImageConfig } from '../oci/manifest.js';
import type { ImageReference } from '../oci/reference.js';
import type { PullEvent } from '../pull/events.js';
import { Puller, type PullResult } from '../pull/puller.js';
import type { RegistryClient } from '../registry/index.js';
import { performMount } from '../rootfs/mount.js';
import { createMountDirs, planImageRootfs } from '../rootfs/prepare-rootfs.js';
import { buildRuntimeSpec } from '../runtime/build-runtime-spec.js';
import { detectRuntime } from '../runtime/detect-runtime.js';
import { runContainer, type RunResult } from '../runtime/run-container.js';
import type { RuntimeInfo } from '../runtime/runtime-info.js';
import { writeBundle } from '../runtime/write-bundle.js';
import type { ContentStore } from '../store/content-store.js';
import { containerDirs, createContainerDir, newContainerId, runtimeStateDir } from './container-dirs.js';
import { cleanupLeftoverContainers, removeContainerDirs } from './remove-container.js';

export interface RunImageOptions {
  /** `-- CMD…`: replaces the image's Cmd. */
  args?: string[];
  entrypoint?: string[];
  /** `-e KEY=VAL` */
  env?: string[];
  user?: string;
  cwd?: string;
  tty?: boolean;
  /** `runc` or `crun`; default: the first that works here. */
  runtime?: string;
  /** Keep the container directory (upper layer, bundle) after exit. Default false. */
  keep?: boolean;
  allowOverlap?: boolean;
  concurrency?: number;
  /** `inherit` (default) or `pipe` (output captured in the result). */
  stdio?: 'inherit' | 'pipe';
  /** Aborts the pull and preparation; once the container runs, signals are forwarded to it instead. */
  signal?: AbortSignal;
  onPullEvent?: (e: PullEvent) => void;
  /** Called once the runtime is chosen, before the container starts. */
  onRuntime?: (runtime: RuntimeInfo) => void;
}

export interface RunImageResult extends RunResult {
  containerId: string;
  runtime: RuntimeInfo;
  pull: PullResult;
}

/**
 * `hostpull run`: pull (a no-op when the manifest is already complete), mount the rootfs with a
 * writable upper for this container, write the OCI bundle, run it in the foreground, and remove
 * the mounts and directories on every exit path unless `keep`.
 */
export async function runImage(
  deps: { store: ContentStore; client: RegistryClient; logger: Logger },
  ref: ImageReference,
  options: RunImageOptions = {},
): Promise<RunImageResult> {
  const { store, logger } = deps;
  await cleanupLeftoverContainers(store.layout, logger);
  const pull = await new Puller(deps).pull(ref, {
    unpack: true,
    ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onPullEvent ? { onEvent: options.onPullEvent } : {}),
  });
  const image = store.images.get(pull.reference);
  if (!image) throw new HostpullError('IMAGE_UNKNOWN', `${pull.reference} vanished from the store after pulling it`);
  const imageConfig = parseImageConfig(await store.blobs.readBytes(image.configDigest), `config of ${pull.reference}`);

  const dirs = containerDirs(store.layout, newContainerId());
  await createContainerDir(dirs);
  let mounted = false;
  try {
    const writable = { upperdir: dirs.upperdir, workdir: dirs.workdir };
    const plan = await planImageRootfs(store, image, { target: dirs.rootfs, writable, allowOverlap: options.allowOverlap ?? false });
    await createMountDirs({ target: dirs.rootfs, writable });
    options.signal?.throwIfAborted();
    performMount(plan.mount);
    mounted = true;
    const stateRoot = runtimeStateDir(store.layout);
    const runtime = await detectRuntime(options.runtime, { stateRoot, logger });
    options.onRuntime?.(runtime);
    const spec = buildRuntimeSpec({
      imageConfig,
      rootfsPath: dirs.rootfs,
      containerId: dirs.id,
      ...(options.args?.length ? { args: options.args } : {}),
      ...(options.entrypoint ? { entrypoint: options.entrypoint } : {}),
      ...(options.env ? { env: options.env } : {}),
      ...(options.user ? { user: options.user } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.tty ? { tty: true, consoleSize: { height: process.stdout.rows ?? 24, width: process.stdout.columns ?? 80 } } : {}),
    });
    await writeBundle(dirs.bundle, spec);
    options.signal?.throwIfAborted();
    const result = await runContainer({
      runtime,
      bundleDir: dirs.bundle,
      containerId: dirs.id,
      stateRoot,
      tty: options.tty ?? false,
      stdio: options.stdio ?? 'inherit',
      keep: options.keep ?? false,
      logger,
    });
    return { ...result, containerId: dirs.id, runtime, pull };
  } finally {
    if (!options.keep || !mounted) await removeContainerDirs(store.layout, dirs.id);
  }
}
