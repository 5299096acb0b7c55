import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { digestOf } from '../../../src/oci/index.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { baseFiles, buildLayer, packageFiles, packagePrefix, pushFixtureSet, type FixtureSet } from '../../helpers/fixtures.js';

function tarList(tar: Buffer): string[] {
  const r = spawnSync('tar', ['-tvf', '-', '--numeric-owner'], { input: tar, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim().split('\n');
}

describe('buildLayer', () => {
  it('is deterministic, sorted, with implied parents, and its digests match its bytes', () => {
    const files = [
      { path: '/opt/z/b.txt', content: 'b' },
      { path: '/opt/z/a.txt', content: 'a', mode: 0o600, uid: 1000, gid: 1000 },
      { path: '/opt/z/link', type: 'symlink' as const, target: '../z/a.txt' },
      { path: '/opt/z/hard', type: 'hardlink' as const, target: '/opt/z/b.txt' },
    ];
    const a = buildLayer(files);
    const b = buildLayer([...files].reverse());
    expect(a.digest).toBe(b.digest);
    expect(a.blob.equals(b.blob)).toBe(true);
    expect(a.digest).toBe(digestOf(a.blob));
    expect(a.diffId).toBe(digestOf(a.tar));
    expect(gunzipSync(a.blob).equals(a.tar)).toBe(true);
    expect(a.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    const lines = tarList(a.tar);
    expect(lines.map((l) => l.split(/\s+/).slice(5).join(' '))).toEqual([
      'opt/',
      'opt/z/',
      'opt/z/a.txt',
      'opt/z/b.txt',
      'opt/z/hard link to opt/z/b.txt',
      'opt/z/link -> ../z/a.txt',
    ]);
    expect(lines[2]).toMatch(/^-rw------- 1000\/1000 +1 2020-01-01 00:00 opt\/z\/a.txt$/);
  });

  it('supports zstd and uncompressed layers', () => {
    const files = [{ path: 'x', content: 'hello' }];
    const z = buildLayer(files, { compression: 'zstd' });
    expect(z.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    const un = spawnSync('zstd', ['-d', '-c', '-q'], { input: z.blob });
    expect(Buffer.from(un.stdout).equals(z.tar)).toBe(true);
    expect(buildLayer(files, { compression: 'zstd' }).digest).toBe(z.digest);
    const n = buildLayer(files, { compression: 'none' });
    expect(n.blob.equals(n.tar)).toBe(true);
    expect(n.digest).toBe(n.diffId);
  });

  it('packageFiles stays under its prefix, has an executable launcher, and is about the requested size', () => {
    const files = packageFiles('JDK11.0', { bytes: 100_000, files: 5 });
    expect(packagePrefix('JDK11.0')).toBe('/opt/jdk-11.0');
    expect(files.every((f) => f.path.startsWith('/opt/jdk-11.0'))).toBe(true);
    const launcher = files.find((f) => f.path === '/opt/jdk-11.0/bin/jdk');
    expect(launcher?.mode).toBe(0o755);
    const data = files.filter((f) => f.path.includes('/lib/part-'));
    expect(data).toHaveLength(5);
    expect(data.reduce((n, f) => n + (f.content?.length ?? 0), 0)).toBe(100_000);
    expect(buildLayer(packageFiles('JDK11.0', { bytes: 100_000, files: 5 })).digest).toBe(buildLayer(files).digest);
    expect(buildLayer(packageFiles('JDK17.0', { bytes: 100_000, files: 5 })).digest).not.toBe(buildLayer(files).digest);
  });

  it('baseFiles is a busybox rootfs', () => {
    const lines = tarList(buildLayer(baseFiles()).tar);
    expect(lines.some((l) => /^-rwxr-xr-x .* bin\/busybox$/.test(l))).toBe(true);
    expect(lines.some((l) => l.endsWith('bin/sh -> /bin/busybox'))).toBe(true);
    expect(lines.some((l) => /^drwxrwxrwt .* tmp\/$/.test(l))).toBe(true);
    for (const d of ['proc/', 'sys/', 'dev/', 'opt/', 'etc/passwd', 'etc/group']) expect(lines.some((l) => l.endsWith(` ${d}`))).toBe(true);
  });
});

describe('pushFixtureSet', () => {
  const registries: TestRegistry[] = [];
  afterAll(async () => {
    await Promise.all(registries.map((r) => r.stop()));
  });

  it('is deterministic across fresh registries, composites reuse package layers, skopeo reads them', async () => {
    const [r1, r2] = await Promise.all([startRegistry(), startRegistry()]);
    registries.push(r1!, r2!);
    const s1: FixtureSet = await pushFixtureSet(r1!.url);
    const s2: FixtureSet = await pushFixtureSet(r2!.url);
    const digests = (s: FixtureSet) => Object.fromEntries(Object.entries(s.images).map(([k, v]) => [k, v.manifestDigest]));
    expect(digests(s1)).toEqual(digests(s2));
    expect(Object.keys(s1.images).sort()).toEqual(
      ['base', 'JDK11.0', 'JDK17.0', 'MVN3.8', 'MVN3.7', 'GRD7.0', 'JDK11.0-MVN3.8-GRD7.0', 'JDK11.0-MVN3.7-GRD7.0', 'JDK17.0-MVN3.8-GRD7.0', 'JDK11.0-GRD7.0'].sort(),
    );

    const composite = s1.images['JDK11.0-MVN3.8-GRD7.0']!;
    expect(composite.repository).toBe('hostpull');
    expect(composite.layers.map((l) => l.digest)).toEqual([
      s1.base.digest,
      s1.images['JDK11.0']!.layers[0]!.digest,
      s1.images['MVN3.8']!.layers[0]!.digest,
      s1.images['GRD7.0']!.layers[0]!.digest,
    ]);
    const config = JSON.parse(composite.config.toString());
    expect(config.config.Env).toEqual([
      'PATH=/opt/jdk-11.0/bin:/opt/mvn-3.8/bin:/opt/grd-7.0/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'JAVA_HOME=/opt/jdk-11.0',
    ]);
    expect(config.config.Cmd).toEqual(['/bin/sh']);
    expect(config.rootfs.diff_ids).toEqual(composite.layers.map((l) => l.diffId));

    const got = await fetch(`${r1!.url}/v2/hostpull/manifests/JDK11.0-MVN3.8-GRD7.0`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(Buffer.from(await got.arrayBuffer()).equals(composite.manifest)).toBe(true);
    expect(got.headers.get('docker-content-digest')).toBe(composite.manifestDigest);

    const sk = spawnSync('skopeo', ['inspect', '--tls-verify=false', `docker://${r1!.host}/hostpull:JDK11.0-MVN3.8-GRD7.0`], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(sk.status, sk.stderr).toBe(0);
    const info = JSON.parse(sk.stdout);
    expect(info.Digest).toBe(composite.manifestDigest);
    expect(info.Layers).toEqual(composite.layers.map((l) => l.digest));
    expect(info.Env).toEqual(config.config.Env);
  });
});
