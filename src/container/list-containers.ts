import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HostpullError } from '../errors.js';
import type { Digest } from '../oci/index.js';
import type { ContentStore } from '../store/index.js';
import { processAlive, readDirOrEmpty } from '../util/index.js';
import { containerDirs, isContainerId } from './container-dirs.js';
import { containerNames } from './container-names.js';
import { readKept } from './keep-container.js';

/** What `hostpull ps` shows of a container: written beside its bundle when it is created. */
export const CONTAINER_INFO_FILE = 'hostpull-container.json';

interface ContainerInfoFile {
  reference: string;
  manifestDigest: Digest;
  /** The OCI runtime that runs it, once chosen (`hostpull exec` uses the same one). */
  runtime?: { name: string; path: string };
}

export async function writeContainerInfo(bundle: string, info: ContainerInfoFile): Promise<void> {
  await writeFile(join(bundle, CONTAINER_INFO_FILE), `${JSON.stringify(info)}\n`);
}

/** Adds the runtime chosen for the container to its info file. */
export async function recordContainerRuntime(bundle: string, runtime: { name: string; path: string }): Promise<void> {
  const info = (await readJson(join(bundle, CONTAINER_INFO_FILE))) as ContainerInfoFile | undefined;
  if (info) await writeContainerInfo(bundle, { ...info, runtime: { name: runtime.name, path: runtime.path } });
}

/**
 * running: the `hostpull run` that owns it is alive; prepared: a rootfs handed to an
 * orchestrator (the daemon's rootfs API), which lives until removed; stale: its owner was killed,
 * and the next run or daemon start removes it; exited: kept by `run --keep` after its run ended
 * (or was killed), until `hostpull rm`.
 */
export type ContainerState = 'running' | 'prepared' | 'stale' | 'exited';

export interface ContainerInfo {
  id: string;
  /** `hostpull run --name`, or null. */
  name: string | null;
  /** The image as pulled (null for a container made before hostpull recorded it). */
  reference: string | null;
  manifestDigest: Digest | null;
  /** process.args of its config.json (empty while the bundle is being written). */
  command: string[];
  createdAt: number;
  state: ContainerState;
  /** The hostpull process that owns it (null for a prepared rootfs and, once unmounted, a kept one). */
  ownerPid: number | null;
  /** An exited container's exit status (null when its run ended without one: killed, or the runtime failed). */
  exitCode: number | null;
  /** The runtime running it (null until chosen, and for a prepared rootfs). */
  runtime: { name: string; path: string } | null;
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The containers of this store, oldest first: each recorded rootfs with a container directory. */
export async function listContainers(store: ContentStore): Promise<ContainerInfo[]> {
  const rows = new Map(store.mounts.list().map((r) => [r.id, r]));
  const names = new Map([...(await containerNames(store))].map(([name, id]) => [id, name]));
  const out: ContainerInfo[] = [];
  for (const id of await readDirOrEmpty(store.layout.containersDir)) {
    const row = rows.get(id);
    if (!isContainerId(id) || !row) continue;
    const { bundle } = containerDirs(store.layout, id);
    const info = (await readJson(join(bundle, CONTAINER_INFO_FILE))) as Partial<ContainerInfoFile> | undefined;
    const config = (await readJson(join(bundle, 'config.json'))) as { process?: { args?: unknown } } | undefined;
    const args = config?.process?.args;
    const kept = await readKept(bundle);
    const alive = row.ownerPid !== null && processAlive(row.ownerPid, row.ownerStart);
    // A kept container's record loses its owner when its run ends (keepContainer). One whose run
    // was killed still names that run: stale, its runtime maybe still running it, until the next
    // cleanup keeps it.
    const state: ContainerState = row.ownerPid === null ? (kept ? 'exited' : 'prepared') : alive ? 'running' : 'stale';
    out.push({
      id,
      name: names.get(id) ?? null,
      reference: typeof info?.reference === 'string' ? info.reference : null,
      manifestDigest: typeof info?.manifestDigest === 'string' ? info.manifestDigest : null,
      command: Array.isArray(args) ? args.filter((a): a is string => typeof a === 'string') : [],
      createdAt: row.createdAt,
      state,
      ownerPid: row.ownerPid,
      exitCode: state === 'exited' ? (kept?.exitCode ?? null) : null,
      runtime: typeof info?.runtime?.path === 'string' && typeof info.runtime.name === 'string' ? { name: info.runtime.name, path: info.runtime.path } : null,
    });
  }
  return out.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
}

/** The container named `idOrPrefix` (`--name`), else the one whose id is or starts with it, as `hostpull ps` lists them. */
export async function findContainer(store: ContentStore, idOrPrefix: string): Promise<ContainerInfo> {
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
 * The container and its runtime, when `verb` (exec, stop, kill) can act on it through that
 * runtime: a `hostpull run` of this store is running it. A rootfs prepared for an orchestrator is
 * the orchestrator's (its runtime state is not under this store); a stale one's run was killed;
 * a run without root keeps its container inside a user namespace this process is not in.
 */
export function runningContainer(c: ContainerInfo, verb: string): { container: ContainerInfo; runtime: { name: string; path: string } } {
  if (c.state === 'prepared') throw new HostpullError('CONTAINER_NOT_RUNNING', `container ${c.id} is a rootfs prepared for an orchestrator`, { hint: `${verb} it through the orchestrator that runs it` });
  if (c.state === 'exited') {
    throw new HostpullError('CONTAINER_NOT_RUNNING', `container ${c.name ?? c.id} has exited (kept by hostpull run --keep)`, { hint: `start a new one with \`hostpull run REF\`; \`hostpull rm ${c.name ?? c.id}\` removes this one` });
  }
  if (c.state === 'stale') {
    throw new HostpullError('CONTAINER_NOT_RUNNING', `container ${c.id} is not running: the hostpull run that started it was killed`, {
      hint: `\`hostpull rm ${c.name ?? c.id}\` stops what its runtime may still run and removes it; the next run or daemon start cleans it up too`,
    });
  }
  // Before the runtime: a run without root never records one (its runtime runs in the helper's
  // namespace), so "not running yet" would send the user retrying for nothing.
  if (process.getuid?.() !== 0) {
    throw new HostpullError('UNSUPPORTED', `container ${c.id} runs inside the user namespace of a run without root, which hostpull ${verb} cannot enter`, {
      hint: verb === 'exec' ? 'start what you need with `hostpull run REF -- CMD` instead' : 'signal the process of its `hostpull run REF` instead (its pid is in `hostpull ps`)',
    });
  }
  if (!c.runtime) throw new HostpullError('CONTAINER_NOT_RUNNING', `container ${c.id} is not running yet (its runtime is not chosen)`, { hint: 'try again in a moment' });
  return { container: c, runtime: c.runtime };
}
