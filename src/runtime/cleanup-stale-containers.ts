import { existsSync } from 'node:fs';
import { readdir, realpath } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { errnoCode } from '../errors.js';
import type { Logger } from '../log.js';
import { execRuntime, isNotExist, tail } from './exec-runtime.js';
import { ownerAlive } from './owner.js';
import type { RuntimeInfo } from './runtime-info.js';

export interface CleanupOptions {
  /**
   * Runtime that created the containers. Default: per container, runc when its state directory
   * holds runc's `state.json`, else crun — each keeps its own state format under `--root`.
   */
  runtime?: RuntimeInfo;
  signal?: AbortSignal;
  logger?: Logger;
}

async function realOrSelf(p: string): Promise<string> {
  try {
    return await realpath(p);
  } catch {
    return resolve(p);
  }
}

function runtimeFor(stateRoot: string, id: string, opts: CleanupOptions): Pick<RuntimeInfo, 'path'> & { name: string } {
  if (opts.runtime) return opts.runtime;
  const name = existsSync(join(stateRoot, id, 'state.json')) ? 'runc' : 'crun';
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (dir && existsSync(join(dir, name))) return { name, path: join(dir, name) };
  }
  return { name, path: name };
}

/**
 * After a `hostpull run` was killed (-9, OOM, power loss), its container can linger in the
 * runtime's state: created but never started, still running with nobody attached, or stopped
 * but not deleted. For each container under `stateRoot` whose bundle lies in `containersDir`
 * (so: ours) and whose owner process (see owner.ts) is gone, or whose bundle is gone, run
 * `delete --force` (which also kills it) and return its id; the caller then unmounts and
 * removes `containersDir/<id>`. Containers of a live `hostpull run`, and any not ours, are left
 * alone.
 */
export async function cleanupStaleContainers(stateRoot: string, containersDir: string, opts: CleanupOptions = {}): Promise<string[]> {
  let ids: string[];
  try {
    ids = (await readdir(stateRoot, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  const ours = (await realOrSelf(containersDir)) + sep;
  const removed: string[] = [];
  for (const id of ids) {
    opts.signal?.throwIfAborted();
    const runtime = runtimeFor(stateRoot, id, opts);
    const sigOpt = opts.signal ? { signal: opts.signal } : {};
    const state = await execRuntime(runtime, stateRoot, ['state', id], sigOpt);
    let bundle: string | undefined;
    if (state.code === 0) {
      try {
        bundle = (JSON.parse(state.stdout) as { bundle?: string }).bundle;
      } catch {
        bundle = undefined;
      }
    }
    // An unreadable state (half-created container) still counts as ours when its bundle dir exists.
    const bundleDir = bundle ? await realOrSelf(bundle) : join(containersDir, id);
    if (!(bundleDir + sep).startsWith(ours)) continue;
    if (existsSync(bundleDir) ? await ownerAlive(bundleDir) : !bundle) continue;
    // A bundle of ours that is gone: no run owns the container any more (a run creates its
    // bundle before the runtime's state and deletes the state before the bundle), but the
    // runtime may still run it, over a rootfs unmounted or removed under it.
    const del = await execRuntime(runtime, stateRoot, ['delete', '--force', id], sigOpt);
    if (del.code !== 0 && !isNotExist(del.stderr)) {
      opts.logger?.warn({ id, runtime: runtime.name, stderr: tail(del.stderr) }, 'cannot delete stale container');
      continue;
    }
    opts.logger?.info({ id }, 'deleted stale container');
    removed.push(id);
  }
  return removed;
}
