import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../oci/index.js';
import type { ContentStore } from '../store/index.js';
import { processAlive, readDirOrEmpty } from '../util/index.js';
import { containerDirs, isContainerId } from './container-dirs.js';
import { containerNames } from './container-names.js';

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
 * and the next run or daemon start removes it.
 */
export type ContainerState = 'running' | 'prepared' | 'stale';

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
  /** The hostpull process that owns it (null for a prepared rootfs). */
  ownerPid: number | null;
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
    out.push({
      id,
      name: names.get(id) ?? null,
      reference: typeof info?.reference === 'string' ? info.reference : null,
      manifestDigest: typeof info?.manifestDigest === 'string' ? info.manifestDigest : null,
      command: Array.isArray(args) ? args.filter((a): a is string => typeof a === 'string') : [],
      createdAt: row.createdAt,
      state: row.ownerPid === null ? 'prepared' : processAlive(row.ownerPid, row.ownerStart) ? 'running' : 'stale',
      ownerPid: row.ownerPid,
      runtime: typeof info?.runtime?.path === 'string' && typeof info.runtime.name === 'string' ? { name: info.runtime.name, path: info.runtime.path } : null,
    });
  }
  return out.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
}
