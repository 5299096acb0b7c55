/**
 * `hostpull run` around the container's start, through the CLI with real runc: a signal at any
 * point before the command runs ends the run cleanly with the shell's status for it (130/143),
 * one after reaches the container; `-t` without a terminal is a usage error before any request;
 * a command that cannot be started exits 127/126 (125 for other runtime failures) with the
 * runtime's message printed once.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectChild, runCli, spawnCli, type CliResult } from '../../helpers/cli.js';
import { pushFixtureSet } from '../../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { makeTempDir, mountsBelow, removeTempDir } from '../../helpers/tmp.js';

const IMAGE = 'JDK11.0-GRD7.0';
let registry: TestRegistry;
const temps: string[] = [];
/** A directory with a `runc` that sleeps a second before each `run`, then is the real one. */
let slowRuncDir: string;

async function tempDir(prefix: string): Promise<string> {
  const d = await makeTempDir(prefix);
  temps.push(d);
  return d;
}

function hostpull(root: string, args: string[], env: Record<string, string> = {}) {
  return runCli(['--root', root, '--server', registry.host, ...args], { timeoutMs: 120_000, env });
}

beforeAll(async () => {
  registry = await startRegistry();
  await pushFixtureSet(registry.url, { composites: [IMAGE] });
  slowRuncDir = await tempDir('slow-runc');
  // A runtime whose start takes a second: a window in which a signal finds the container being
  // started, wide enough that the test does not race it.
  await writeFile(join(slowRuncDir, 'runc'), '#!/bin/sh\nfor a in "$@"; do [ "$a" = run ] && { sleep 1; break; }; done\nexec /usr/sbin/runc "$@"\n');
  await chmod(join(slowRuncDir, 'runc'), 0o755);
});

afterAll(async () => {
  await registry?.stop();
  for (const d of temps) await removeTempDir(d);
});

/** Resolves once `text` has appeared in what `child` wrote to `stream`. */
function waitForOutput(child: ChildProcess, stream: 'stdout' | 'stderr', text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (b: Buffer) => {
      seen += b.toString('utf8');
      if (seen.includes(text)) {
        child[stream]!.off('data', onData);
        resolve();
      }
    };
    child[stream]!.on('data', onData);
    child.once('exit', () => reject(new Error(`exited before "${text}" appeared: ${seen}`)));
  });
}

async function leftovers(root: string): Promise<{ containers: string[]; mounts: string[] }> {
  const dir = join(root, 'containers');
  return { containers: existsSync(dir) ? await readdir(dir) : [], mounts: await mountsBelow(dir) };
}

describe('a signal around the container start', () => {
  /** The stored image and the runtime's verdict first, so the signalled run goes straight to the start. */
  async function preparedRoot(prefix: string, env: Record<string, string>): Promise<string> {
    const root = await tempDir(prefix);
    const r = await hostpull(root, ['run', IMAGE, '--', 'true'], env);
    expect(r.code, r.stderr).toBe(0);
    return root;
  }

  /**
   * Starts a run whose command exits 9 on SIGTERM; resolves once the command runs and runc has
   * written its pid file, a moment after (the run counts the command started from then on; a
   * signal in between stops the container: exit 143, also clean).
   */
  async function commandRunning(root: string): Promise<{ child: ChildProcess; done: Promise<CliResult>; pidFile: string }> {
    const child = spawnCli(['--root', root, '--server', registry.host, 'run', '--pull', 'never', IMAGE, '--', 'sh', '-c', 'trap "exit 9" TERM; echo ready; sleep 30 & wait']);
    const done = collectChild(child, { timeoutMs: 60_000 });
    await waitForOutput(child, 'stdout', 'ready');
    const [id] = await readdir(join(root, 'containers'));
    const pidFile = join(root, 'containers', id!, 'init.pid');
    for (let i = 0; !existsSync(pidFile); i++) {
      if (i > 200) throw new Error('runc wrote no pid file');
      await new Promise((res) => setTimeout(res, 10));
    }
    return { child, done, pidFile };
  }

  /** Starts a run whose command would exit 9 on SIGINT/SIGTERM, and signals it once `waitFor` is logged. */
  async function signalledRun(root: string, env: Record<string, string>, waitFor: string, sig: NodeJS.Signals): Promise<CliResult> {
    const child = spawnCli(['--root', root, '--server', registry.host, '--log-level', 'debug', 'run', '--pull', 'never', IMAGE, '--', 'sh', '-c', 'trap "exit 9" INT TERM; sleep 5 & wait'], { env });
    const done = collectChild(child, { timeoutMs: 60_000 });
    await waitForOutput(child, 'stderr', waitFor);
    child.kill(sig);
    return done;
  }

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('%s while the runtime starts the container: the start is stopped, exit %i, nothing left', async (sig, code) => {
    const env = { PATH: `${slowRuncDir}:${process.env['PATH']}` };
    const root = await preparedRoot('start-signal', env);
    // Logged just before the runtime is spawned; the slow runtime then takes a second to start.
    const r = await signalledRun(root, env, 'debug: starting container runtime=', sig);
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(code);
    expect(r.stderr).toContain(`hostpull: interrupted by ${sig}`);
    expect(r.stderr).not.toMatch(/runc run failed/);
    expect(await leftovers(root)).toEqual({ containers: [], mounts: [] });
  }, 120_000);

  it('SIGTERM as the run hands its signals to the container: exit 143, nothing left', async () => {
    const root = await preparedRoot('handover-signal', {});
    // Logged when the run's own SIGINT/SIGTERM handlers are released, before the runtime exists:
    // before the fix a signal here found no handler and killed the process with the rootfs mounted.
    const r = await signalledRun(root, {}, 'info: starting container runtime=', 'SIGTERM');
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(143);
    expect(r.stderr).toContain('hostpull: interrupted by SIGTERM');
    expect(await leftovers(root)).toEqual({ containers: [], mounts: [] });
  }, 120_000);

  it('a signal reaches the container even when its pid file went after the start (the bundle cleaned under a live run)', async () => {
    const root = await preparedRoot('pidfile-gone', {});
    const { child, done, pidFile } = await commandRunning(root);
    // The run has seen the start by now (it watches for the file); then the file goes.
    await new Promise((res) => setTimeout(res, 100));
    await rm(pidFile);
    child.kill('SIGTERM');
    const r = await done;
    expect(r.timedOut).toBe(false);
    expect(r.code, r.stderr).toBe(9);
  }, 120_000);

  it('SIGTERM once the command runs reaches the container: its trap decides the exit code', async () => {
    const root = await preparedRoot('running-signal', {});
    const { child, done } = await commandRunning(root);
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code, r.stderr).toBe(9);
    expect(r.stderr).toBe('');
    expect(await leftovers(root)).toEqual({ containers: [], mounts: [] });
  }, 120_000);
});

describe('a signal while the run waits for the runtime, its rootfs mounted', () => {
  /**
   * A store with the image but no runtime verdict, and the slow runc: the run mounts the rootfs,
   * then waits a second for the runtime probe. Resolves with the run's result after `sig` came
   * in that second.
   */
  async function signalledWhileProbing(prefix: string, runArgs: string[], sig: NodeJS.Signals): Promise<{ r: CliResult; root: string }> {
    const root = await tempDir(prefix);
    const env = { PATH: `${slowRuncDir}:${process.env['PATH']}` };
    expect((await hostpull(root, ['pull', IMAGE], env)).code).toBe(0);
    const child = spawnCli(['--root', root, '--server', registry.host, 'run', '--pull', 'never', ...runArgs, IMAGE, '--', 'true'], { env });
    const done = collectChild(child, { timeoutMs: 60_000 });
    const containers = join(root, 'containers');
    for (let i = 0; (await mountsBelow(containers)).length === 0; i++) {
      if (i > 500 || child.exitCode !== null) throw new Error(`the rootfs was never mounted: ${(await done).stderr}`);
      await new Promise((res) => setTimeout(res, 10));
    }
    child.kill(sig);
    return { r: await done, root };
  }

  it.each([
    ['SIGHUP', 129],
    ['SIGQUIT', 131],
  ] as const)('%s (a hangup, a quit) ends the run as SIGTERM does: exit %i, nothing left', async (sig, code) => {
    const { r, root } = await signalledWhileProbing('hup', [], sig);
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(code);
    expect(r.stderr).toContain(`interrupted by ${sig}`);
    expect(await leftovers(root)).toEqual({ containers: [], mounts: [] });
  }, 120_000);

  it('--keep keeps only a container that ran: one interrupted before its command is removed', async () => {
    const { r, root } = await signalledWhileProbing('keep-unstarted', ['--keep', '--name', 'never-ran'], 'SIGTERM');
    expect(r.code, r.stderr).toBe(143);
    expect(await leftovers(root)).toEqual({ containers: [], mounts: [] });
    expect(JSON.parse((await hostpull(root, ['ps', '--json'])).stdout)).toEqual([]);
    // Its name is free again.
    expect((await hostpull(root, ['run', '--pull', 'never', '--name', 'never-ran', IMAGE, '--', 'true'])).code).toBe(0);
  }, 120_000);
});

describe('-t without a terminal', () => {
  it('run -t is a usage error before anything is asked of the registry', async () => {
    const root = await tempDir('tty');
    const mark = await registry.mark();
    const r = await hostpull(root, ['run', '-t', IMAGE, '--', 'true']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^hostpull: -t: stdin is not a terminal\n/);
    expect(await registry.since(mark)).toEqual([]);
    expect(existsSync(join(root, 'blobs')) ? await readdir(join(root, 'blobs'), { recursive: true }) : []).not.toContainEqual(expect.stringMatching(/[0-9a-f]{64}$/));
  });

  it('exec -t is a usage error before the container is looked up', async () => {
    const root = await tempDir('tty-exec');
    const r = await hostpull(root, ['exec', '-t', 'no-such-container', '--', 'sh']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^hostpull: -t: stdin is not a terminal\n/);
  });
});

describe('a command the runtime cannot start', () => {
  let root: string;
  beforeAll(async () => {
    root = await tempDir('start-failure');
    const r = await hostpull(root, ['run', IMAGE, '--', 'true']);
    expect(r.code, r.stderr).toBe(0);
  }, 120_000);

  const count = (text: string, part: string) => text.split(part).length - 1;

  it.each([
    ['nonexistent', 127, 'executable file not found in $PATH'],
    ['/no/such/file', 127, 'no such file or directory'],
    ['/etc/passwd', 126, 'permission denied'],
  ])('run -- %s exits %i and prints the runtime\'s message once', async (command, code, said) => {
    const r = await hostpull(root, ['run', '--pull', 'never', IMAGE, '--', command]);
    expect(r.code, r.stderr).toBe(code);
    expect(count(r.stderr, said), r.stderr).toBe(1);
    expect(r.stderr).toContain(`hostpull: the command "${command}"`);
    expect(await leftovers(root)).toEqual({ containers: [], mounts: [] });
  });

  it('another runtime failure exits 125, told apart from a container that exits 1', async () => {
    // runc cannot make a working directory where a file is.
    const r = await hostpull(root, ['run', '--pull', 'never', '-w', '/etc/passwd', IMAGE, '--', 'true']);
    expect(r.code, r.stderr).toBe(125);
    expect(count(r.stderr, 'not a directory'), r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^hostpull: runc \S+ could not start the container \(its message is above\)$/m);
    const exit1 = await hostpull(root, ['run', '--pull', 'never', IMAGE, '--', 'sh', '-c', 'exit 1']);
    expect(exit1.code).toBe(1);
    expect(exit1.stderr).toBe('');
  });

  it('exec -- nosuch exits 127, exec -- /etc/passwd 126, a process that exits 255 255', async () => {
    const running = spawnCli(['--root', root, '--server', registry.host, 'run', '--pull', 'never', '--name', 'execme', IMAGE, '--', 'sh', '-c', 'echo ready; sleep 30']);
    const done = collectChild(running, { timeoutMs: 60_000 });
    try {
      await waitForOutput(running, 'stdout', 'ready');
      const nosuch = await hostpull(root, ['exec', 'execme', '--', 'nosuch']);
      expect(nosuch.code, nosuch.stderr).toBe(127);
      expect(count(nosuch.stderr, 'executable file not found'), nosuch.stderr).toBe(1);
      const notExec = await hostpull(root, ['exec', 'execme', '--', '/etc/passwd']);
      expect(notExec.code, notExec.stderr).toBe(126);
      const own = await hostpull(root, ['exec', 'execme', '--', 'sh', '-c', 'exit 255']);
      expect(own.code, own.stderr).toBe(255);
      expect(own.stderr).toBe('');
    } finally {
      running.kill('SIGTERM');
      await done;
    }
  }, 120_000);
});
