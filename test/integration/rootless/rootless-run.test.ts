/**
 * `hostpull run` as an unprivileged user (nobody, 65534): pull and unpack into the user's
 * XDG store, then mount overlayfs (`userxattr`) and run runc inside a private user+mount
 * namespace. CI runs as root, so each CLI is started with uid/gid 65534 (libuv also drops the
 * supplementary groups) and a HOME/XDG_DATA_HOME owned by that user.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectChild, type CliResult } from '../../helpers/cli.js';
import { useStagedCli } from '../../helpers/staged-cli.js';
import { buildLayer, baseFiles, layerFromTar, pushFixtureSet, pushImage, type FixtureSet } from '../../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { writeTar, DEFAULT_MTIME } from '../../helpers/tar-writer.js';
import { makeTempDir, mountsBelow, removeTempDir } from '../../helpers/tmp.js';

const NOBODY = 65534;
/** The built CLI where nobody can run it (the checkout may be in a directory only root enters). */
const cli = useStagedCli();

let registry: TestRegistry;
let fixtures: FixtureSet;
let whiteoutRef: string;
const temps: string[] = [];

/** A HOME for nobody: the store lands in $XDG_DATA_HOME/hostpull (the non-root default root). */
async function userHome(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  temps.push(dir);
  await mkdir(join(dir, 'data'));
  await chown(dir, NOBODY, NOBODY);
  await chown(join(dir, 'data'), NOBODY, NOBODY);
  return dir;
}

function userEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_DATA_HOME: join(home, 'data'), NO_COLOR: '1', ...extra };
  for (const k of ['HOSTPULL_ROOT', 'HOSTPULL_SERVER', 'HOSTPULL_UNSHARE', 'XDG_RUNTIME_DIR', 'FORCE_COLOR']) if (!(k in extra)) delete env[k];
  return env;
}

/** Runs `cmd args` to completion, capturing output; SIGKILL after timeoutMs. */
function exec(cmd: string, args: string[], opts: { env: NodeJS.ProcessEnv; uid?: number; gid?: number; timeoutMs?: number; input?: string }): Promise<CliResult> {
  const child = spawn(cmd, args, {
    cwd: cli().root,
    env: opts.env,
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : {}),
  });
  return collectChild(child, { ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}), input: opts.input ?? '' });
}

/** The built CLI as nobody. */
function hostpullAsNobody(home: string, args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> {
  return exec(process.execPath, [cli().entry, '--server', registry.host, ...args], { env: userEnv(home, extraEnv), uid: NOBODY });
}

/** `hostpull run [runArgs] JDK11.0-GRD7.0 -- sh -c SCRIPT` as nobody; `ready` once it printed "ready". */
function runAsNobody(home: string, runArgs: string[], script: string): { child: ChildProcessByStdio<null, Readable, Readable>; ready: Promise<void>; closed: Promise<number | null>; stdout: () => string } {
  const child = spawn(process.execPath, [cli().entry, '--server', registry.host, 'run', ...runArgs, 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', script], {
    cwd: cli().root,
    env: userEnv(home),
    stdio: ['ignore', 'pipe', 'pipe'],
    uid: NOBODY,
    gid: NOBODY,
  });
  let stdout = '';
  const ready = new Promise<void>((resolve) =>
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      if (stdout.includes('ready\n')) resolve();
    }),
  );
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, ready, closed, stdout: () => stdout };
}

async function expectNoLeftovers(home: string): Promise<void> {
  const root = join(home, 'data', 'hostpull');
  expect(await readdir(join(root, 'containers'))).toEqual([]);
  const state = await readdir(join(root, 'runtime-state'), { withFileTypes: true }).catch(() => []);
  expect(state.filter((d) => d.isDirectory()).map((d) => d.name)).toEqual([]);
  expect(await mountsBelow(home)).toEqual([]);
}

beforeAll(async () => {
  registry = await startRegistry();
  fixtures = await pushFixtureSet(registry.url, { codes: ['JDK11.0', 'GRD7.0'], composites: ['JDK11.0-GRD7.0'], sizes: { 'JDK11.0': 64 * 1024, 'GRD7.0': 64 * 1024 } });
  // A second layer that deletes the base's /etc/group with an OCI whiteout and replaces /var
  // with an opaque directory (which overlayfs reads from user.overlay.opaque: only with userxattr).
  const whiteout = layerFromTar(
    writeTar([
      { name: 'etc/', type: 'dir', mode: 0o755, mtime: DEFAULT_MTIME },
      { name: 'etc/.wh.group', type: 'file', content: '', mtime: DEFAULT_MTIME },
      { name: 'var/', type: 'dir', mode: 0o755, mtime: DEFAULT_MTIME },
      { name: 'var/.wh..wh..opq', type: 'file', content: '', mtime: DEFAULT_MTIME },
      { name: 'var/new', type: 'file', content: 'new\n', mtime: DEFAULT_MTIME },
    ]),
  );
  const base = buildLayer([...baseFiles(), { path: '/var/old', content: 'old\n' }]);
  await pushImage(registry.url, 'test/whiteout', 'v1', [base, whiteout], { cmd: ['/bin/sh'] });
  whiteoutRef = `${registry.host}/test/whiteout:v1`;
});

afterAll(async () => {
  await registry?.stop();
  for (const d of temps) await removeTempDir(d);
});

describe('rootless hostpull run', () => {
  it('runs a composite as root of a user namespace, with the store in the user XDG dir', async () => {
    const home = await userHome('rootless-run');
    const r = await hostpullAsNobody(home, ['run', 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', 'id -u; ls /opt; cat /proc/self/uid_map']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('0');
    expect(lines).toContain(fixtures.prefixes['JDK11.0']!.slice('/opt/'.length));
    expect(lines).toContain(fixtures.prefixes['GRD7.0']!.slice('/opt/'.length));
    // Container root is nobody on the host: one id mapped, two namespaces deep, never real root.
    expect(lines.at(-1)!.trim().split(/\s+/)).toEqual(['0', '0', '1']);
    // Pulled and unpacked as the user, into $XDG_DATA_HOME/hostpull.
    const layers = await readdir(join(home, 'data', 'hostpull', 'layers'));
    expect(layers.length).toBeGreaterThanOrEqual(3);
    for (const l of layers) expect((await stat(join(home, 'data', 'hostpull', 'layers', l))).uid).toBe(NOBODY);
    await expectNoLeftovers(home);
  });

  it('-v binds a directory of the user read-write, and --network host shares the host network', async () => {
    const home = await userHome('rootless-volume');
    const shared = join(home, 'shared');
    await mkdir(shared);
    await chown(shared, NOBODY, NOBODY);
    const r = await hostpullAsNobody(home, ['run', '-v', `${shared}:/data`, '--network', 'host', 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', 'echo written > /data/out; readlink /proc/self/ns/net']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(await readlink('/proc/self/ns/net'));
    // Written by container root, which is nobody on the host.
    expect(await readFile(join(shared, 'out'), 'utf8')).toBe('written\n');
    expect((await stat(join(shared, 'out'))).uid).toBe(NOBODY);
    await expectNoLeftovers(home);
  });

  it('propagates the exit code', async () => {
    const home = await userHome('rootless-exit');
    const r = await hostpullAsNobody(home, ['run', 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', 'echo out; echo err >&2; exit 7']);
    expect(r.code).toBe(7);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toBe('err\n');
    await expectNoLeftovers(home);
  });

  it('a whiteout and an opaque directory in an upper layer hide the base files inside the container', async () => {
    const home = await userHome('rootless-wh');
    const r = await hostpullAsNobody(home, ['run', whiteoutRef, '--', '/bin/sh', '-c', 'ls /etc; test -e /etc/group && echo present || echo hidden; echo var: $(ls /var)']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toContain('passwd');
    expect(lines).not.toContain('group');
    expect(lines.at(-2)).toBe('hidden');
    expect(lines.at(-1)).toBe('var: new');
    await expectNoLeftovers(home);
  });

  it('reports an error from inside the namespace (an unmappable container user) with its hint', async () => {
    const home = await userHome('rootless-user');
    const r = await hostpullAsNobody(home, ['run', '-u', 'nobody', 'JDK11.0-GRD7.0', '--', '/bin/true']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'hostpull: rootless run maps only root (uid 0) into the container; the container user is 65534:65534\n' +
        'hint: run as root, or pass -u 0 to run the command as the container root (your own uid on the host)\n',
    );
    await expectNoLeftovers(home);
  });

  it('-t gives the container a terminal (under script(1), a real pty)', async () => {
    const home = await userHome('rootless-tty');
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const cmd = [process.execPath, cli().entry, '--server', registry.host, 'run', '-t', 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', 'echo "tty=$(tty) term=$TERM"; exit 5']
      .map(quote)
      .join(' ');
    const r = await exec('script', ['-qec', cmd, '/dev/null'], { env: userEnv(home), uid: NOBODY });
    expect(r.stdout).toMatch(/tty=\/dev\/pts\/\d+ term=xterm\r?\n/);
    // script -e returns the child's exit status.
    expect(r.code).toBe(5);
    await expectNoLeftovers(home);
  });

  it('forwards SIGTERM through the helper to the container', async () => {
    const home = await userHome('rootless-term');
    const { child, ready, closed, stdout } = runAsNobody(home, [], "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done");
    try {
      await ready;
      child.kill('SIGTERM');
      expect(await closed).toBe(3);
      expect(stdout()).toBe('ready\ngot TERM\n');
      await expectNoLeftovers(home);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await closed;
    }
  });

  it('exec, stop and kill of its running container say they cannot enter its namespace (not "try again")', async () => {
    const home = await userHome('rootless-exec');
    const { child, ready, closed } = runAsNobody(home, ['--name', 'r1'], "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done");
    try {
      await ready;
      for (const args of [['exec', 'r1', '--', '/bin/true'], ['stop', 'r1'], ['kill', 'r1']]) {
        const r = await hostpullAsNobody(home, args);
        expect(r.code, args[0]).toBe(1);
        expect(r.stderr, args[0]).toMatch(new RegExp(`container [0-9a-f]{12} runs inside the user namespace of a run without root, which hostpull ${args[0]} cannot enter`));
        expect(r.stderr, args[0]).not.toMatch(/try again/);
      }
      // Still running, untouched.
      expect(child.exitCode).toBe(null);
      child.kill('SIGTERM');
      expect(await closed).toBe(0);
      await expectNoLeftovers(home);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await closed;
    }
  });

  it('after kill -9 of hostpull run, its helper stops the container and removes what it made', async () => {
    const home = await userHome('rootless-kill');
    const root = join(home, 'data', 'hostpull');
    const child = spawn(process.execPath, [cli().entry, '--server', registry.host, 'run', 'JDK11.0-GRD7.0', '--', '/bin/sleep', '60'], {
      cwd: cli().root,
      env: userEnv(home),
      stdio: ['ignore', 'ignore', 'pipe'],
      uid: NOBODY,
      gid: NOBODY,
    });
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const poll = async (what: string, done: () => Promise<boolean>) => {
      const deadline = Date.now() + 20_000;
      while (!(await done())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const containerState = async () =>
      (await readdir(join(root, 'runtime-state'), { withFileTypes: true }).catch(() => [])).filter((d) => d.isDirectory()).map((d) => d.name);
    try {
      // runc's state directory for the container exists once it is created.
      await poll('the container runs', async () => (await containerState()).length === 1);
      const [id] = await containerState();
      // runc writes state.json after creating the init process: its pid is the container's.
      let initPid = 0;
      await poll('runc has recorded the container', async () => {
        const state = await readFile(join(root, 'runtime-state', id!, 'state.json'), 'utf8').catch(() => '');
        initPid = state ? (JSON.parse(state) as { init_process_pid: number }).init_process_pid : 0;
        return initPid > 0;
      });
      child.kill('SIGKILL');
      await closed;
      await poll('the helper has cleaned up', async () => (await containerState()).length === 0 && (await readdir(join(root, 'containers'))).length === 0);
      expect(id).toMatch(/^[0-9a-f]{12}$/);
      expect(existsSync(`/proc/${initPid}`)).toBe(false);
      await expectNoLeftovers(home);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await closed;
    }
  });

  it('refuses hostpull mount without root, pointing at hostpull run', async () => {
    const home = await userHome('rootless-mount');
    const target = join(home, 'view');
    const r = await hostpullAsNobody(home, ['mount', 'JDK11.0-GRD7.0', target]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/hostpull mount needs root/);
    expect(r.stderr).toMatch(/hint: use `hostpull run .*JDK11\.0-GRD7\.0 -- CMD`/);
    expect(await mountsBelow(home)).toEqual([]);
  });
});

describe('rootless hostpull run where user namespaces are denied', () => {
  it('says what is needed when unshare cannot create the namespaces', async () => {
    const home = await userHome('rootless-false');
    const r = await hostpullAsNobody(home, ['run', 'JDK11.0-GRD7.0', '--', '/bin/true'], { HOSTPULL_UNSHARE: '/bin/false' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^hostpull: rootless run needs unprivileged user namespaces and overlayfs in a user namespace \(Linux ≥ 5\.11\): \/bin\/false .*failed \(exit status 1\)/);
    expect(r.stderr).toMatch(/\nhint: enable kernel\.unprivileged_userns_clone \/ user\.max_user_namespaces, or run as root\n$/);
    // Checked before pulling: nothing was downloaded.
    expect(await readdir(join(home, 'data', 'hostpull', 'layers')).catch(() => [])).toEqual([]);
  });

  it('reports the kernel refusal when user.max_user_namespaces is 0 (set in an enclosing user namespace)', async () => {
    const home = await userHome('rootless-denied');
    // Stage 1 runs in a fresh user namespace before its id maps exist, so it has no capabilities;
    // once we have written the maps it re-executes itself (stage 2) as root of that namespace,
    // sets its user-namespace limit to 0 (per namespace: the host's limit is untouched) and
    // becomes nobody to run the CLI.
    // Outside home: stage 1 is host root without capabilities, so it cannot enter nobody's 0700 home.
    const scriptDir = await makeTempDir('rootless-script');
    temps.push(scriptDir);
    await chmod(scriptDir, 0o755);
    const script = join(scriptDir, 'denied.sh');
    await writeFile(
      script,
      [
        'set -e',
        'if [ "$1" = stage1 ]; then shift; read _; exec /bin/sh "$0" stage2 "$@"; fi',
        'shift',
        'echo 0 > /proc/sys/user/max_user_namespaces',
        `exec setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups -- "$@"`,
        '',
      ].join('\n'),
      { mode: 0o644 },
    );
    const env = userEnv(home);
    const child = spawn('unshare', ['--user', '--', '/bin/sh', script, 'stage1', process.execPath, cli().entry, '--server', registry.host, 'run', 'JDK11.0-GRD7.0', '--', '/bin/true'], {
      cwd: cli().root,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    try {
      // Wait until unshare(2) has moved the child into its own user namespace, then map 0-65535 to
      // the same host ids (allowed to real root) and let stage 1 continue.
      const ours = await readlink('/proc/self/ns/user');
      const deadline = Date.now() + 10_000;
      while ((await readlink(`/proc/${child.pid}/ns/user`)) === ours) {
        if (Date.now() > deadline) throw new Error('unshare --user did not create a namespace');
        await new Promise((r) => setTimeout(r, 5));
      }
      await writeFile(`/proc/${child.pid}/uid_map`, '0 0 65536\n');
      await writeFile(`/proc/${child.pid}/gid_map`, '0 0 65536\n');
      child.stdin.end('go\n');
      const code = await closed;
      expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
      expect(stderr).toMatch(/^hostpull: rootless run needs unprivileged user namespaces .*: unshare: unshare failed: No space left on device/);
      expect(stderr).toMatch(/\nhint: enable kernel\.unprivileged_userns_clone \/ user\.max_user_namespaces, or run as root\n$/);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await closed;
    }
  });
});
