import { HostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { execInContainer, resolveUser, type RunResult } from '../runtime/index.js';
import type { ContentStore } from '../store/index.js';
import { containerDirs, runtimeStateDir } from './container-dirs.js';
import { listContainers, type ContainerInfo } from './list-containers.js';

export interface ExecContainerOptions {
  args: string[];
  tty?: boolean;
  env?: string[];
  /** user[:group] or uid[:gid], resolved in the container's rootfs as `hostpull run -u` is. */
  user?: string;
  cwd?: string;
  logger?: Logger;
}

/** The container named `idOrPrefix` (`--name`), else the one whose id is or starts with it, as `hostpull ps` lists them. */
async function findContainer(store: ContentStore, idOrPrefix: string): Promise<ContainerInfo> {
  const all = await listContainers(store);
  const named = all.find((c) => c.name === idOrPrefix);
  if (named) return named;
  const matches = all.filter((c) => c.id === idOrPrefix || (idOrPrefix.length > 0 && c.id.startsWith(idOrPrefix)));
  if (matches.length === 0) {
    throw new HostpullError('NOT_FOUND', `no container ${idOrPrefix} in ${store.layout.root}`, { hint: '`hostpull ps` lists the containers of this store (give --root for another)' });
  }
  if (matches.length > 1) throw new HostpullError('USAGE', `${idOrPrefix} names ${matches.length} containers (${matches.map((c) => c.id).join(', ')}): give more of the id`);
  return matches[0]!;
}

/**
 * `hostpull exec`: runs a process in a container that a `hostpull run` on this store is running,
 * with the runtime that runs it. A rootfs prepared for an orchestrator is the orchestrator's to
 * exec into (its runtime state is not under this store), and a run without root keeps its
 * container inside a user namespace this process is not in: both are refused with a reason.
 */
export async function execContainer(store: ContentStore, idOrPrefix: string, options: ExecContainerOptions): Promise<RunResult & { containerId: string }> {
  const c = await findContainer(store, idOrPrefix);
  if (c.state === 'prepared') throw new HostpullError('CONTAINER_NOT_RUNNING', `container ${c.id} is a rootfs prepared for an orchestrator`, { hint: 'exec through the orchestrator that runs it' });
  if (c.state === 'stale') throw new HostpullError('CONTAINER_NOT_RUNNING', `container ${c.id} is not running: the hostpull run that started it was killed`, { hint: 'the next `hostpull run REF` (or daemon start) removes it' });
  if (!c.runtime) throw new HostpullError('CONTAINER_NOT_RUNNING', `container ${c.id} is not running yet (its runtime is not chosen)`, { hint: 'try again in a moment' });
  if (process.getuid?.() !== 0) {
    throw new HostpullError('UNSUPPORTED', `container ${c.id} runs inside the user namespace of a run without root, which hostpull exec cannot enter`, { hint: 'start what you need with `hostpull run REF -- CMD` instead' });
  }
  const user = options.user !== undefined ? resolveUser(containerDirs(store.layout, c.id).rootfs, options.user) : undefined;
  const result = await execInContainer({
    runtime: c.runtime,
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
