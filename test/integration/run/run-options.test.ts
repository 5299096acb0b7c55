/**
 * `hostpull run` options as podman spells them (-v, --network, --read-only, --hostname, -i,
 * --rm): real registry, real overlay, real runc. Network traffic stays on
 * 127.0.0.1: the HTTP server the container reaches with --network host is this test's.
 */
import { existsSync, readlinkSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliOptions } from '../../helpers/cli.js';
import { pushFixtureSet } from '../../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { mountsBelow, useTempDir } from '../../helpers/tmp.js';

const IMAGE = 'JDK11.0-GRD7.0';
let registry: TestRegistry;
let server: Server;
let port: number;
let root: string;
const tempDir = useTempDir('run-options');

function hostpull(args: string[], opts: CliOptions = {}) {
  return runCli(['--root', root, '--server', registry.host, ...args], { timeoutMs: 120_000, ...opts });
}

/** Nothing of a finished run is left: no container directory, no mount below the store. */
async function expectCleanedUp(): Promise<void> {
  expect(existsSync(join(root, 'containers')) ? await readdir(join(root, 'containers')) : []).toEqual([]);
  expect(await mountsBelow(root)).toEqual([]);
}

beforeAll(async () => {
  registry = await startRegistry();
  await pushFixtureSet(registry.url, { composites: [IMAGE] });
  root = await tempDir('store');
  server = createServer((_req, res) => res.end('hello from the host\n'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  // Pulled once here, so each case below runs a stored image.
  expect((await hostpull(['pull', IMAGE])).code).toBe(0);
});

afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await registry?.stop();
});

describe('hostpull run -v', () => {
  it('binds a host directory read-write: the container reads what is there and what it writes stays on the host', async () => {
    const host = await tempDir('rw');
    await writeFile(join(host, 'in.txt'), 'from the host\n');
    const r = await hostpull(['run', '-v', `${host}:/data`, IMAGE, '--', '/bin/sh', '-c', 'cat /data/in.txt; echo from the container > /data/out.txt']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('from the host\n');
    expect(await readFile(join(host, 'out.txt'), 'utf8')).toBe('from the container\n');
    await expectCleanedUp();
  });

  it(':ro lets the container read but not write, and the host directory is unchanged', async () => {
    const host = await tempDir('ro');
    await writeFile(join(host, 'in.txt'), 'read me\n');
    const r = await hostpull(['run', '-v', `${host}:/data:ro`, IMAGE, '--', '/bin/sh', '-c', 'cat /data/in.txt; touch /data/new']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('read me\n');
    expect(r.stderr).toMatch(/Read-only file system/);
    expect(await readdir(host)).toEqual(['in.txt']);
    await expectCleanedUp();
  });

  it('is mounted nosuid and nodev, whatever the host mount is', async () => {
    const host = await tempDir('nosuid');
    const r = await hostpull(['run', '-v', `${host}:/data`, IMAGE, '--', '/bin/sh', '-c', 'grep " /data " /proc/mounts']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/[ ,]nosuid[ ,]/);
    expect(r.stdout).toMatch(/[ ,]nodev[ ,]/);
  });

  it('resolves ./ against the working directory and binds a file', async () => {
    const cwd = await tempDir('cwd');
    await mkdir(join(cwd, 'project'));
    await writeFile(join(cwd, 'project', 'pom.xml'), '<project/>\n');
    const r = await hostpull(['run', '-v', './project:/src:ro', '-v', './project/pom.xml:/etc/pom.xml:ro', '-w', '/src', IMAGE, '--', '/bin/sh', '-c', 'pwd; cat pom.xml /etc/pom.xml'], { cwd });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('/src\n<project/>\n<project/>\n');
  });

  it('refuses a missing host path, a named volume or a bad option before asking the registry, and leaves nothing', async () => {
    const missing = join(await tempDir('missing'), 'nope');
    const mark = await registry.mark();
    for (const [volume, message] of [
      [`${missing}:/data`, `${missing} does not exist`],
      ['m2cache:/root/.m2', '"m2cache" is not a host path'],
      [`${root}:/data:z`, 'unknown option "z"'],
    ] as const) {
      const r = await hostpull(['run', '-v', volume, IMAGE, '--', '/bin/true']);
      expect(r.code, volume).toBe(1);
      expect(r.stderr, volume).toContain(`-v ${volume}: ${message}`);
      expect(r.stdout).toBe('');
    }
    expect(existsSync(missing)).toBe(false);
    expect(await registry.since(mark)).toEqual([]);
    await expectCleanedUp();
  });
});

describe('hostpull run --network', () => {
  const hostNetns = readlinkSync('/proc/self/ns/net');
  // busybox nc, not wget: Debian's static busybox wget crashes in glibc's static name lookup.
  const probe = `readlink /proc/self/ns/net; out=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 127.0.0.1 PORT 2>/dev/null | tail -n 1); echo "\${out:-unreachable}"`;

  it('none (the default): a network namespace of its own, where the host loopback cannot be reached', async () => {
    for (const args of [[], ['--network', 'none']]) {
      const r = await hostpull(['run', ...args, IMAGE, '--', '/bin/sh', '-c', probe.replace('PORT', String(port))]);
      expect(r.code).toBe(0);
      const [netns, answer] = r.stdout.trim().split('\n');
      expect(netns).toMatch(/^net:\[\d+\]$/);
      expect(netns).not.toBe(hostNetns);
      expect(answer).toBe('unreachable');
    }
  });

  it("host: the host's network namespace, its loopback services and its resolv.conf and hosts", async () => {
    const r = await hostpull(['run', '--network', 'host', IMAGE, '--', '/bin/sh', '-c', `${probe.replace('PORT', String(port))}; cat /etc/hosts`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(hostNetns);
    expect(lines[1]).toBe('hello from the host');
    expect(lines.slice(2).join('\n')).toBe(await readFile('/etc/hosts', 'utf8'));
    // Bound read-only: the container cannot change the host's name resolution.
    const w = await hostpull(['run', '--network', 'host', IMAGE, '--', '/bin/sh', '-c', 'echo 10.0.0.1 evil >> /etc/hosts']);
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(/Read-only file system/);
    expect((await stat('/etc/hosts')).isFile()).toBe(true);
    expect(await readFile('/etc/hosts', 'utf8')).not.toContain('evil');
    await expectCleanedUp();
  });

  it("host: the container takes the host's name, unless --hostname gives one", async () => {
    const r = await hostpull(['run', '--network', 'host', IMAGE, '--', '/bin/sh', '-c', 'hostname']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${hostname()}\n`);
    const named = await hostpull(['run', '--network', 'host', '--hostname', 'builder-2', IMAGE, '--', '/bin/sh', '-c', 'hostname']);
    expect(named.stdout).toBe('builder-2\n');
    await expectCleanedUp();
  });

  it('refuses a mode it does not have', async () => {
    const r = await hostpull(['run', '--network', 'bridge', IMAGE, '--', '/bin/true']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--network <mode>' argument 'bridge' is invalid/);
  });
});

describe('hostpull run limits', () => {
  it("gives a container podman's open-files limit, soft = hard: not runc's 1024, and never below what the host gives", async () => {
    const r = await hostpull(['run', IMAGE, '--', '/bin/sh', '-c', 'ulimit -n; ulimit -Hn']);
    expect(r.stderr).toBe('');
    const [soft, hard] = r.stdout.trim().split('\n').map(Number);
    expect(soft).toBe(hard);
    // This process's hard limit: a root with CAP_SYS_RESOURCE gets 1048576 (or nr_open), others this.
    const hostHard = Number(/^Max open files\s+\S+\s+(\S+)/m.exec(await readFile('/proc/self/limits', 'utf8'))![1]);
    expect(hard).toBeGreaterThanOrEqual(Math.min(1_048_576, hostHard));
    expect(hard).toBeGreaterThan(1024);
    await expectCleanedUp();
  });
});

describe('hostpull run --read-only, --hostname, -i, --rm', () => {
  it('--read-only refuses writes to the image tree but keeps /tmp, /var/tmp and /run writable', async () => {
    const r = await hostpull(['run', '--read-only', IMAGE, '--', '/bin/sh', '-c', 'touch /tmp/a /var/tmp/b /run/c && echo scratch ok; touch /opt/x']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('scratch ok\n');
    expect(r.stderr).toMatch(/Read-only file system/);
    await expectCleanedUp();
  });

  it('--hostname names the container; a bad one fails before the run', async () => {
    const r = await hostpull(['run', '--hostname', 'builder-1', IMAGE, '--', '/bin/sh', '-c', 'hostname; cat /proc/sys/kernel/hostname']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('builder-1\nbuilder-1\n');
    const mark = await registry.mark();
    const bad = await hostpull(['run', '--hostname', 'no_underscores', IMAGE, '--', '/bin/true']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('hostname "no_underscores" is not a valid host name');
    expect(await registry.since(mark)).toEqual([]);
  });

  it('-it and --rm, as podman users type them, are accepted: stdin reaches the container and nothing is kept', async () => {
    const r = await hostpull(['run', '-i', '--rm', IMAGE, '--', '/bin/sh', '-c', 'cat'], { input: 'through stdin\n' });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('through stdin\n');
    await expectCleanedUp();
    const both = await hostpull(['run', '--rm', '--keep', IMAGE, '--', '/bin/true']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--rm and --keep contradict each other');
  });
});
