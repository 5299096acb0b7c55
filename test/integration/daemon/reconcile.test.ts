/**
 * At start the daemon makes containers/ and the mount records agree, with one log line per
 * repair: a rootfs whose mount vanished (a reboot) is mounted again with its upper intact; a
 * record whose directory is gone is released; a directory without a record is removed. Real
 * daemon, real registry, real overlay mounts.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli } from '../../helpers/cli.js';
import { pushFixtureSet } from '../../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { mountsBelow, useTempDir } from '../../helpers/tmp.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { daemonRequest, useTestDaemons, type TestDaemon } from './daemon-process.js';

const TAG = 'JDK11.0-GRD7.0';
let registry: TestRegistry;
const tempDir = useTempDir('reconcile');
const daemonOn = useTestDaemons();

beforeAll(async () => {
  registry = await startRegistry();
  await pushFixtureSet(registry.url, { codes: ['JDK11.0', 'GRD7.0'], composites: [TAG] });
});

afterAll(async () => {
  await registry?.stop();
});

function logLines(daemon: TestDaemon, msg: string): Array<Record<string, unknown>> {
  return daemon
    .log()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);
}

describe('container reconciliation at start', () => {
  it('remounts a rootfs a reboot unmounted, releases a record without a directory, removes a directory without a record', async () => {
    const dir = await tempDir();
    let daemon = await daemonOn(dir, registry.host);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await daemonRequest(daemon.socket, 'POST', '/v1/rootfs', { reference: TAG });
      expect(r.status, r.body).toBe(201);
      ids.push(JSON.parse(r.body).id);
    }
    const [rebooted, halfRemoved, unrecorded] = ids as [string, string, string];
    const containers = join(daemon.root, 'containers');
    // Something the runtime wrote in the rootfs, which must survive the remount (it is in upper/).
    spawnSync('sh', ['-c', `echo kept > ${join(containers, rebooted, 'rootfs', 'tmp', 'state')}`]);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });

    // What a reboot does, a removal interrupted between its two steps, a record lost.
    expect(spawnSync('umount', [join(containers, rebooted, 'rootfs')]).status).toBe(0);
    expect(spawnSync('umount', [join(containers, halfRemoved, 'rootfs')]).status).toBe(0);
    await rm(join(containers, halfRemoved), { recursive: true });
    const store = await ContentStore.open(daemon.root);
    store.db.prepare('DELETE FROM mounts WHERE id = ?').run(unrecorded);
    store.close();
    // And a directory a dead process left half set up, with no record at all.
    await mkdir(join(containers, 'abcdefabcdef', 'rootfs'), { recursive: true });

    daemon = await daemonOn(dir, registry.host);
    expect(logLines(daemon, 'rootfs was not mounted (a reboot?): mounted again').map((l) => l.id)).toEqual([rebooted]);
    expect(logLines(daemon, 'rootfs record without its directory (an interrupted remove): record released').map((l) => l.id)).toEqual([halfRemoved]);
    expect(
      logLines(daemon, 'container directory without a mount record: unmounted and removed')
        .map((l) => l.id)
        .sort(),
    ).toEqual(['abcdefabcdef', unrecorded].sort());
    expect(await mountsBelow(containers)).toEqual([join(containers, rebooted, 'rootfs')]);
    expect(await readFile(join(containers, rebooted, 'rootfs', 'tmp', 'state'), 'utf8')).toBe('kept\n');
    expect(await readFile(join(containers, rebooted, 'rootfs', 'opt', 'jdk-11.0', 'VERSION'), 'utf8')).toBe('JDK11.0\n');

    // Only the remounted rootfs holds layers now: removing it lets gc free everything.
    expect((await daemonRequest(daemon.socket, 'DELETE', '/v1/rootfs', { id: rebooted })).status).toBe(204);
    expect((await daemonRequest(daemon.socket, 'POST', '/v1/gc', { maxStoreSize: 0, graceMs: 0 })).status).toBe(200);
    expect(JSON.parse((await daemon.get('/v1/stats')).body).store.layers).toBe(0);
    expect(await mountsBelow(daemon.root)).toEqual([]);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
  });

  it('leaves a container kept by run --keep unmounted and in place; keeps, unmounted, one whose keep run was killed', async () => {
    const dir = await tempDir();
    const root = join(dir, 'root');
    const containers = join(root, 'containers');
    const cli = (args: string[]) => runCli(['--root', root, '--server', registry.host, ...args], { timeoutMs: 120_000 });
    const done = await cli(['run', '--keep', '--name', 'done', TAG, '--', '/bin/sh', '-c', 'echo a > /a']);
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    const child = spawnCli(['--root', root, '--server', registry.host, 'run', '--keep', '--name', 'killed', TAG, '--', '/bin/sh', '-c', 'echo b > /b; echo started; sleep 30']);
    const exited = new Promise((r) => child.once('exit', r));
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    const deadline = Date.now() + 60_000;
    while (!out.includes('started')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the container never started: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    await exited;
    const ps = async () => JSON.parse((await cli(['ps', '--json'])).stdout) as Array<{ id: string; name: string; state: string; ownerPid: number | null }>;
    const before = await ps();
    const killed = before.find((c) => c.name === 'killed')!.id;
    const kept = before.find((c) => c.name === 'done')!.id;

    // runc runs the killed run's container on, with nobody to stop it.
    const runtimeHas = (id: string) => spawnSync('runc', ['--root', join(root, 'runtime-state'), 'state', id]).status === 0;
    expect(runtimeHas(killed)).toBe(true);
    const daemon = await daemonOn(dir, registry.host);
    // Deleted from the runtime first (it killed it), as a run's own cleanup does, then kept.
    expect(logLines(daemon, 'container of a killed hostpull run: deleted from the runtime').map((l) => l.id)).toEqual([killed]);
    expect(runtimeHas(killed)).toBe(false);
    expect(logLines(daemon, 'kept container whose run was killed: unmounted, kept until `hostpull rm`').map((l) => l.id)).toEqual([killed]);
    expect(logLines(daemon, 'rootfs was not mounted (a reboot?): mounted again')).toEqual([]);
    expect(await mountsBelow(containers)).toEqual([]);
    expect(await readFile(join(containers, kept, 'upper', 'a'), 'utf8')).toBe('a\n');
    expect(await readFile(join(containers, killed, 'upper', 'b'), 'utf8')).toBe('b\n');
    expect((await ps()).map((c) => [c.name, c.state, c.ownerPid])).toEqual(expect.arrayContaining([['done', 'exited', null], ['killed', 'exited', null]]));
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    expect((await cli(['rm', 'done', 'killed'])).code).toBe(0);
    expect(await ps()).toEqual([]);
  });
});
