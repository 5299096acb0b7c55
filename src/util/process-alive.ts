import { readFileSync } from 'node:fs';
import { errnoCode } from '../errors.js';

/** True while a process with this pid runs (or exists under another user: EPERM). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

/**
 * The kernel's start time of a process (/proc/<pid>/stat field 22, clock ticks since boot), or
 * undefined when it is gone (or a zombie). A pid alone can be reused by an unrelated process after its owner
 * died; pid + start time names one process for the life of the boot.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: the fields after it start past the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // A zombie has exited (its files, a FUSE server's /dev/fuse among them, are closed); only
    // its pid waits for a parent to reap it, which after a kill -9 of that parent can take a while.
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** True while the process that had `startTime` under `pid` still runs (any process under `pid` when no start time was recorded). */
export function processAlive(pid: number, startTime: string | null): boolean {
  const now = processStartTime(pid);
  return now !== undefined && (startTime === null || startTime === '' || now === startTime);
}
