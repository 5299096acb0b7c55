import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import type { ImageConfig } from '../../../src/oci/index.js';
import { buildRuntimeSpec, cleanupStaleContainers, detectRuntime, runContainer, writeBundle, type RuntimeInfo, type RuntimeSpecInput } from '../../../src/runtime/index.js';
import { writeOwner } from '../../../src/runtime/owner.js';
import { makeBusyboxRootfs } from './busybox-rootfs.js';

let dir: string;
let rootfs: string;
let stateRoot: string;
let containersDir: string;
let runc: RuntimeInfo;
const used = new Set<string>();
let seq = 0;

function runcDelete(id: string): void {
  spawnSync(runc?.path ?? 'runc', [`--root=${stateRoot}`, 'delete', '--force', id], { stdio: 'ignore' });
}

beforeAll(async () => {
  ({ dir, rootfs } = await makeBusyboxRootfs('hostpull-run-'));
  stateRoot = join(dir, 'state');
  containersDir = join(dir, 'containers');
  await mkdir(containersDir);
  runc = await detectRuntime('runc', { stateRoot });
});
afterEach(() => {
  for (const id of used) runcDelete(id);
  used.clear();
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function image(config: NonNullable<ImageConfig['config']>): ImageConfig {
  return { architecture: 'amd64', os: 'linux', config, rootfs: { type: 'layers', diff_ids: [] } };
}

/** A bundle under containersDir/<id> for the busybox rootfs; returns its id and dir. */
async function bundle(config: NonNullable<ImageConfig['config']>, extra: Partial<RuntimeSpecInput> = {}) {
  const id = `hp-test-${process.pid}-${++seq}`;
  used.add(id);
  const bundleDir = join(containersDir, id);
  await writeBundle(bundleDir, buildRuntimeSpec({ imageConfig: image(config), rootfsPath: rootfs, containerId: id, ...extra }));
  return { id, bundleDir };
}

async function run(config: NonNullable<ImageConfig['config']>, extra: Partial<RuntimeSpecInput> = {}) {
  const { id, bundleDir } = await bundle(config, extra);
  return runContainer({ runtime: runc, bundleDir, containerId: id, stateRoot, stdio: 'pipe' });
}

function containerExists(id: string): boolean {
  return spawnSync(runc.path, [`--root=${stateRoot}`, 'state', id], { stdio: 'ignore' }).status === 0;
}

describe('runContainer with runc', () => {
  it('runs echo hello and captures stdout; the container is deleted afterwards', async () => {
    const { id, bundleDir } = await bundle({ Cmd: ['echo', 'hello'] });
    const r = await runContainer({ runtime: runc, bundleDir, containerId: id, stateRoot, stdio: 'pipe' });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('hello\n');
    expect(containerExists(id)).toBe(false);
  });

  it('removes the owner file with the runtime state, unless the caller keeps it for its own cleanup', async () => {
    const owner = (dir: string) => existsSync(join(dir, 'hostpull-owner.json'));
    const plain = await bundle({ Cmd: ['true'] });
    await runContainer({ runtime: runc, bundleDir: plain.bundleDir, containerId: plain.id, stateRoot, stdio: 'pipe' });
    expect(owner(plain.bundleDir)).toBe(false);
    const kept = await bundle({ Cmd: ['true'] });
    await runContainer({ runtime: runc, bundleDir: kept.bundleDir, containerId: kept.id, stateRoot, stdio: 'pipe', keepOwnerFile: true });
    expect(containerExists(kept.id)).toBe(false);
    // Still this process's: cleanupStaleContainers (another run's) leaves the container alone.
    expect(owner(kept.bundleDir)).toBe(true);
  });

  it('propagates the exit code', async () => {
    const r = await run({ Entrypoint: ['sh', '-c'], Cmd: ['exit 7'] });
    expect(r.exitCode).toBe(7);
  });

  it('applies env, cwd and user from the image config and overrides', async () => {
    const r = await run(
      { Env: ['FOO=image', 'KEEP=1'], WorkingDir: '/tmp', User: 'app', Cmd: ['sh', '-c', 'echo "$FOO $KEEP $(pwd) $(id -u) $(id -g) $(id -G)"'] },
      { env: ['FOO=override'] },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('override 1 /tmp 1000 1000 1000 2000\n');
  });

  it('feeds stdin with stdio pipe', async () => {
    const { id, bundleDir } = await bundle({ Cmd: ['cat'] });
    const r = await runContainer({ runtime: runc, bundleDir, containerId: id, stateRoot, stdio: 'pipe', input: 'from stdin' });
    expect(r.stdout).toBe('from stdin');
  });

  it('forwards SIGTERM sent to our process to the container and propagates 143', async () => {
    const shared = join(dir, `shared-${seq}`);
    await mkdir(shared);
    // sh is the container's pid 1: without a handler the kernel ignores SIGTERM for it, so it traps.
    const { id, bundleDir } = await bundle(
      { Cmd: ['sh', '-c', 'trap "echo got TERM; exit 143" TERM; touch /shared/ready; sleep 30 & wait $!'] },
      { mounts: [{ source: shared, destination: '/shared' }] },
    );
    const running = runContainer({ runtime: runc, bundleDir, containerId: id, stateRoot, stdio: 'pipe' });
    // Started, as the run tells it: runc writes the pid file a moment after the command began.
    const started = () => existsSync(join(shared, 'ready')) && existsSync(join(bundleDir, 'init.pid'));
    for (let i = 0; i < 400 && !started(); i++) await sleep(25);
    expect(started()).toBe(true);
    process.kill(process.pid, 'SIGTERM');
    const r = await running;
    expect(r.stdout).toBe('got TERM\n');
    expect(r.exitCode).toBe(143);
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });

  it('kills and cleans up on abort', async () => {
    const shared = join(dir, `shared-${seq}`);
    await mkdir(shared);
    const { id, bundleDir } = await bundle(
      { Cmd: ['sh', '-c', 'touch /shared/ready; sleep 30'] },
      { mounts: [{ source: shared, destination: '/shared' }] },
    );
    const ac = new AbortController();
    const running = runContainer({ runtime: runc, bundleDir, containerId: id, stateRoot, stdio: 'pipe', signal: ac.signal });
    for (let i = 0; i < 400 && !existsSync(join(shared, 'ready')); i++) await sleep(25);
    ac.abort();
    await expect(running).rejects.toMatchObject({ code: 'ABORTED' });
    expect(containerExists(id)).toBe(false);
  });

  it('surfaces a command that is not there as COMMAND_NOT_FOUND, with the runtime\'s message when its stderr was captured', async () => {
    const err = await run({ Cmd: ['/does-not-exist'] }).catch((e: unknown) => e);
    expect(isHostpullError(err, 'COMMAND_NOT_FOUND')).toBe(true);
    expect((err as Error).message).toContain('"/does-not-exist"');
    expect((err as Error).message).toContain('no such file or directory');
  });

  it('surfaces a runtime failure with the runtime name and its message, not taking "no such file" for the command', async () => {
    const err = await run({ Cmd: ['true'] }, { mounts: [{ source: join(dir, 'no-such-source'), destination: '/x' }] }).catch((e: unknown) => e);
    expect(isHostpullError(err, 'RUNTIME_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/^runc /);
    expect((err as Error).message).toContain('no-such-source');
  });

  it('a SIGTERM before the runtime is spawned ends the run with ABORTED naming it, and hands over at once', async () => {
    const { id, bundleDir } = await bundle({ Cmd: ['sleep', '30'] });
    let taken = 0;
    const running = runContainer({ runtime: runc, bundleDir, containerId: id, stateRoot, stdio: 'pipe', onSignalsTaken: () => taken++ });
    expect(taken).toBe(1);
    process.kill(process.pid, 'SIGTERM');
    await expect(running).rejects.toMatchObject({ code: 'ABORTED', details: { signal: 'SIGTERM' } });
    expect(containerExists(id)).toBe(false);
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });

  it('refuses a terminal bundle when stdin is not a terminal', async () => {
    const { id, bundleDir } = await bundle({ Cmd: ['sh'] }, { tty: true });
    await expect(runContainer({ runtime: runc, bundleDir, containerId: id, stateRoot, stdio: 'pipe' })).rejects.toMatchObject({
      code: 'TTY_UNAVAILABLE',
    });
  });
});

describe('cleanupStaleContainers', () => {
  it('deletes a created-but-never-started container of ours and keeps one whose owner is alive', async () => {
    const stale = await bundle({ Cmd: ['sleep', '30'] });
    const live = await bundle({ Cmd: ['sleep', '30'] });
    await writeOwner(live.bundleDir); // this test process: alive
    for (const b of [stale, live]) {
      // stdio ignored: a created container's init keeps the runtime's stdio open until started.
      const r = spawnSync(runc.path, [`--root=${stateRoot}`, 'create', '--bundle', b.bundleDir, b.id], { stdio: 'ignore' });
      expect(r.status).toBe(0);
    }
    expect(containerExists(stale.id)).toBe(true);
    const removed = await cleanupStaleContainers(stateRoot, containersDir);
    expect(removed).toEqual([stale.id]);
    expect(containerExists(stale.id)).toBe(false);
    expect(containerExists(live.id)).toBe(true);
  });

  it('leaves containers whose bundle is not under containersDir, and copes with a missing state root', async () => {
    const { id } = await bundle({ Cmd: ['sleep', '30'] });
    const r = spawnSync(runc.path, [`--root=${stateRoot}`, 'create', '--bundle', join(containersDir, id), id], { stdio: 'ignore' });
    expect(r.status).toBe(0);
    const elsewhere = join(dir, 'other-containers');
    await mkdir(elsewhere, { recursive: true });
    expect(await cleanupStaleContainers(stateRoot, elsewhere)).toEqual([]);
    expect(containerExists(id)).toBe(true);
    expect(await cleanupStaleContainers(join(dir, 'no-such-state'), containersDir)).toEqual([]);
  });
});

describe('detectRuntime', () => {
  it('picks a working runtime (runc here) and caches the verdict', async () => {
    const cacheRoot = join(dir, 'detect-state');
    const info = await detectRuntime(undefined, { stateRoot: cacheRoot });
    expect(info.name).toBe('runc');
    expect(info.version).toMatch(/^\d+\.\d+/);
    expect((await readdir(cacheRoot)).filter((f) => f.includes('probe'))).toHaveLength(1);
    expect(await detectRuntime(undefined, { stateRoot: cacheRoot })).toEqual(info);
  });

  it('knows a cached verdict by the binary file: no --version run until the file changes', async () => {
    // A runc that logs how it is called, then is the real one.
    const bin = join(dir, 'logging-runtime');
    await mkdir(bin, { recursive: true });
    const runc = join(bin, 'runc');
    const calls = join(bin, 'calls.log');
    await writeFile(runc, `#!/bin/sh\necho "$1" >> '${calls}'\nexec /usr/sbin/runc "$@"\n`);
    await chmod(runc, 0o755);
    const cacheRoot = join(dir, 'detect-by-file');
    const versionRuns = async () => (await readFile(calls, 'utf8')).split('\n').filter((l) => l === '--version').length;

    const first = await detectRuntime(runc, { stateRoot: cacheRoot });
    expect(first).toMatchObject({ name: 'runc', path: runc, version: expect.stringMatching(/^\d+\.\d+/) });
    expect(await versionRuns()).toBe(1);
    expect(await detectRuntime(runc, { stateRoot: cacheRoot })).toEqual(first);
    expect(await versionRuns()).toBe(1);
    // An upgrade replaces the file: asked again, and probed again.
    const later = new Date(Date.now() + 60_000);
    await utimes(runc, later, later);
    expect(await detectRuntime(runc, { stateRoot: cacheRoot })).toEqual(first);
    expect(await versionRuns()).toBe(2);
  });

  it('does not remember a failure: a runtime that failed once is probed again, and used once it works', async () => {
    // A runc that refuses to run containers while a flag file exists (a transient fault).
    const bin = join(dir, 'flaky-runtime');
    await mkdir(bin, { recursive: true });
    const runc = join(bin, 'runc');
    const flag = join(bin, 'broken');
    await writeFile(runc, `#!/bin/sh\nif [ "$1" != "--version" ] && [ -e '${flag}' ]; then echo 'runc: transient failure' >&2; exit 1; fi\nexec /usr/sbin/runc "$@"\n`);
    await chmod(runc, 0o755);
    await writeFile(flag, '');
    const cacheRoot = join(dir, 'detect-flaky');
    await expect(detectRuntime(runc, { stateRoot: cacheRoot })).rejects.toMatchObject({ code: 'RUNTIME_UNUSABLE' });
    await rm(flag);
    expect(await detectRuntime(runc, { stateRoot: cacheRoot })).toMatchObject({ name: 'runc', path: runc });
  });

  it('a probe removes the directories of probes whose process was killed, and leaves a live one\'s', async () => {
    const dead = spawnSync('true').pid!;
    const killed = join(tmpdir(), `hostpull-probe-${dead}-killed`);
    const live = join(tmpdir(), `hostpull-probe-${process.pid}-live`);
    const old = join(tmpdir(), 'hostpull-probe-unnamed-old');
    try {
      for (const d of [killed, live, old]) await mkdir(join(d, 'rootfs'), { recursive: true });
      const hoursAgo = new Date(Date.now() - 2 * 3600_000);
      await utimes(old, hoursAgo, hoursAgo);
      // A store with no verdict yet: the probe runs.
      await detectRuntime(undefined, { stateRoot: join(dir, 'detect-sweep') });
      expect([killed, live, old].map((d) => existsSync(d))).toEqual([false, true, false]);
    } finally {
      for (const d of [killed, live, old]) await rm(d, { recursive: true, force: true });
    }
  });

  it('reports why a forced runtime cannot be used, naming it', async () => {
    const err = await detectRuntime('crun', { stateRoot: join(dir, 'detect-state') }).catch((e: unknown) => e);
    expect(isHostpullError(err)).toBe(true);
    expect((err as Error).message).toContain('crun');
  });

  it('fails clearly for a runtime that is not installed', async () => {
    await expect(detectRuntime('no-such-runtime-xyz')).rejects.toMatchObject({ code: 'RUNTIME_NOT_FOUND' });
  });
});
