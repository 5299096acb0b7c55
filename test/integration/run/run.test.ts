/**
 * `hostpull run` / `mount` end to end: real registry, real overlayfs, real runc.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, realpath, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unmount } from '../../../src/rootfs/index.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { runCli, spawnCli } from '../../helpers/cli.js';
import { buildLayer, pushFixtureSet, pushImage, type FixtureSet } from '../../helpers/fixtures.js';
import { startProxy } from '../../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { makeTempDir, mountsBelow, removeTempDir } from '../../helpers/tmp.js';

let registry: TestRegistry;
let fixtures: FixtureSet;
const temps: string[] = [];

async function tempDir(prefix: string): Promise<string> {
  const d = await makeTempDir(prefix);
  temps.push(d);
  return d;
}

function hostpull(root: string, args: string[], timeoutMs = 120_000) {
  return runCli(['--root', root, '--server', registry.host, ...args], { timeoutMs });
}

/** (path, inode, mtime) of everything under the unpacked layers: proves none was rewritten. */
async function snapshotLayers(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const st = await stat(p).catch(() => undefined);
      out.set(p, st ? `${st.ino}:${st.mtimeMs}:${st.ctimeMs}` : 'gone');
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(join(root, 'layers'));
  return out;
}

beforeAll(async () => {
  registry = await startRegistry();
  fixtures = await pushFixtureSet(registry.url, {
    composites: ['JDK11.0-MVN3.8-GRD7.0', 'JDK11.0-MVN3.7-GRD7.0', 'JDK11.0-GRD7.0', 'GRD7.0-JDK11.0'],
  });
});

afterAll(async () => {
  await registry?.stop();
  for (const d of temps) await removeTempDir(d);
});

describe('hostpull run', () => {
  it('shows both package directories and the merged PATH, and cleans up after itself', async () => {
    const root = await tempDir('run');
    const r = await hostpull(root, ['run', 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', 'ls /opt; echo $PATH']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toContain(fixtures.prefixes['JDK11.0']!.slice('/opt/'.length));
    expect(lines).toContain(fixtures.prefixes['GRD7.0']!.slice('/opt/'.length));
    expect(lines.at(-1)).toMatch(new RegExp(`^${fixtures.prefixes['JDK11.0']}/bin:${fixtures.prefixes['GRD7.0']}/bin:`));
    expect(await readdir(join(root, 'containers'))).toEqual([]);
    expect(await mountsBelow(root)).toEqual([]);
  });

  it('--pull missing runs a stored image without asking the registry; --pull never refuses one not stored', async () => {
    const root = await tempDir('policy');
    const before = await registry.mark();
    const never = await hostpull(root, ['run', '--pull', 'never', 'JDK11.0-GRD7.0', '--', '/bin/true']);
    expect(never.code).toBe(1);
    expect(never.stderr).toMatch(/JDK11\.0-GRD7\.0 is not in the store, and the pull policy is never/);
    expect(never.stderr).toMatch(/--pull missing/);
    expect(await registry.since(before)).toEqual([]);

    const first = await hostpull(root, ['run', '--pull', 'missing', 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', 'ls /opt']);
    expect(first.code).toBe(0);
    const mark = await registry.mark();
    for (const policy of ['missing', 'never']) {
      const again = await hostpull(root, ['run', '--pull', policy, 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', 'ls /opt']);
      expect(again.stderr).toBe('');
      expect(again.code).toBe(0);
      expect(again.stdout).toBe(first.stdout);
    }
    expect(await registry.since(mark)).toEqual([]);
    // The default asks whether the tag moved: one HEAD, nothing else.
    const always = await hostpull(root, ['run', 'JDK11.0-GRD7.0', '--', '/bin/true']);
    expect(always.code).toBe(0);
    expect((await registry.since(mark)).map((e) => e.method)).toEqual(['HEAD']);
  });

  it('a registry that is down while the image is stored: the default --pull always fails, saying --pull missing runs it', async () => {
    const root = await tempDir('offline');
    const proxy = await startProxy(registry.url);
    try {
      expect((await runCli(['--root', root, '--server', proxy.host, 'pull', 'JDK11.0-GRD7.0'])).code).toBe(0);
      proxy.setFault(() => ({ status: 503 }));
      const down = await runCli(['--root', root, '--server', proxy.host, '--registry-retry-budget', '1s', 'run', 'JDK11.0-GRD7.0', '--', '/bin/true']);
      expect(down.code).not.toBe(0);
      expect(down.stderr).toMatch(/hint: .*JDK11\.0-GRD7\.0 is in the store: `hostpull run --pull missing \S+JDK11\.0-GRD7\.0` runs it without asking the registry/);
      expect(proxy.requests.length).toBeGreaterThan(0);
      const stored = await runCli(['--root', root, '--server', proxy.host, 'run', '--pull', 'missing', 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', 'ls /opt']);
      expect(stored.stderr).toBe('');
      expect(stored.code).toBe(0);
      // Not stored: nothing to suggest.
      const absent = await runCli(['--root', await tempDir('offline-empty'), '--server', proxy.host, '--registry-retry-budget', '1s', 'run', 'JDK11.0-GRD7.0', '--', '/bin/true']);
      expect(absent.code).not.toBe(0);
      expect(absent.stderr).not.toContain('--pull missing');
    } finally {
      await proxy.close();
    }
  });

  it('either order of the same packages gives a byte-identical tree', async () => {
    const root = await tempDir('order');
    const listing = "find / -xdev | sort; find /opt -xdev -type f -exec sha256sum {} + | sort";
    const a = await hostpull(root, ['run', 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', listing]);
    const b = await hostpull(root, ['run', 'GRD7.0-JDK11.0', '--', '/bin/sh', '-c', listing]);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    expect(a.stdout.length).toBeGreaterThan(1000);
    expect(b.stdout).toBe(a.stdout);
  });

  it('a new combination unpacks exactly one layer and leaves existing layer directories untouched', async () => {
    const root = await tempDir('once');
    expect((await hostpull(root, ['run', 'JDK11.0-MVN3.8-GRD7.0', '--', '/bin/true'])).code).toBe(0);
    const before = await snapshotLayers(root);
    const layersBefore = JSON.parse((await runCli(['--root', root, 'stats', '--json'])).stdout).store.layers;
    const r = await hostpull(root, ['run', 'JDK11.0-MVN3.7-GRD7.0', '--', '/bin/sh', '-c', `ls ${fixtures.prefixes['MVN3.7']}`]);
    expect(r.code).toBe(0);
    const layersAfter = JSON.parse((await runCli(['--root', root, 'stats', '--json'])).stdout).store.layers;
    expect(layersAfter).toBe(layersBefore + 1);
    const after = await snapshotLayers(root);
    for (const [path, sig] of before) expect(after.get(path), path).toBe(sig);
  });

  it('propagates the exit code and -e overrides', async () => {
    const root = await tempDir('exit');
    const r = await hostpull(root, ['run', 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', 'exit 7']);
    expect(r.code).toBe(7);
    const e = await hostpull(root, ['run', '-e', 'GREETING=hi', 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', 'echo $GREETING $JAVA_HOME']);
    expect(e.stdout.trim()).toBe(`hi ${fixtures.prefixes['JDK11.0']}`);
  });

  it('a composite of 120 package layers mounts and runs', async () => {
    const layers = Array.from({ length: 120 }, (_, i) => {
      const code = `P${i}.0`;
      return buildLayer([{ path: `/opt/p${i}/VERSION`, content: `${code}\n` }]);
    });
    await pushImage(registry.url, 'hostpull', 'MANY1.0', [fixtures.base, ...layers], { cmd: ['/bin/sh'] });
    const root = await tempDir('many');
    const r = await hostpull(root, ['run', 'MANY1.0', '--', '/bin/sh', '-c', 'ls /opt | wc -l; cat /opt/p0/VERSION /opt/p119/VERSION']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['120', 'P0.0', 'P119.0']);
  });

  it('after kill -9 of hostpull run, the next start removes the leftover mounts and directories', async () => {
    const root = await tempDir('kill');
    const child = spawnCli(['--root', root, '--server', registry.host, 'run', 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', 'echo started; sleep 60']);
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    const deadline = Date.now() + 60_000;
    while (!out.includes('started')) {
      if (Date.now() > deadline) throw new Error('container never started');
      await new Promise((r) => setTimeout(r, 50));
    }
    const ps = async () => JSON.parse((await runCli(['--root', root, 'ps', '--json'])).stdout) as Array<{ reference: string; command: string[]; state: string; ownerPid: number }>;
    expect(await ps()).toEqual([
      expect.objectContaining({ reference: `${registry.host}/hostpull:JDK11.0-GRD7.0`, command: ['/bin/sh', '-c', 'echo started; sleep 60'], state: 'running', ownerPid: child.pid }),
    ]);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    expect((await readdir(join(root, 'containers'))).length).toBe(1);
    expect((await mountsBelow(join(root, 'containers'))).length).toBeGreaterThan(0);
    expect((await ps()).map((c) => c.state)).toEqual(['stale']);
    expect((await runCli(['--root', root, 'ps'])).stdout).toMatch(/^CONTAINER ID +IMAGE +COMMAND +CREATED +STATUS +NAMES\n[a-f0-9]{12} .*JDK11\.0-GRD7\.0 +\/bin\/sh -c "echo started; sleep 60" +\d+ seconds? ago +stale *\n$/);

    const next = await hostpull(root, ['run', 'JDK11.0-GRD7.0', '--', '/bin/true']);
    expect(next.code).toBe(0);
    expect(await readdir(join(root, 'containers'))).toEqual([]);
    expect(await mountsBelow(join(root, 'containers'))).toEqual([]);
    expect(await ps()).toEqual([]);
  });
});

describe('hostpull mount / umount', () => {
  it('mounts a read-only view and unmounts it', async () => {
    const root = await tempDir('mount');
    const mnt = join(root, 'view');
    const m = await hostpull(root, ['mount', 'JDK11.0-GRD7.0', mnt, '--json']);
    expect(m.stderr).toBe('');
    expect(m.code).toBe(0);
    try {
      const opt = (await readdir(join(mnt, 'opt'))).sort();
      expect(opt).toEqual([fixtures.prefixes['GRD7.0']!, fixtures.prefixes['JDK11.0']!].map((p) => p.slice('/opt/'.length)).sort());
      expect((await stat(join(mnt, 'bin', 'busybox'))).isFile()).toBe(true);
      const again = await hostpull(root, ['mount', 'JDK11.0-GRD7.0', mnt]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/already a mount point/);
    } finally {
      const u = await hostpull(root, ['umount', mnt]);
      expect(u.code).toBe(0);
    }
    expect(await mountsBelow(root)).toEqual([]);
    const u2 = await hostpull(root, ['umount', mnt]);
    expect(u2.code).toBe(1);
    expect(u2.stderr).toMatch(/not a mount point/);
  });

  /** The `hostpull mount` views the store records (each holds its layers from GC). */
  async function recordedViews(root: string): Promise<string[]> {
    const store = await ContentStore.open(root, { reconcile: false });
    try {
      return store.mounts.list().map((m) => m.id).filter((id) => id.startsWith('view:'));
    } finally {
      store.close();
    }
  }

  it('a DIR through a symlink is one view under its real path: mounted once, and umount releases its record', async () => {
    const root = await realpath(await tempDir('mount-link'));
    await mkdir(join(root, 'real'));
    await symlink('real', join(root, 'link'));
    const real = join(root, 'real', 'v');
    const m = await hostpull(root, ['mount', 'JDK11.0-GRD7.0', join(root, 'link', 'v'), '--json']);
    expect(m.stderr).toBe('');
    expect(m.code).toBe(0);
    try {
      expect((JSON.parse(m.stdout) as { mountPoint: string }).mountPoint).toBe(real);
      for (const dir of [join(root, 'link', 'v'), real]) {
        const again = await hostpull(root, ['mount', 'JDK11.0-GRD7.0', dir]);
        expect(again.code).toBe(1);
        expect(again.stderr).toMatch(/already a mount point/);
      }
      expect(await mountsBelow(root)).toEqual([real]);
      expect(await recordedViews(root)).toEqual([`view:${real}`]);
    } finally {
      const u = await runCli(['--root', root, 'umount', 'link/v'], { cwd: root });
      expect(u.stderr).toBe('');
      expect(u.code).toBe(0);
      expect(u.stdout).toBe(`unmounted ${real}\n`);
    }
    expect(await mountsBelow(root)).toEqual([]);
    expect(await recordedViews(root)).toEqual([]);
    const u2 = await runCli(['--root', root, 'umount', 'link/v'], { cwd: root });
    expect(u2.code).toBe(1);
    expect(u2.stderr).toContain(`${real} is not a mount point made by \`hostpull mount\``);
  });

  it('umount releases a view that umount(8) already took down', async () => {
    const root = await realpath(await tempDir('mount-gone'));
    const mnt = join(root, 'view');
    expect((await hostpull(root, ['mount', 'JDK11.0-GRD7.0', mnt])).code).toBe(0);
    unmount(mnt);
    expect(await recordedViews(root)).toEqual([`view:${mnt}`]);
    const u = await hostpull(root, ['umount', mnt]);
    expect(u.stderr).toBe('');
    expect(u.code).toBe(0);
    expect(await recordedViews(root)).toEqual([]);
  });

  it('umount refuses a mount point that hostpull mount did not make, and leaves it mounted', async () => {
    const root = await realpath(await tempDir('mount-other'));
    const t = join(root, 't');
    await mkdir(t);
    execFileSync('mount', ['-t', 'tmpfs', 'none', t]);
    try {
      const u = await hostpull(root, ['umount', t]);
      expect(u.code).toBe(1);
      expect(u.stderr).toContain(`${t} is a mount point, but not a view made by \`hostpull mount\``);
      expect(u.stderr).toContain('umount(8)');
      expect(await mountsBelow(root)).toEqual([t]);
    } finally {
      if ((await mountsBelow(root)).length > 0) unmount(t);
    }
  });
});
