import { readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';

/**
 * `<bundle>/hostpull-owner.json` names the hostpull process running a container, so
 * {@link cleanupStaleContainers} can tell a live `hostpull run` from one that was killed -9.
 * A pid alone could be reused by an unrelated process, so the kernel's start time of the process
 * (/proc/<pid>/stat field 22) is recorded with it.
 */
export const OWNER_FILE = 'hostpull-owner.json';

interface Owner {
  pid: number;
  startTime: string;
}

function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: fields after it start past the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19]; // field 22 overall = index 19 after pid, comm (fields 1-2) and state (3)
  } catch {
    return undefined;
  }
}

export async function writeOwner(bundleDir: string): Promise<void> {
  const owner: Owner = { pid: process.pid, startTime: startTimeOf(process.pid) ?? '' };
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
  if (typeof owner.pid !== 'number' || typeof owner.startTime !== 'string') return false;
  const now = startTimeOf(owner.pid);
  return now !== undefined && now === owner.startTime;
}
