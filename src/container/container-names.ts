import { mkdir, readdir, readlink, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode, HostpullError } from '../errors.js';
import type { ContentStore } from '../store/index.js';

/** podman's rule for a container name. */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

function checkContainerName(name: string): string {
  if (!NAME.test(name)) {
    throw new HostpullError('USAGE', `container name "${name}" is not valid`, { hint: 'a letter or digit, then letters, digits, "_", "." or "-" (at most 128)' });
  }
  return name;
}

/** NAME_IN_USE when a container that still holds `name` has it: checked before a run pulls anything. */
export async function checkNameFree(store: ContentStore, name: string): Promise<void> {
  const holder = await readlink(join(store.layout.containerNamesDir, checkContainerName(name))).catch(() => undefined);
  if (holder !== undefined && store.mounts.isHeld(holder)) throw nameInUse(name, holder);
}

function nameInUse(name: string, holder: string): HostpullError {
  return new HostpullError('NAME_IN_USE', `the container name "${name}" is in use by container ${holder}`, { hint: 'choose another --name, or wait for that container to end (`hostpull ps`)' });
}

/**
 * Gives `name` to container `id`: `container-names/<name>` is made a symlink to the id, which only
 * one process can create (symlink(2) fails if the name exists), so two runs asking for the same
 * name at once cannot both get it. `id` must already have its mount record, so a claimant that
 * finds the name never takes it from a container still being set up. A name whose container is
 * gone (removed, or its run was killed) is taken over; one in use is NAME_IN_USE.
 */
export async function claimContainerName(store: ContentStore, name: string, id: string): Promise<void> {
  const dir = store.layout.containerNamesDir;
  const link = join(dir, checkContainerName(name));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (let attempt = 0; ; attempt++) {
    try {
      await symlink(id, link);
      return;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST' || attempt > 0) throw err;
    }
    const holder = await readlink(link).catch(() => undefined);
    if (holder !== undefined && store.mounts.isHeld(holder)) throw nameInUse(name, holder);
    // Its container is gone: the name is free again (one retry: a racing claimant may win it).
    await unlink(link).catch(() => undefined);
  }
}

/** Releases every name that points at container `id`. */
export async function releaseContainerNames(store: ContentStore, id: string): Promise<void> {
  for (const name of await namesOf(store, id)) await unlink(join(store.layout.containerNamesDir, name)).catch(() => undefined);
}

/** The names that point at container `id` (normally one, or none). */
async function namesOf(store: ContentStore, id: string): Promise<string[]> {
  const out: string[] = [];
  for (const [name, target] of await containerNames(store)) if (target === id) out.push(name);
  return out;
}

/** Every name → container id. */
export async function containerNames(store: ContentStore): Promise<Map<string, string>> {
  let names: string[];
  try {
    names = await readdir(store.layout.containerNamesDir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return new Map();
    throw err;
  }
  const out = new Map<string, string>();
  for (const n of names) {
    const target = await readlink(join(store.layout.containerNamesDir, n)).catch(() => undefined);
    if (target !== undefined) out.set(n, target);
  }
  return out;
}
