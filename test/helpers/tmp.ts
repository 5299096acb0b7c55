/**
 * Temp dirs for tests that are removed even when a test leaves mounts (overlay rootfs, bind
 * mounts) below them: `rm -rf` across a live mount would fail with EBUSY, or worse, recurse
 * into the mounted lower dirs.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, realpath, rm, chmod, readdir, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach } from 'vitest';
import { HostpullError } from '../../src/errors.js';
import { inUnmountOrder, listMountsUnder } from '../../src/rootfs/mountinfo.js';

/** A fresh directory under os.tmpdir() named `hostpull-<prefix>-XXXXXX`. */
export async function makeTempDir(prefix = 'test'): Promise<string> {
  return realpath(await mkdtemp(join(tmpdir(), `hostpull-${prefix}-`)));
}

/** Mount points at or below `dir` in this process's mount namespace, in the order to unmount them. */
export async function mountsBelow(dir: string): Promise<string[]> {
  return inUnmountOrder(listMountsUnder(dir)).map((m) => m.mountPoint);
}

/** Best-effort write permission everywhere below dir (for a non-root run over 0500 dirs). */
async function makeWritable(dir: string): Promise<void> {
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return;
  await chmod(dir, 0o700).catch(() => undefined);
  for (const name of await readdir(dir).catch(() => [] as string[])) await makeWritable(join(dir, name));
}

/**
 * Unmounts everything below dir (umount, then `umount -l` as a last resort), then removes it.
 * Throws if something stays mounted, because removing files under a live mount would delete
 * the mounted content (e.g. a layer directory bind-mounted from a store elsewhere).
 */
export async function removeTempDir(dir: string): Promise<void> {
  const real = await realpath(dir).catch(() => undefined);
  if (real === undefined) return;
  for (const point of await mountsBelow(real)) {
    const r = spawnSync('umount', [point], { encoding: 'utf8' });
    if (r.status !== 0) spawnSync('umount', ['-l', point], { encoding: 'utf8' });
  }
  const left = await mountsBelow(real);
  if (left.length > 0) {
    throw new HostpullError('TEST_TMP_BUSY', `cannot remove ${real}: still mounted: ${left.join(', ')}`);
  }
  try {
    await rm(real, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    await makeWritable(real);
    await rm(real, { recursive: true, force: true, maxRetries: 3 });
  }
}

/**
 * vitest helper: returns `make(prefix?)`. Dirs made inside a test are removed after that test;
 * dirs made in beforeAll (or at collection time) after the file's tests. Register it at the top
 * of a describe block (it installs hooks).
 */
export function useTempDir(defaultPrefix = 'test'): (prefix?: string) => Promise<string> {
  const suiteDirs: string[] = [];
  const testDirs: string[] = [];
  let inTest = false;
  const cleanup = async (dirs: string[]) => {
    const errors: unknown[] = [];
    for (const d of dirs.splice(0).reverse()) await removeTempDir(d).catch((e: unknown) => errors.push(e));
    if (errors.length > 0) throw errors[0];
  };
  beforeEach(() => {
    inTest = true;
  });
  afterEach(async () => {
    inTest = false;
    await cleanup(testDirs);
  });
  afterAll(async () => {
    await cleanup(suiteDirs);
  });
  return async (prefix = defaultPrefix) => {
    const dir = await makeTempDir(prefix);
    (inTest ? testDirs : suiteDirs).push(dir);
    return dir;
  };
}
