/**
 * The systemd side: the units pass `systemd-analyze verify`, the install script lays out units,
 * wrapper and config without overwriting a config, and the daemon speaks sd_notify: READY=1 once
 * it listens, STOPPING=1 at SIGTERM, then exit 0.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collectChild, REPO_ROOT, runCli, spawnCli } from '../../helpers/cli.js';
import { useStagedCli } from '../../helpers/staged-cli.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { startNotifyReceiver, startTestDaemon } from './daemon-process.js';

const NOBODY = 65534;
/** The built CLI where nobody can run it (the checkout may be in a directory only root enters). */
const cli = useStagedCli();

const temps: string[] = [];
async function temp(prefix: string): Promise<string> {
  const d = await makeTempDir(prefix);
  temps.push(d);
  return d;
}
afterAll(async () => {
  for (const d of temps) await removeTempDir(d);
});

/** Copies a unit with ExecStart pointing at an executable that exists (verify checks it). */
async function unitCopy(dir: string, name: string, edit: (text: string) => string = (t) => t): Promise<string> {
  const wrapper = join(dir, 'hostpull');
  await writeFile(wrapper, '#!/bin/sh\nexit 0\n');
  await chmod(wrapper, 0o755);
  const text = (await readFile(join(REPO_ROOT, 'systemd', name), 'utf8')).replaceAll('/usr/local/bin/hostpull', wrapper);
  const path = join(dir, name);
  await writeFile(path, edit(text));
  return path;
}

function verify(dir: string, paths: string[]) {
  return spawnSync('systemd-analyze', ['verify', ...paths], { cwd: dir, encoding: 'utf8' });
}

describe('systemd units', () => {
  it('hostpull.service and hostpull-serve.service pass systemd-analyze verify without a warning', async () => {
    const dir = await temp('units');
    const paths = [await unitCopy(dir, 'hostpull.service'), await unitCopy(dir, 'hostpull-serve.service')];
    const r = verify(dir, paths);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const unit = await readFile(join(REPO_ROOT, 'systemd', 'hostpull.service'), 'utf8');
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toMatch(/^EnvironmentFile=-\/etc\/hostpull\/hostpull\.env$/m);
    // As containerd's proxy snapshotter, the daemon starts before containerd and stops after it.
    expect(unit).toMatch(/^Before=containerd\.service$/m);
    const dropIn = await readFile(join(REPO_ROOT, 'systemd', 'containerd-hostpull.conf'), 'utf8');
    expect(dropIn).toMatch(/^After=hostpull\.service$/m);
    expect(dropIn).toMatch(/^Wants=hostpull\.service$/m);
    // The daemon's mounts must be visible to the host: nothing that gives it a mount namespace.
    expect(unit).not.toMatch(/^(ProtectSystem|ProtectHome|PrivateTmp|PrivateMounts|ReadWritePaths|PrivateDevices)=/m);
  });

  it('verify does flag a broken unit (the check above can fail)', async () => {
    const dir = await temp('units-bad');
    const r = verify(dir, [await unitCopy(dir, 'hostpull.service', (t) => t.replace('Type=notify', 'Type=bogus'))]);
    expect(r.stderr).toMatch(/bogus/);
  });

  it('install-systemd installs units, wrapper and config, and keeps an existing config', async () => {
    const dest = await temp('destdir');
    const run = () => spawnSync('bash', [join(REPO_ROOT, 'scripts', 'install-systemd')], { env: { ...process.env, DESTDIR: dest }, encoding: 'utf8' });
    const first = run();
    expect(first.stderr).toMatch(/installed/);
    expect(first.status).toBe(0);
    for (const f of ['etc/systemd/system/hostpull.service', 'etc/systemd/system/hostpull-serve.service', 'etc/systemd/system/containerd.service.d/hostpull.conf', 'etc/tmpfiles.d/hostpull.conf', 'etc/hostpull/hostpull.env']) {
      await readFile(join(dest, f));
    }
    const wrapper = join(dest, 'usr/local/bin/hostpull');
    expect(await readFile(wrapper, 'utf8')).toContain(`${REPO_ROOT}/dist/cli/hostpull`);
    const help = spawnSync(wrapper, ['--version'], { encoding: 'utf8' });
    expect(help.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);

    await writeFile(join(dest, 'etc/hostpull/hostpull.env'), 'HOSTPULL_SERVER=mine:5055\n');
    const second = run();
    expect(second.status).toBe(0);
    expect(second.stderr).toMatch(/keeping the existing/);
    expect(await readFile(join(dest, 'etc/hostpull/hostpull.env'), 'utf8')).toBe('HOSTPULL_SERVER=mine:5055\n');
  });
});

describe('sd_notify', () => {
  it('sends READY=1 once the socket answers, STOPPING=1 at SIGTERM, and exits 0', async () => {
    const dir = await temp('notify');
    const notifySocket = join(dir, 'notify.sock');
    const receiver = await startNotifyReceiver(notifySocket);
    try {
      const daemon = await startTestDaemon({ root: join(dir, 'root'), socket: join(dir, 'hostpull.sock'), env: { NOTIFY_SOCKET: notifySocket } });
      try {
        await receiver.waitFor('READY=1');
        expect(receiver.messages.some((m) => m.startsWith('STATUS=') || m.includes('|STATUS='))).toBe(true);
        expect(receiver.messages.some((m) => m.includes('STOPPING=1'))).toBe(false);
        const result = await daemon.stop();
        await receiver.waitFor('STOPPING=1');
        expect(result).toEqual({ code: 0, signal: null });
        // READY before STOPPING, in that order.
        const ready = receiver.messages.findIndex((m) => m.split('|').includes('READY=1'));
        const stopping = receiver.messages.findIndex((m) => m.split('|').includes('STOPPING=1'));
        expect(ready).toBeLessThan(stopping);
      } finally {
        daemon.child.kill('SIGKILL');
      }
    } finally {
      receiver.close();
    }
  });

  it('a SIGTERM while the store is still opening stops the daemon gracefully, exit 0', async () => {
    const dir = await temp('notify-early');
    const notifySocket = join(dir, 'notify.sock');
    const receiver = await startNotifyReceiver(notifySocket);
    const socket = join(dir, 'hostpull.sock');
    const child = spawnCli(['--root', join(dir, 'root'), '--log-level', 'info', 'daemon', '--socket', socket], { env: { NOTIFY_SOCKET: notifySocket } });
    try {
      const done = collectChild(child, { timeoutMs: 30_000 });
      // Sent before the store is opened: systemd stopping a unit that has not reported READY.
      await receiver.waitFor('STATUS=opening the store');
      child.kill('SIGTERM');
      const result = await done;
      expect(result.signal, result.stderr).toBeNull();
      expect(result.code).toBe(0);
      expect(result.stderr).toMatch(/SIGTERM while starting/);
      await receiver.waitFor('STOPPING=1');
      expect(existsSync(socket)).toBe(false);
    } finally {
      child.kill('SIGKILL');
      receiver.close();
    }
  });
});

describe('the socket', () => {
  it("is mode 0660; a stale socket file is replaced, a live daemon's socket is not", async () => {
    const dir = await temp('socket');
    const socket = join(dir, 'hostpull.sock');
    // A socket file nobody listens on: what a daemon killed -9 leaves behind.
    const py = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
    const bound = spawnSync(py, ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', socket]);
    expect(bound.status).toBe(0);
    expect((await stat(socket)).isSocket()).toBe(true);
    const daemon = await startTestDaemon({ root: join(dir, 'root'), socket });
    try {
      expect((await stat(socket)).mode & 0o777).toBe(0o660);
      const second = await runCli(['--root', join(dir, 'root2'), 'daemon', '--socket', socket], { timeoutMs: 30_000 });
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/another daemon answers on/);
      expect((await daemon.get('/v1/health')).status).toBe(200);
    } finally {
      expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    }
    expect(existsSync(socket)).toBe(false);
  });

  it('--socket-group gives the socket to a group whose members then use the daemon without root', async () => {
    const dir = await temp('socket-group');
    await chmod(dir, 0o755); // nobody must reach the socket's directory
    const socket = join(dir, 'hostpull.sock');
    const root = join(dir, 'root');
    const unknown = await runCli(['--root', root, 'daemon', '--socket', socket, '--socket-group', 'no-such-group-here'], { timeoutMs: 30_000 });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/--socket-group no-such-group-here: no such group in \/etc\/group/);
    expect(unknown.stderr).toMatch(/groupadd --system no-such-group-here/);

    // nogroup (65534) is nobody's primary group on Debian.
    const daemon = await startTestDaemon({ root, socket, args: ['--socket-group', 'nogroup'] });
    try {
      const st = await stat(socket);
      expect(st.gid).toBe(NOBODY);
      expect(st.mode & 0o777).toBe(0o660);
      const child = spawn(process.execPath, [cli().entry, '--root', root, '--log-level', 'debug', 'stats', '--json', '--socket', socket], {
        cwd: cli().root,
        stdio: ['pipe', 'pipe', 'pipe'],
        uid: NOBODY,
        gid: NOBODY,
        env: { ...process.env, HOME: dir },
      });
      const asNobody = await collectChild(child, { timeoutMs: 30_000 });
      expect(asNobody.code).toBe(0);
      expect(asNobody.stderr).toMatch(/using the daemon/);
      expect(JSON.parse(asNobody.stdout).pulls).toBe(0);
    } finally {
      expect(await daemon.stop(), daemon.log()).toEqual({ code: 0, signal: null });
    }
  });
});
