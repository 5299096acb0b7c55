import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import { processAlive, processStartTime } from '../util/index.js';

/**
 * `<bundle>/hostpull-owner.json` names the hostpull process running a container, so
 * {@link cleanupStaleContainers} can tell a live `hostpull run` from one that was killed -9.
 * A pid alone could be reused by an unrelated process, so the kernel's start time of the process
 * (/proc/<pid>/stat field 22) is recorded with it.
 */
const OWNER_FILE = 'hostpull-owner.json';

interface Owner {
  pid: number;
  startTime: string;
}

export async function writeOwner(bundleDir: string): Promise<void> {
  const owner: Owner = { pid: process.pid, startTime: processStartTime(process.pid) ?? '' };
  await writeFile(join(bundleDir, OWNER_FILE), JSON.stringify(owner) + '\n', { mode: 0o600 });
}

export async function removeOwner(bundleDir: string): Promise<void> {
  await rm(join(bundleDir, OWNER_FILE), { force: true });
}

/** True when the bundle's owner file names a process that is still alive (same pid, same start). */
export async function ownerAlive(bundleDir: string): Promise<boolean> {
  let owner: Partial<Owner>;
  try {
    owner = JSON.parse(await readFile(join(bundleDir, OWNER_FILE), 'utf8')) as Partial<Owner>;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || err instanceof SyntaxError) return false;
    throw err;
  }
  // An owner file written without a start time names no process for sure: not alive.
  if (typeof owner.pid !== 'number' || typeof owner.startTime !== 'string' || owner.startTime === '') return false;
  return processAlive(owner.pid, owner.startTime);
}
