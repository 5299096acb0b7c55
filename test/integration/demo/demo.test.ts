/**
 * `hostpull demo` end to end on its real packages: Debian's OpenJDK 17, Maven 3.8 and Go 1.19
 * relocated under /opt, over a glibc + busybox base, served from an OCI layout by a real
 * `hostpull serve`, run with runc. The work dir is the demo's default, so a machine that already
 * ran the demo (or this test) reuses what was built; on a fresh machine the first run builds it
 * (about two minutes here: downloads, relocation and gzip of ~750 MB of packages).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DemoResult } from '../../../src/demo/run-demo.js';
import { DEFAULT_DEMO_WORK } from '../../../src/defaults.js';
import { unmountBelow } from '../../../src/demo/leftover-mounts.js';
import { mountsBelow } from '../../helpers/tmp.js';
import { spawnCli } from '../../helpers/cli.js';

const TEN_MINUTES = 600_000;
const work = process.env.HOSTPULL_DEMO_WORK ?? DEFAULT_DEMO_WORK;

let child: ChildProcess | undefined;
let result: DemoResult;
let stderr = '';
let exitCode: number | null = null;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  child = spawnCli(['demo', '--json', '--work', work]);
  child.stdin!.end();
  let stdout = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  exitCode = await new Promise<number | null>((resolve) => child!.once('close', (code) => resolve(code)));
  child = undefined;
  if (exitCode !== 0) throw new Error(`hostpull demo exited with ${exitCode}:\n${stderr.slice(-6000)}`);
  result = JSON.parse(stdout) as DemoResult;
}, TEN_MINUTES);

afterAll(async () => {
  // Only if the hook timed out: SIGTERM makes the demo stop its server and unmount.
  if (child?.pid !== undefined && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 5_000));
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  if (result?.server && alive(result.server.pid)) process.kill(result.server.pid, 'SIGTERM');
  await unmountBelow(work).catch(() => undefined);
}, 60_000);

describe('hostpull demo', () => {
  it('runs Maven 3.8 on the relocated JDK 17 in JDK17.0-MVN3.8 and prints its real banner', () => {
    expect(result.maven.banner).toMatch(/^Apache Maven 3\.8\.\d+/);
    expect(result.maven.stdout).toContain('Maven home: /opt/mvn-3.8');
    expect(result.maven.stdout).toMatch(/Java version: 17\.[\d.]+, vendor: Debian, runtime: \/opt\/jdk-17\.0/);
  });

  it('gives the relocated JDK a trust store with every CA of the host bundle (Debian makes it in a postinst)', async () => {
    const jdk = result.packages.find((p) => p.code === 'JDK17.0')!;
    const bundle = await readFile('/etc/ssl/certs/ca-certificates.crt', 'utf8');
    const cas = bundle.match(/-----BEGIN CERTIFICATE-----/g)!.length;
    expect(cas).toBeGreaterThan(50);
    // What TLS in Java sees: the default trust manager, which opens the store without a password.
    const dir = await mkdtemp(join(tmpdir(), 'hostpull-trust-'));
    try {
      await writeFile(
        join(dir, 'Trusted.java'),
        'public class Trusted { public static void main(String[] a) throws Exception {' +
          ' var f = javax.net.ssl.TrustManagerFactory.getInstance("PKIX"); f.init((java.security.KeyStore) null);' +
          ' System.out.println(((javax.net.ssl.X509TrustManager) f.getTrustManagers()[0]).getAcceptedIssuers().length); } }\n',
      );
      const trusted = spawnSync(join(jdk.dir, 'bin', 'java'), [join(dir, 'Trusted.java')], { encoding: 'utf8' });
      expect(trusted.status, trusted.stderr).toBe(0);
      expect(Number(trusted.stdout.trim())).toBe(cas);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fetches only the Go layer for GO1.19-JDK17.0: base and JDK come from the store', () => {
    const go = result.packages.find((p) => p.code === 'GO1.19')!;
    const jdk = result.packages.find((p) => p.code === 'JDK17.0')!;
    expect(result.goPull.layerMisses).toBe(1);
    expect(result.goPull.layerHits).toBe(2);
    expect(result.goPull.layers.filter((l) => l.fetched).map((l) => l.digest)).toEqual([go.layerDigest]);
    expect(result.goPull.layers.filter((l) => !l.fetched).map((l) => l.digest).sort()).toEqual([result.base.layerDigest, jdk.layerDigest].sort());
    expect(result.goPull.bytesReused).toBe(result.base.size + jdk.layerSize);
  });

  it('runs the relocated Go toolchain in GO1.19-JDK17.0', () => {
    expect(result.go.stdout).toMatch(/^go version go1\.19\.\d+ linux\//);
  });

  it('reports the two pulls of a fresh store in hostpull stats', () => {
    // run JDK17.0-MVN3.8: 3 misses; pull GO1.19-JDK17.0: 2 hits, 1 miss; run GO1.19-JDK17.0 uses
    // the stored image, which is not a pull (nothing fetched, nothing asked but the HEAD).
    expect(result.stats.json.pulls).toBe(2);
    expect(result.stats.json.upToDatePulls).toBe(0);
    expect(result.stats.json.layerMisses).toBe(4);
    expect(result.stats.json.failedPulls).toBe(0);
    expect(result.stats.text).toMatch(/layer hit rate\s+[\d.]+% \(\d+ hits, 4 misses\)/);
    expect(result.stats.json.store.layers).toBe(4);
  });

  it('builds self-contained packages: every symlink is relative and stays inside its package', async () => {
    expect(result.packages.map((p) => p.code).sort()).toEqual(['GO1.19', 'JDK17.0', 'MVN3.8']);
    for (const pkg of result.packages) {
      const escaping: string[] = [];
      const walk = async (dir: string): Promise<void> => {
        for (const e of await readdir(dir, { withFileTypes: true })) {
          const p = join(dir, e.name);
          if (e.isDirectory()) await walk(p);
          else if (e.isSymbolicLink()) {
            const target = await readlink(p);
            const to = resolve(dirname(p), target);
            if (target.startsWith('/') || (to !== pkg.dir && !to.startsWith(`${pkg.dir}/`))) escaping.push(`${p} -> ${target}`);
          }
        }
      };
      await walk(pkg.dir);
      expect(escaping, pkg.code).toEqual([]);
    }
    // What Debian keeps in /etc and /usr/share/java is inside the packages now.
    const jdk = result.packages.find((p) => p.code === 'JDK17.0')!;
    const mvn = result.packages.find((p) => p.code === 'MVN3.8')!;
    expect((await lstat(join(jdk.dir, 'conf/security/java.security'))).isFile()).toBe(true);
    expect((await lstat(join(mvn.dir, 'lib/maven-core-3.x.jar'))).isFile()).toBe(true);
  });

  it('stops the server and leaves nothing mounted', async () => {
    expect(result.server.kept).toBe(false);
    expect(alive(result.server.pid)).toBe(false);
    expect(await mountsBelow(work)).toEqual([]);
  });
});
