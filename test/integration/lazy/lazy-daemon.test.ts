/**
 * Faults of lazy layers through the daemon's rootfs API and real parts: a registry that stops
 * answering in the middle of a lazy read, and a daemon (and its FUSE helper) killed with -9
 * while a lazy container runs.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lgetxattr } from '../../../src/native/index.js';
import { listMountsUnder } from '../../../src/rootfs/index.js';
import { daemonRequest, startTestDaemon, type TestDaemon } from '../daemon/daemon-process.js';
import { killDaemonAndLazyHelper, lazyHelperOf, noise, startLazyEnv, type LazyEnv } from './lazy-env.js';

const exec = promisify(execFile);
let env: LazyEnv;
const FETCH_TIMEOUT_MS = 1500;
const ATTEMPTS = 2;

/**
 * TOOLD1.0's big.bin: above the size up to which a lazy layer fetches a file whole once three of
 * its spans were read (LazyReader's 16 MiB), so a reader walking it waits for spans a few at a
 * time, and the registry can be stopped in the middle of its reads.
 */
const TOOLD_BIG = 17 * 1024 * 1024;

beforeAll(async () => {
  env = await startLazyEnv({ 'TOOLD1.0': TOOLD_BIG, 'TOOLE1.0': 1024 * 1024 });
}, 240_000);

afterAll(async () => {
  env?.registry.resume();
  await env?.close();
});

function daemonArgs(): string[] {
  // A long background delay keeps the layer lazy for the whole test.
  return ['--lazy-fetch-timeout', `${FETCH_TIMEOUT_MS}ms`, '--lazy-fetch-attempts', String(ATTEMPTS), '--lazy-background-delay', '10m'];
}

async function prepare(d: TestDaemon, reference: string, lazy: boolean, args?: string[]): Promise<{ id: string; rootfs: string; bundle: string }> {
  const r = await daemonRequest(d.socket, 'POST', '/v1/rootfs', { reference, lazy, ...(args ? { args } : {}) });
  expect(r.status, r.body).toBe(201);
  return JSON.parse(r.body) as { id: string; rootfs: string; bundle: string };
}

/** Reads a file in a child process (the test's own event loop stays free); resolves with its sha256 or the error text and the time taken. */
async function readFileTimed(path: string): Promise<{ sha?: string; error?: string; ms: number }> {
  const t0 = performance.now();
  try {
    const { stdout } = await exec('sha256sum', [path], { timeout: 120_000 });
    return { sha: stdout.split(' ')[0]!, ms: performance.now() - t0 };
  } catch (err) {
    return { error: (err as { stderr?: string }).stderr ?? String(err), ms: performance.now() - t0 };
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('lazy layers in the daemon', () => {
  it('a registry stopped in the middle of a lazy read: EIO within the bound, other containers unaffected, a retry after it returns succeeds', async () => {
    const root = join(env.work, 'daemon1');
    const d = await startTestDaemon({ root, socket: join(env.work, 'd1.sock'), server: env.serverHost, args: daemonArgs() });
    try {
      const whole = await prepare(d, 'TOOLE1.0', false);
      const lazy = await prepare(d, 'TOOLD1.0', true);
      expect(listMountsUnder(join(root, 'lazy')).map((m) => m.fsType)).toEqual(['fuse.hostpull']);
      // The helper runs with the daemon's V8 flags (set at run time, so not inherited by a fork).
      const helperArgv = (await readFile(`/proc/${(await lazyHelperOf(d, root)).pid}/cmdline`, 'utf8')).split('\0');
      expect(helperArgv).toContain('--interrupt-budget=270336');
      expect(helperArgv).not.toContain('--liftoff-only');
      // The view has no extended attributes (a layer with any is never lazy) and says so the way
      // the kernel remembers: no round trip to the helper for each lookup's trusted.overlay.* and
      // each exec's security.capability.
      const view = listMountsUnder(join(root, 'lazy'))[0]!.mountPoint;
      for (const file of ['opt/toold/lib/small.txt', 'opt/toold/bin/toold']) expect(() => lgetxattr(join(view, file), 'security.capability')).toThrow(/EOPNOTSUPP|ENOTSUP/);
      expect((await readFileTimed(join(lazy.rootfs, 'opt/toold/lib/small.txt'))).sha).toBe(sha(Buffer.from('toold small file\n')));

      const reading = readFileTimed(join(lazy.rootfs, 'opt/toold/lib/big.bin'));
      await new Promise((r) => setTimeout(r, 30));
      env.registry.pause();
      const failed = await reading;
      expect(failed.error).toMatch(/Input\/output error/);
      // Bounded by the read deadline, attempts × (per-attempt bound + backoff), not hung until a
      // socket timeout (undici's 300 s); the rest is slack for a loaded machine (13 s seen at load 10).
      expect(failed.ms).toBeLessThan(ATTEMPTS * (FETCH_TIMEOUT_MS + 1000) + 20_000);
      expect(d.log()).toContain('lazy read failed: EIO to the reader');

      // Meanwhile the daemon serves (its metrics say how each layer came), and a container over unpacked layers reads everything.
      const metrics = await d.get('/metrics');
      expect(metrics.status).toBe(200);
      expect(metrics.body).toContain(`hostpull_layer_arrival{layer="${env.published.get('TOOLD1.0')!.layerDigest}",arrival="lazy",reason=""}`);
      expect(metrics.body).toMatch(/hostpull_layers_by_arrival\{arrival="whole"\} [1-9]/);
      expect((await readFileTimed(join(whole.rootfs, 'opt/toole/lib/big.bin'))).sha).toBe(sha(noise(1024 * 1024, 'toole')));

      env.registry.resume();
      expect((await readFileTimed(join(lazy.rootfs, 'opt/toold/lib/big.bin'))).sha).toBe(sha(noise(TOOLD_BIG, 'toold')));
      for (const id of [whole.id, lazy.id]) expect((await daemonRequest(d.socket, 'DELETE', '/v1/rootfs', { id })).status).toBe(204);
    } finally {
      env.registry.resume();
      await d.stop();
    }
    expect(listMountsUnder(join(root, 'lazy'))).toEqual([]);
  }, 180_000);

  it('kill -9 of the daemon and its helper with a lazy container running: after a restart no stale mount is left and new containers work', async () => {
    const root = join(env.work, 'daemon2');
    const socket = join(env.work, 'd2.sock');
    const state = join(env.work, 'runc-state');
    const d = await startTestDaemon({ root, socket, server: env.serverHost, args: daemonArgs() });
    let containerId: string | undefined;
    try {
      const c = await prepare(d, 'TOOLD1.0', true, ['/bin/sh', '-c', 'toold; sleep 600']);
      containerId = `lazy-kill-${c.id}`;
      const run = spawnSync('runc', ['--root', state, 'run', '--detach', '--bundle', c.bundle, containerId], { stdio: 'ignore', timeout: 30_000 });
      expect(run.status).toBe(0);
      await killDaemonAndLazyHelper(d, root);
      expect(listMountsUnder(join(root, 'lazy')).length).toBeGreaterThan(0);
    } finally {
      if (d.child.exitCode === null && d.child.signalCode === null) await d.stop();
    }

    const d2 = await startTestDaemon({ root, socket, server: env.serverHost, args: daemonArgs() });
    try {
      // The stale FUSE mount and the dead daemon's rootfs are gone.
      expect(listMountsUnder(join(root, 'lazy'))).toEqual([]);
      expect(listMountsUnder(join(root, 'containers'))).toEqual([]);
      const again = await prepare(d2, 'TOOLD1.0', true);
      expect((await readFileTimed(join(again.rootfs, 'opt/toold/bin/toold'))).error).toBeUndefined();
      expect((await readFileTimed(join(again.rootfs, 'opt/toold/lib/big.bin'))).sha).toBe(sha(noise(TOOLD_BIG, 'toold')));
      expect((await daemonRequest(d2.socket, 'DELETE', '/v1/rootfs', { id: again.id })).status).toBe(204);
    } finally {
      await d2.stop();
      if (containerId) spawnSync('runc', ['--root', state, 'delete', '--force', containerId], { stdio: 'ignore' });
    }
    expect(listMountsUnder(join(root, 'lazy'))).toEqual([]);
  }, 180_000);
});
