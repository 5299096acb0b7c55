import { readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { mkdir, readdir, readlink } from 'node:fs/promises';
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
  return new HostpullError('NAME_IN_USE', `the container name "${name}" is in use by container ${holder}`, { hint: `choose another --name, or wait for that container to end (\`hostpull ps\`); a kept one keeps its name until \`hostpull rm ${name}\`` });
}

/**
 * Gives `name` to container `id`: `container-names/<name>` is made a symlink to the id. `id` must
 * already have its mount record, so a claimant that finds the name never takes it from a
 * container still being set up. A name whose container is gone (removed, or its run was killed:
 * every killed named run leaves one) is taken over; one in use (running, or kept by `run --keep`:
 * its record has no owner, so it stays held) is NAME_IN_USE.
 *
 * The race: taking over a stale name is read link → judge its holder → replace it, and a claimant
 * that judged the stale holder must not replace a link another claimant made meanwhile (both
 * runs would then think the name theirs). No filesystem call replaces a link only if it still
 * points at a given target, and renaming the link aside first does not close it either: a link
 * moved aside by mistake leaves the name free until it is put back, and a third claimant can take
 * it in that gap. So names change only inside the store's write transaction
 * (MountRecords.exclusively), where the holder is judged too: a second claimant waits for the
 * first to finish, then finds the name held by it. A killed claimant leaves the old link or its
 * own, never half of one (symlink and unlink are atomic), and SQLite drops its lock.
 */
export async function claimContainerName(store: ContentStore, name: string, id: string): Promise<void> {
  const dir = store.layout.containerNamesDir;
  const link = join(dir, checkContainerName(name));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  store.mounts.exclusively((held) => {
    try {
      symlinkSync(id, link);
      return;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
    const holder = readlinkSync(link);
    if (holder === id) return; // ours already (this ran again after a BUSY)
    if (held(holder)) throw nameInUse(name, holder);
    // Its container is gone: the name is free again.
    unlinkSync(link);
    symlinkSync(id, link);
  });
}

/**
 * Releases every name that points at container `id`. Each is removed only if it still points at
 * `id` when the store's write lock is held: a stale container's name may have been taken over
 * since it was read (see claimContainerName), and is then the new holder's.
 */
export async function releaseContainerNames(store: ContentStore, id: string): Promise<void> {
  const names = await namesOf(store, id);
  if (names.length === 0) return;
  store.mounts.exclusively(() => {
    for (const name of names) {
      const link = join(store.layout.containerNamesDir, name);
      if (readlinkOrUndefined(link) === id) unlinkSync(link);
    }
  });
}

function readlinkOrUndefined(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
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
