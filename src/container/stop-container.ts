import { setTimeout as sleep } from 'node:timers/promises';
import { constants } from 'node:os';
import { HostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { execRuntime } from '../runtime/index.js';
import type { ContentStore } from '../store/index.js';
import { processAlive } from '../util/index.js';
import { runtimeStateDir } from './container-dirs.js';
import { findContainer, runningContainer, type ContainerInfo } from './list-containers.js';

/** How often `stop` looks whether the container's run has ended. */
const POLL_MS = 100;
/** After SIGKILL, how long the run gets to unmount and remove the container. */
const CLEANUP_GRACE_MS = 10_000;

/** `SIGTERM`, `TERM` or `15` → `TERM` (what runc and crun take); anything else is USAGE. */
export function signalName(signal: string): string {
  const s = signal.trim().toUpperCase();
  const byNumber = /^\d+$/.test(s) ? Object.entries(constants.signals).find(([, n]) => n === Number(s))?.[0] : undefined;
  const name = byNumber ?? (s.startsWith('SIG') ? s : `SIG${s}`);
  if (!(name in constants.signals)) throw new HostpullError('USAGE', `unknown signal ${JSON.stringify(signal)}`, { hint: 'a name (TERM, SIGKILL, HUP) or a number (15)' });
  return name.slice(3);
}

/** Sends `signal` to the container's init through its runtime (`hostpull kill`). */
export async function killContainer(store: ContentStore, idOrName: string, signal: string, verb: 'kill' | 'stop' = 'kill'): Promise<ContainerInfo> {
  const { container, runtime } = runningContainer(await findContainer(store, idOrName), verb);
  const r = await execRuntime(runtime, runtimeStateDir(store.layout), ['kill', container.id, signalName(signal)]);
  if (r.code !== 0) {
    throw new HostpullError('RUNTIME_FAILED', `${runtime.name} kill ${container.id}: ${r.stderr.trim() || `exit ${r.code}`}`, { hint: 'it may have just exited: `hostpull ps`' });
  }
  return container;
}

/**
 * `hostpull stop`: SIGTERM to the container's init, then SIGKILL once `timeoutMs` passed without it
 * ending, as podman stop does. Resolves when its `hostpull run` has removed it, or kept it with
 * `--keep` (that run exits with the container's status and unmounts everything, as on any exit).
 */
export async function stopContainer(store: ContentStore, idOrName: string, options: { timeoutMs: number; logger?: Logger }): Promise<{ container: ContainerInfo; killed: boolean }> {
  const container = await killContainer(store, idOrName, 'TERM', 'stop');
  // Gone once its run released the mount record, disowned it (kept: keepContainer) or died: one row read per look.
  const gone = () => {
    const row = store.mounts.get(container.id);
    return row === undefined || row.ownerPid === null || !processAlive(row.ownerPid, row.ownerStart);
  };
  const until = async (deadline: number) => {
    while (Date.now() < deadline) {
      if (gone()) return true;
      await sleep(POLL_MS);
    }
    return gone();
  };
  if (await until(Date.now() + options.timeoutMs)) return { container, killed: false };
  options.logger?.info({ id: container.id, timeoutMs: options.timeoutMs }, 'container did not stop in time; sending SIGKILL');
  await killContainer(store, container.id, 'KILL').catch((err: unknown) => options.logger?.debug({ err }, 'SIGKILL after the timeout failed (it may have just exited)'));
  if (await until(Date.now() + CLEANUP_GRACE_MS)) return { container, killed: true };
  throw new HostpullError('STOP_TIMEOUT', `container ${container.id} got SIGKILL but its hostpull run (pid ${container.ownerPid}) has not removed it`, {
    hint: 'look at that process; if it is gone, the next `hostpull run REF` removes what it left',
  });
}
