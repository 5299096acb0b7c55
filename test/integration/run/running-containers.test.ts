/**
 * `hostpull exec`, `stop`, `kill` and `run --name` on containers that `hostpull run` is running:
 * real registry, overlay, runc.
 */
import type { ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli } from '../../helpers/cli.js';
import { pushFixtureSet } from '../../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { mountsBelow, useTempDir } from '../../helpers/tmp.js';

const IMAGE = 'JDK11.0-GRD7.0';
let registry: TestRegistry;
const tempDir = useTempDir('exec');

beforeAll(async () => {
  registry = await startRegistry();
  await pushFixtureSet(registry.url, { composites: [IMAGE] });
});
afterAll(async () => registry?.stop());

/** The container's pid 1: writes a file, says it started, then waits; a SIGTERM ends it (pid 1 has no default handler). */
const SCRIPT = "echo hello > /tmp/made-by-run; trap 'exit 0' TERM; echo started; while :; do sleep 0.1; done";

/** Starts `hostpull run [runArgs] IMAGE` of `script`; resolves once it started, with its id (from `hostpull ps`). */
async function startContainer(
  root: string,
  runArgs: string[] = [],
  script = SCRIPT,
): Promise<{ child: ChildProcess; id: string; exited: Promise<number | null>; out: () => string }> {
  const child = spawnCli(['--root', root, '--server', registry.host, 'run', '-e', 'FROM_RUN=yes', ...runArgs, IMAGE, '--', '/bin/sh', '-c', script]);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  const deadline = Date.now() + 60_000;
  while (!out.includes('started')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the container never started: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const ps = JSON.parse((await runCli(['--root', root, 'ps', '--json'])).stdout) as Array<{ id: string; state: string }>;
  const running = ps.filter((c) => c.state === 'running');
  expect(running).toHaveLength(1);
  return { child, id: running[0]!.id, exited, out: () => out };
}

describe('hostpull exec', () => {
  it('runs in the same container: its files, environment and pid 1; with -e, -u and -w; the exit status is the command\'s', async () => {
    const root = await tempDir('store');
    const { child, id, exited } = await startContainer(root);
    try {
      const exec = (args: string[]) => runCli(['--root', root, 'exec', ...args], { timeoutMs: 60_000 });
      const r = await exec([id.slice(0, 4), '--', '/bin/sh', '-c', 'cat /tmp/made-by-run; echo $FROM_RUN; cat /proc/1/cmdline | tr "\\0" " "; echo; exit 3']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(3);
      expect(r.stdout).toBe(`hello\nyes\n/bin/sh -c ${SCRIPT} \n`);

      const as = await exec(['-u', 'nobody', '-w', '/tmp', '-e', 'EXTRA=1', id, '--', '/bin/sh', '-c', 'id -u; pwd; echo $EXTRA $FROM_RUN']);
      expect(as.code).toBe(0);
      expect(as.stdout).toBe('65534\n/tmp\n1 yes\n');

      const unknown = await exec(['ffffffffffff', '--', '/bin/true']);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain('no container ffffffffffff');
      expect(unknown.stderr).toContain('`hostpull ps`');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    expect(await readdir(join(root, 'containers'))).toEqual([]);
    expect(await mountsBelow(root)).toEqual([]);
  });

  it('refuses a container whose hostpull run was killed, and names why', async () => {
    const root = await tempDir('stale');
    const { child, id, exited } = await startContainer(root);
    child.kill('SIGKILL');
    await exited;
    const r = await runCli(['--root', root, 'exec', id, '--', '/bin/true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`container ${id} is not running: the hostpull run that started it was killed`);
    // The next run removes the leftover, as after any kill -9.
    expect((await runCli(['--root', root, '--server', registry.host, 'run', IMAGE, '--', '/bin/true'], { timeoutMs: 60_000 })).code).toBe(0);
    expect(await mountsBelow(root)).toEqual([]);
  });

  it('--name: exec and ps use it; a second run with the name is refused before any request; it is free again once the first ends', async () => {
    const root = await tempDir('named');
    const { child, id, exited } = await startContainer(root, ['--name', 'builder']);
    try {
      const ps = JSON.parse((await runCli(['--root', root, 'ps', '--json'])).stdout) as Array<{ id: string; name: string }>;
      expect(ps).toEqual([expect.objectContaining({ id, name: 'builder' })]);
      const r = await runCli(['--root', root, 'exec', 'builder', '--', '/bin/sh', '-c', 'cat /tmp/made-by-run']);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('hello\n');
      const mark = await registry.mark();
      const taken = await runCli(['--root', root, '--server', registry.host, 'run', '--name', 'builder', IMAGE, '--', '/bin/true']);
      expect(taken.code).toBe(1);
      expect(taken.stderr).toContain(`the container name "builder" is in use by container ${id}`);
      expect(await registry.since(mark)).toEqual([]);
      const bad = await runCli(['--root', root, '--server', registry.host, 'run', '--name', '-x', IMAGE, '--', '/bin/true']);
      expect(bad.code).toBe(2);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    const again = await runCli(['--root', root, '--server', registry.host, 'run', '--name', 'builder', IMAGE, '--', '/bin/true'], { timeoutMs: 60_000 });
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect(await readdir(join(root, 'container-names'))).toEqual([]);
  });

  it('--name: two runs asking for the same name at once, exactly one gets it; a killed run\'s name is taken over', async () => {
    const root = await tempDir('race');
    // Pulled first, so both runs reach the claim about together.
    expect((await runCli(['--root', root, '--server', registry.host, 'pull', IMAGE])).code).toBe(0);
    const runs = [0, 1].map(() => {
      const child = spawnCli(['--root', root, '--server', registry.host, 'run', '--name', 'once', IMAGE, '--', '/bin/sh', '-c', SCRIPT]);
      let out = '';
      let err = '';
      child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
      const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      return { child, exited, out: () => out, err: () => err };
    });
    const deadline = Date.now() + 60_000;
    // One starts its container; the other ends with NAME_IN_USE.
    while (!(runs.some((r) => r.out().includes('started')) && runs.some((r) => r.child.exitCode !== null))) {
      if (Date.now() > deadline) throw new Error(`no outcome: ${runs.map((r) => r.out() + r.err()).join(' / ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const winner = runs.find((r) => r.out().includes('started'))!;
    const loser = runs.find((r) => r !== winner)!;
    expect(await loser.exited).toBe(1);
    expect(loser.err()).toContain('the container name "once" is in use');
    winner.child.kill('SIGKILL');
    await winner.exited;
    // Its container is stale now: the name goes to the next run that asks for it.
    const next = await runCli(['--root', root, '--server', registry.host, 'run', '--name', 'once', IMAGE, '--', '/bin/true'], { timeoutMs: 60_000 });
    expect(next.stderr).toBe('');
    expect(next.code).toBe(0);
    expect(await mountsBelow(root)).toEqual([]);
  });
});

describe('hostpull stop / kill', () => {
  it('stop sends SIGTERM and returns once the run removed the container; the run exits with its status', async () => {
    const root = await tempDir('stop');
    const { exited } = await startContainer(root, ['--name', 'web']);
    const r = await runCli(['--root', root, 'stop', 'web']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('web\n');
    expect(await exited).toBe(0); // the container's trap: exit 0
    expect(JSON.parse((await runCli(['--root', root, 'ps', '--json'])).stdout)).toEqual([]);
    expect(await mountsBelow(root)).toEqual([]);
  });

  it('stop of several: one that fails (unknown) does not keep the others from stopping; the exit code says it failed', async () => {
    const root = await tempDir('stop-many');
    const { child, exited } = await startContainer(root, ['--name', 'web']);
    try {
      const r = await runCli(['--root', root, 'stop', 'nosuchcontainer', 'web']);
      expect(r.stdout).toBe('web\n');
      expect(r.stderr).toContain('no container nosuchcontainer');
      expect(r.code).toBe(1);
      expect(await exited).toBe(0);
      expect(await mountsBelow(root)).toEqual([]);
    } finally {
      // Failed before web stopped: its run must not outlive the test (and its temp dir).
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    }
  });

  it('stop -t: a container that ignores SIGTERM (a pid 1 without a handler) gets SIGKILL after the time', async () => {
    const root = await tempDir('stop-kill');
    const { id, exited } = await startContainer(root, [], 'echo started; while :; do sleep 0.1; done');
    const r = await runCli(['--root', root, 'stop', '-t', '500ms', id.slice(0, 6)]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${id} (killed after the timeout)\n`);
    expect(await exited).toBe(137);
    expect(await mountsBelow(root)).toEqual([]);
  });

  it('kill -s delivers the signal to the container\'s init; an unknown signal or container is refused', async () => {
    const root = await tempDir('kill');
    const { id, exited, out } = await startContainer(root, [], "trap 'echo got USR1; exit 5' USR1; echo started; while :; do sleep 0.1; done");
    expect((await runCli(['--root', root, 'kill', '-s', 'BOGUS', id])).code).toBe(2);
    const unknown = await runCli(['--root', root, 'kill', 'nosuchcontainer']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no container nosuchcontainer');
    const r = await runCli(['--root', root, 'kill', '-s', 'SIGUSR1', id]);
    expect(r.code).toBe(0);
    expect(await exited).toBe(5);
    expect(out()).toContain('got USR1');
    expect(await mountsBelow(root)).toEqual([]);
  });
});
