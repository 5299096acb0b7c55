import type { ImageReference } from '../oci/reference.js';
import type { PullEvent } from '../pull/events.js';
import type { PullResult } from '../pull/puller.js';
import { detectRuntime } from '../runtime/detect-runtime.js';
import { runContainer, type RunResult } from '../runtime/run-container.js';
import type { RuntimeInfo } from '../runtime/runtime-info.js';
import { runtimeStateDir } from './container-dirs.js';
import { prepareContainer, removeContainer, type HostDeps } from './prepare-container.js';
import { cleanupLeftoverContainers } from './remove-container.js';

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
 * `hostpull run`: prepare the container (pull, overlay with a writable upper, bundle), run it in
 * the foreground, and remove the mounts and directories on every exit path unless `keep`.
 */
export async function runImage(deps: HostDeps, ref: ImageReference, options: RunImageOptions = {}): Promise<RunImageResult> {
  const { store, logger } = deps;
  await cleanupLeftoverContainers(store.layout, logger);
  const stateRoot = runtimeStateDir(store.layout);
  // Probe before pulling: a host without a working runtime fails in a second, not after a download.
  const runtime = await detectRuntime(options.runtime, { stateRoot, logger });
  const container = await prepareContainer(deps, ref, {
    process: {
      ...(options.args?.length ? { args: options.args } : {}),
      ...(options.entrypoint ? { entrypoint: options.entrypoint } : {}),
      ...(options.env ? { env: options.env } : {}),
      ...(options.user ? { user: options.user } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.tty ? { tty: true, consoleSize: { height: process.stdout.rows ?? 24, width: process.stdout.columns ?? 80 } } : {}),
    },
    allowOverlap: options.allowOverlap ?? false,
    ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onPullEvent ? { onPullEvent: options.onPullEvent } : {}),
  });
  try {
    options.signal?.throwIfAborted();
    options.onRuntime?.(runtime);
    const result = await runContainer({
      runtime,
      bundleDir: container.bundle,
      containerId: container.id,
      stateRoot,
      tty: options.tty ?? false,
      stdio: options.stdio ?? 'inherit',
      keep: options.keep ?? false,
      logger,
    });
    return { ...result, containerId: container.id, runtime, pull: container.pull };
  } finally {
    if (!options.keep) await removeContainer(store, container.id);
  }
}
