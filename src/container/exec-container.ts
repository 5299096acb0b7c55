import type { Logger } from '../log.js';
import { execInContainer, resolveUser, type RunResult } from '../runtime/index.js';
import type { ContentStore } from '../store/index.js';
import { containerDirs, runtimeStateDir } from './container-dirs.js';
import { findContainer, runningContainer } from './list-containers.js';

export interface ExecContainerOptions {
  args: string[];
  tty?: boolean;
  env?: string[];
  /** user[:group] or uid[:gid], resolved in the container's rootfs as `hostpull run -u` is. */
  user?: string;
  cwd?: string;
  logger?: Logger;
}

/**
 * `hostpull exec`: runs a process in a container that a `hostpull run` on this store is running,
 * with the runtime that runs it. A rootfs prepared for an orchestrator is the orchestrator's to
 * exec into (its runtime state is not under this store), and a run without root keeps its
 * container inside a user namespace this process is not in: both are refused with a reason.
 */
export async function execContainer(store: ContentStore, idOrPrefix: string, options: ExecContainerOptions): Promise<RunResult & { containerId: string }> {
  const { container: c, runtime } = runningContainer(await findContainer(store, idOrPrefix), 'exec');
  const user = options.user !== undefined ? resolveUser(containerDirs(store.layout, c.id).rootfs, options.user) : undefined;
  const result = await execInContainer({
    runtime,
    stateRoot: runtimeStateDir(store.layout),
    containerId: c.id,
    args: options.args,
    tty: options.tty ?? false,
    ...(options.env ? { env: options.env } : {}),
    ...(user ? { user } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  return { ...result, containerId: c.id };
}
