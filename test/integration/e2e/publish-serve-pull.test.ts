/**
 * The whole loop with hostpull's own parts, as a user runs them: `hostpull publish` pushes package
 * images into a real registry and registers them with `hostpull serve`; `hostpull pull` of a
 * composite the server has never seen works, and a second composite fetches only the one new
 * package layer, counted on the server's side of the wire.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.js';
import { spawnServe } from '../../helpers/serve-cli.js';
import { baseFiles, buildLayer, pushImage } from '../../helpers/fixtures.js';
import { startProxy, type TestProxy } from '../../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

const PACKAGES: Record<string, string> = { 'JDK11.0': 'jdk-11.0', 'MVN3.8': 'mvn-3.8', 'MVN3.7': 'mvn-3.7', 'GRD7.0': 'grd-7.0' };

let registry: TestRegistry;
let proxy: TestProxy;
let server: ChildProcess;
let serverUrl: string;
let work: string;
const TOKEN = 'e2e-secret-token';

/** A package tree: a launcher script and some deterministic data, like a real tool. */
async function writePackage(dir: string, code: string): Promise<void> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  await mkdir(join(dir, 'lib'), { recursive: true });
  const launcher = join(dir, 'bin', code.replace(/[0-9.]+$/, '').toLowerCase());
  await writeFile(launcher, `#!/bin/sh\necho "${code} $*"\n`);
  await chmod(launcher, 0o755);
  let block = createHash('sha256').update(code).digest();
  const chunks: Buffer[] = [];
  for (let i = 0; i < 4096; i++) chunks.push((block = createHash('sha256').update(block).digest()));
  await writeFile(join(dir, 'lib', 'data.bin'), Buffer.concat(chunks));
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await makeTempDir('e2e');
  await pushImage(registry.url, 'pkg/base', 'latest', [buildLayer(baseFiles())], { env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], cmd: ['/bin/sh'] });
  await writeFile(join(work, 'token'), `${TOKEN}\n`);
  ({ child: server, url: serverUrl } = await spawnServe(['--root', join(work, 'server')], ['--upstream', registry.url, '--base', 'pkg/base:latest', '--token-file', join(work, 'token'), '--cache-ttl', '1s']));
  proxy = await startProxy(serverUrl);
  for (const [code, dir] of Object.entries(PACKAGES)) {
    const src = join(work, 'src', code);
    await writePackage(src, code);
    const env = code.startsWith('JDK') ? ['--env', `JAVA_HOME=/opt/${dir}`] : [];
    const r = await runCli([
      '--root', join(work, 'publisher'), '--server', serverUrl,
      'publish', src, '--code', code, '--prefix', `/opt/${dir}`, '--path-add', `/opt/${dir}/bin`, ...env,
      '--upstream', registry.url, '--token-file', join(work, 'token'),
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }
});

afterAll(async () => {
  await proxy?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  await registry?.stop();
  if (work) await removeTempDir(work);
});

function blobGets(from: number): string[] {
  return proxy.requests
    .slice(from)
    .filter((r) => r.method === 'GET' && r.path.includes('/blobs/') && r.status < 400)
    .map((r) => r.path.split('/blobs/')[1]!);
}

describe('publish → serve → pull', () => {
  it('the catalog lists what was published', async () => {
    const r = await runCli(['--server', serverUrl, 'catalog', 'ls', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.stringify(JSON.parse(r.stdout))).toContain('MVN3.7');
  });

  it('a second composite fetches only the new package layer', async () => {
    const root = join(work, 'node');
    const first = await runCli(['--root', root, '--server', proxy.host, 'pull', 'JDK11.0-MVN3.8-GRD7.0', '--json']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const r1 = JSON.parse(first.stdout);
    expect(r1.layers).toHaveLength(4);

    const mark = proxy.requests.length;
    const second = await runCli(['--root', root, '--server', proxy.host, 'pull', 'JDK11.0-MVN3.7-GRD7.0', '--json']);
    expect(second.code).toBe(0);
    const r2 = JSON.parse(second.stdout);
    expect(r2.layerMisses).toBe(1);
    const inspect = JSON.parse((await runCli(['--root', root, '--server', proxy.host, 'inspect', 'JDK11.0-MVN3.7-GRD7.0'])).stdout);
    const newLayer = r2.layers.find((l: { hit: boolean }) => !l.hit).digest;
    // Served by our server: the MVN3.7 layer and the composite's config, no other blob.
    expect(blobGets(mark).sort()).toEqual([newLayer, inspect.manifest.config.digest].sort());
    // The layers are the package images' own: the shared ones have the digests of the first pull.
    const shared = r1.layers.map((l: { digest: string }) => l.digest);
    expect(r2.layers.filter((l: { hit: boolean }) => l.hit).map((l: { digest: string }) => l.digest).every((d: string) => shared.includes(d))).toBe(true);
    expect(inspect.manifest.annotations['dev.hostpull.codenames']).toBe('GRD7.0-JDK11.0-MVN3.7');
  });

  it('any order of the code names is the same image, and it runs', async () => {
    const root = join(work, 'node2');
    const a = await runCli(['--root', root, '--server', proxy.host, 'pull', 'GRD7.0-JDK11.0', '--json']);
    const b = await runCli(['--root', root, '--server', proxy.host, 'pull', 'JDK11.0-GRD7.0', '--json']);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    expect(JSON.parse(b.stdout).manifestDigest).toBe(JSON.parse(a.stdout).manifestDigest);
    expect(JSON.parse(b.stdout).upToDate).toBe(true);
    const run = await runCli(['--root', root, '--server', proxy.host, 'run', 'JDK11.0-GRD7.0', '--', '/bin/sh', '-c', 'jdk hello; grd world; echo $JAVA_HOME']);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('JDK11.0 hello\nGRD7.0 world\n/opt/jdk-11.0\n');
  });

  it('an unknown code name fails the pull naming it', async () => {
    const r = await runCli(['--root', join(work, 'node3'), '--server', proxy.host, 'pull', 'JDK11.0-XYZ1.0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('XYZ1.0');
  });
});
