/**
 * What a run leaves behind, without a daemon: the container of a killed `hostpull run` (its
 * record, its name, its layers' hold), and the container `hostpull run --keep` keeps until
 * `hostpull rm`. Real registry, overlay, runc.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContentStore } from '../../../src/store/content-store.js';
import { runCli, spawnCli, type CliResult } from '../../helpers/cli.js';
import { pushFixtureSet } from '../../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { mountsBelow, useTempDir } from '../../helpers/tmp.js';

const IMAGE = 'JDK11.0-GRD7.0';
let registry: TestRegistry;
const tempDir = useTempDir('kept');

beforeAll(async () => {
  registry = await startRegistry();
  await pushFixtureSet(registry.url, { composites: [IMAGE] });
});
afterAll(async () => registry?.stop());

function hostpull(root: string, args: string[]): Promise<CliResult> {
  return runCli(['--root', root, '--server', registry.host, ...args], { timeoutMs: 120_000 });
}

interface Ps {
  id: string;
  name: string | null;
  state: string;
  ownerPid: number | null;
  exitCode: number | null;
}

async function ps(root: string): Promise<Ps[]> {
  const r = await runCli(['--root', root, 'ps', '--json']);
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as Ps[];
}

/** The store's mount records and container names, read as the next command would find them. */
async function records(root: string): Promise<{ mounts: Array<{ id: string; ownerPid: number | null; diffIds: string[] }>; names: string[]; unpacked: (d: string) => boolean }> {
  const store = await ContentStore.open(root, { reconcile: false });
  try {
    const mounts = store.mounts.list().map((m) => ({ id: m.id, ownerPid: m.ownerPid, diffIds: m.diffIds as string[] }));
    const layers = new Set(store.layers.list().map((l) => l.diffId as string));
    const names = existsSync(join(root, 'container-names')) ? await readdir(join(root, 'container-names')) : [];
    return { mounts, names, unpacked: (d) => layers.has(d) };
  } finally {
    store.close();
  }
}

async function gcAll(root: string): Promise<{ layersRemoved: number }> {
  const r = await runCli(['--root', root, 'gc', '--max-store-size', '1', '--min-age', '0s', '--json', '--no-daemon']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as { layersRemoved: number };
}

/** `hostpull run [runArgs] IMAGE -- sh -c SCRIPT` in the background; resolves once the container said "started". */
async function startRun(root: string, runArgs: string[], script: string): Promise<{ child: ChildProcess; exited: Promise<number | null> }> {
  const child = spawnCli(['--root', root, '--server', registry.host, 'run', ...runArgs, IMAGE, '--', '/bin/sh', '-c', script]);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const deadline = Date.now() + 60_000;
  while (!out.includes('started')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the container never started: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, exited };
}

describe('after a kill -9 of hostpull run, without a daemon', () => {
  it('the next run removes the leftover with its mount record and its name, so gc can collect its layers', async () => {
    const root = await tempDir('killed');
    const { child, exited } = await startRun(root, ['--name', 'victim'], 'echo started; sleep 30');
    child.kill('SIGKILL');
    await exited;
    expect(await ps(root)).toEqual([expect.objectContaining({ name: 'victim', state: 'stale' })]);

    const next = await hostpull(root, ['run', '--pull', 'never', IMAGE, '--', '/bin/true']);
    expect(next.stderr).toBe('');
    expect(next.code).toBe(0);
    expect(await ps(root)).toEqual([]);
    const after = await records(root);
    expect(after.mounts).toEqual([]);
    expect(after.names).toEqual([]);
    expect(await readdir(join(root, 'containers'))).toEqual([]);
    expect(await mountsBelow(root)).toEqual([]);
    expect((await gcAll(root)).layersRemoved).toBeGreaterThan(0);
  });

  it('the next run releases the record of a killed run whose directory is gone already (killed while removing it)', async () => {
    const root = await tempDir('half-removed');
    const { child, exited } = await startRun(root, ['--name', 'half'], 'echo started; sleep 30');
    child.kill('SIGKILL');
    await exited;
    const [stale] = await ps(root);
    // What a run killed between removing its directory and releasing its record leaves (its
    // runtime container deleted already, as a run does first).
    expect(spawnSync('runc', ['--root', join(root, 'runtime-state'), 'delete', '--force', stale!.id]).status).toBe(0);
    const dir = join(root, 'containers', stale!.id);
    expect(spawnSync('umount', ['-l', join(dir, 'rootfs')]).status).toBe(0);
    await rm(dir, { recursive: true });

    const next = await hostpull(root, ['run', '--pull', 'never', '--name', 'half', IMAGE, '--', '/bin/true']);
    expect(next.stderr).toBe('');
    expect(next.code).toBe(0);
    const after = await records(root);
    expect(after.mounts).toEqual([]);
    expect(after.names).toEqual([]);
    expect((await gcAll(root)).layersRemoved).toBeGreaterThan(0);
  });
});

describe('the container a killed run leaves running', () => {
  const runtimeHas = (root: string, id: string) => spawnSync('runc', ['--root', join(root, 'runtime-state'), 'state', id]).status === 0;

  it('is deleted from the runtime by the next run even when its directory is gone already', async () => {
    const root = await tempDir('orphan');
    const { child, exited } = await startRun(root, [], 'echo started; sleep 60');
    child.kill('SIGKILL');
    await exited;
    const [stale] = await ps(root);
    // runc runs the container on without its hostpull; then its directory goes (a remove
    // interrupted after the directory), the runtime's state staying.
    expect(runtimeHas(root, stale!.id)).toBe(true);
    const dir = join(root, 'containers', stale!.id);
    expect(spawnSync('umount', ['-l', join(dir, 'rootfs')]).status).toBe(0);
    await rm(dir, { recursive: true });

    const next = await hostpull(root, ['run', '--pull', 'never', IMAGE, '--', '/bin/true']);
    expect(next.code).toBe(0);
    expect(runtimeHas(root, stale!.id)).toBe(false);
    expect(await records(root)).toMatchObject({ mounts: [] });
  });
});

describe('hostpull run --keep', () => {
  it('keeps the container, unmounted, past later runs and gc, with its name and exit status, until rm', async () => {
    const root = await tempDir('keep');
    const r = await hostpull(root, ['run', '--keep', '--name', 'build', IMAGE, '--', '/bin/sh', '-c', 'echo data > /made-by-run; exit 3']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(3);
    const [kept, ...others] = await ps(root);
    expect(others).toEqual([]);
    expect(kept).toMatchObject({ name: 'build', state: 'exited', ownerPid: null, exitCode: 3 });
    const id = kept!.id;
    const upperFile = join(root, 'containers', id, 'upper', 'made-by-run');
    expect(await readFile(upperFile, 'utf8')).toBe('data\n');
    expect(await mountsBelow(root)).toEqual([]);
    const table = await runCli(['--root', root, 'ps']);
    expect(table.stdout).toMatch(new RegExp(`${id} .* exited \\(3\\) +build\\n`));

    // A later run leaves it; its name stays taken.
    const taken = await hostpull(root, ['run', '--pull', 'never', '--name', 'build', IMAGE, '--', '/bin/true']);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain(`the container name "build" is in use by container ${id}`);
    const plain = await hostpull(root, ['run', '--pull', 'never', IMAGE, '--', '/bin/true']);
    expect(plain.stderr).toBe('');
    expect(plain.code).toBe(0);
    expect(await readFile(upperFile, 'utf8')).toBe('data\n');
    expect(await ps(root)).toEqual([expect.objectContaining({ id, state: 'exited' })]);

    // Its layers stay: its upper layer sits over them (the image record itself is not held).
    await gcAll(root);
    const held = await records(root);
    expect(held.mounts).toEqual([expect.objectContaining({ id, ownerPid: null })]);
    expect(held.mounts[0]!.diffIds.length).toBeGreaterThan(0);
    expect(held.mounts[0]!.diffIds.filter((d) => !held.unpacked(d))).toEqual([]);

    // Not running: exec refuses it, and says how to remove it.
    const exec = await runCli(['--root', root, 'exec', 'build', '--', '/bin/true']);
    expect(exec.code).toBe(1);
    expect(exec.stderr).toContain(`container build has exited (kept by hostpull run --keep)`);

    const rm = await runCli(['--root', root, 'rm', 'build']);
    expect(rm.stderr).toBe('');
    expect(rm.code).toBe(0);
    expect(rm.stdout).toBe('build\n');
    expect(await ps(root)).toEqual([]);
    expect(existsSync(join(root, 'containers', id))).toBe(false);
    const gone = await records(root);
    expect(gone.mounts).toEqual([]);
    expect(gone.names).toEqual([]);
    expect((await gcAll(root)).layersRemoved).toBeGreaterThan(0);
    const unknown = await runCli(['--root', root, 'rm', 'build']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no container build');
  });

  it('rm refuses it while it runs; stop returns once the run kept it', async () => {
    const root = await tempDir('keep-stop');
    const { exited } = await startRun(root, ['--keep', '--name', 'web'], "echo x > /tmp/x; trap 'exit 0' TERM; echo started; while :; do sleep 0.1; done");
    const rm = await runCli(['--root', root, 'rm', 'web']);
    expect(rm.code).toBe(1);
    expect(rm.stderr).toContain('container web is running');
    const stop = await runCli(['--root', root, 'stop', 'web']);
    expect(stop.stderr).toBe('');
    expect(stop.code).toBe(0);
    expect(await exited).toBe(0);
    const [kept] = await ps(root);
    expect(kept).toMatchObject({ name: 'web', state: 'exited', exitCode: 0 });
    expect(await readFile(join(root, 'containers', kept!.id, 'upper', 'tmp', 'x'), 'utf8')).toBe('x\n');
    expect(await mountsBelow(root)).toEqual([]);
    expect((await runCli(['--root', root, 'rm', kept!.id.slice(0, 5)])).code).toBe(0);
    expect(await ps(root)).toEqual([]);
  });

  it('a kill -9 of the run still keeps it: the next run unmounts it and leaves it for rm', async () => {
    const root = await tempDir('keep-killed');
    const { child, exited } = await startRun(root, ['--keep', '--name', 'job'], 'echo kept > /made-by-run; echo started; sleep 30');
    child.kill('SIGKILL');
    await exited;
    const [killed] = await ps(root);
    // Its run was killed and nothing has kept it yet (runc may still run it): stale, not exited.
    expect(killed).toMatchObject({ name: 'job', state: 'stale', exitCode: null });

    const next = await hostpull(root, ['run', '--pull', 'never', IMAGE, '--', '/bin/true']);
    expect(next.stderr).toBe('');
    expect(next.code).toBe(0);
    expect(await ps(root)).toEqual([expect.objectContaining({ id: killed!.id, name: 'job', state: 'exited', ownerPid: null, exitCode: null })]);
    expect(await readFile(join(root, 'containers', killed!.id, 'upper', 'made-by-run'), 'utf8')).toBe('kept\n');
    expect(await mountsBelow(root)).toEqual([]);

    expect((await runCli(['--root', root, 'rm', 'job'])).code).toBe(0);
    const gone = await records(root);
    expect(gone.mounts).toEqual([]);
    expect(gone.names).toEqual([]);
    expect(await readdir(join(root, 'containers'))).toEqual([]);
  });
});
