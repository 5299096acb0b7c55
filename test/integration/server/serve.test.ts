import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../../../src/oci/index.js';
import { startServer, type RunningServer } from '../../../src/server/serve.js';
import { baseFiles, buildLayer, packageFiles, packagePrefix, type BuiltLayer } from '../../helpers/fixtures.js';
import { pushImageTo, upstreamFactories, type TestUpstream } from './upstreams.js';

const exec = promisify(execFile);
const TOKEN = 'test-token-0123456789abcdef';
const CODES = ['JDK11.0', 'JDK17.0', 'MVN3.8', 'GRD7.0'];

function repoOf(code: string): string {
  return `pkg/${code.toLowerCase()}`;
}

describe.each(upstreamFactories)('hostpull serve over $name', ({ start }) => {
  let up: TestUpstream;
  let server: RunningServer;
  let tmp: string;
  const layers: Record<string, BuiltLayer> = {};
  let base: BuiltLayer;

  async function register(code: string, body: Record<string, unknown>, token: string | null = TOKEN): Promise<Response> {
    return fetch(`${server.url}/hostpull/v1/catalog/${code}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
  }

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'hostpull-serve-test-'));
    up = await start();
    base = buildLayer(baseFiles());
    await pushImageTo(up.upstream, 'pkg/base', 'latest', [base], { env: ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8'], cmd: ['/bin/sh'] });
    for (const code of CODES) {
      layers[code] = buildLayer(packageFiles(code, { bytes: 16 * 1024, files: 4 }));
      await pushImageTo(up.upstream, repoOf(code), 'v1', [layers[code]!]);
    }
    await writeFile(join(tmp, 'token'), `${TOKEN}\n`);
    server = await startServer({ ...up.serverOptions, port: 0, base: 'pkg/base:latest', tokenFile: join(tmp, 'token'), cacheTtlMs: 200 });
    for (const code of CODES) {
      const prefix = packagePrefix(code);
      const res = await register(code, {
        image: `${repoOf(code)}:v1`,
        prefix,
        pathAdd: [`${prefix}/bin`],
        env: code.startsWith('JDK') ? { JAVA_HOME: prefix } : {},
        ...(code.startsWith('JDK') ? { group: 'jdk' } : {}),
      });
      expect(res.status, await res.text()).toBe(201);
    }
  });

  afterAll(async () => {
    await server?.close();
    await up?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  async function headDigest(tag: string): Promise<string> {
    const res = await fetch(`${server.url}/v2/hostpull/manifests/${tag}`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    return res.headers.get('docker-content-digest')!;
  }

  it('answers /v2/ with the API version header', async () => {
    const res = await fetch(`${server.url}/v2/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    expect(await res.json()).toEqual({});
  });

  it('serves a composite that skopeo inspects and copies, reusing the package layers', async () => {
    const ref = `docker://${server.host}/hostpull:JDK11.0-MVN3.8-GRD7.0`;
    const { stdout } = await exec('skopeo', ['inspect', '--tls-verify=false', ref]);
    const info = JSON.parse(stdout) as { Layers: string[]; Env: string[]; Digest: string };
    expect(info.Layers).toEqual([base.digest, layers['GRD7.0']!.digest, layers['JDK11.0']!.digest, layers['MVN3.8']!.digest]);
    expect(info.Env[0]).toBe('PATH=/opt/grd-7.0/bin:/opt/jdk-11.0/bin:/opt/mvn-3.8/bin:/usr/bin:/bin');
    expect(info.Env).toContain('JAVA_HOME=/opt/jdk-11.0');
    expect(info.Env).toContain('LANG=C.UTF-8');
    const out = join(tmp, 'oci-copy');
    await exec('skopeo', ['copy', '--src-tls-verify=false', ref, `oci:${out}:composite`]);
    const blobs = await readdir(join(out, 'blobs', 'sha256'));
    expect(blobs).toContain(layers['JDK11.0']!.digest.slice(7));
    expect(`sha256:${blobs.find((b) => b === info.Digest.slice(7))}`).toBe(info.Digest);
  });

  it('gives the same digest whatever the order of the code names', async () => {
    expect(await headDigest('GRD7.0-JDK11.0')).toBe(await headDigest('JDK11.0-GRD7.0'));
  });

  it('pushes the composite to the upstream so it is addressable by digest there', async () => {
    const digest = await headDigest('MVN3.8-GRD7.0');
    const stored = await up.upstream.getManifest('hostpull', 'GRD7.0-MVN3.8');
    expect(stored?.digest).toBe(digest);
    expect(await up.upstream.blobSize('hostpull', layers['MVN3.8']!.digest)).toBe(layers['MVN3.8']!.size);
    const byDigest = await fetch(`${server.url}/v2/hostpull/manifests/${digest}`);
    expect(digestOf(Buffer.from(await byDigest.arrayBuffer()))).toBe(digest);
  });

  it('lets podman pull a composite', async () => {
    const root = join(tmp, 'podman');
    const podman = ['--root', join(root, 'root'), '--runroot', join(root, 'run'), '--storage-driver', 'vfs', '--events-backend', 'file', '--cgroup-manager', 'cgroupfs'];
    try {
      const { stdout } = await exec('podman', [...podman, 'pull', '--tls-verify=false', '--quiet', `${server.host}/hostpull:JDK11.0-GRD7.0`], {
        env: { ...process.env, TMPDIR: tmp },
      });
      expect(stdout.trim()).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      await exec('podman', [...podman, 'rmi', '-af']).catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    }
  });

  it('serves blobs with ranges and refuses unsatisfiable ones', async () => {
    const layer = layers['JDK11.0']!;
    const url = `${server.url}/v2/hostpull/blobs/${layer.digest}`;
    const part = await fetch(url, { headers: { range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-19/${layer.size}`);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(layer.blob.subarray(10, 20));
    const bad = await fetch(url, { headers: { range: `bytes=${layer.size + 5}-` } });
    expect(bad.status).toBe(416);
    expect(bad.headers.get('content-range')).toBe(`bytes */${layer.size}`);
    await bad.arrayBuffer();
    const whole = await fetch(`${server.url}/v2/${repoOf('JDK11.0')}/blobs/${layer.digest}`);
    expect(Buffer.from(await whole.arrayBuffer())).toEqual(layer.blob);
  });

  it('redirects blob downloads to a registry upstream with --blob-redirect', async () => {
    const redirecting = await startServer({ ...up.serverOptions, port: 0, base: 'pkg/base:latest', cacheTtlMs: 200 });
    try {
      const layer = layers['GRD7.0']!;
      const url = `${redirecting.url}/v2/${repoOf('GRD7.0')}/blobs/${layer.digest}`;
      const manual = await fetch(url, { redirect: 'manual' });
      await manual.arrayBuffer();
      const followed = await fetch(url);
      expect(Buffer.from(await followed.arrayBuffer())).toEqual(layer.blob);
      if (up.upstream.kind === 'registry') {
        expect(manual.status).toBe(200);
      }
    } finally {
      await redirecting.close();
    }
    const redirect = await startServer({ ...up.serverOptions, port: 0, blobRedirect: true, cacheTtlMs: 200 });
    try {
      const layer = layers['GRD7.0']!;
      const manual = await fetch(`${redirect.url}/v2/${repoOf('GRD7.0')}/blobs/${layer.digest}`, { redirect: 'manual' });
      await manual.arrayBuffer();
      if (up.upstream.kind === 'registry') {
        expect(manual.status).toBe(307);
        expect(manual.headers.get('location')).toBe(`${up.serverOptions.upstream}/v2/${repoOf('GRD7.0')}/blobs/${layer.digest}`);
      } else {
        expect(manual.status).toBe(200);
      }
    } finally {
      await redirect.close();
    }
  });

  it('answers bad composite tags with 4xx OCI errors naming the code names', async () => {
    const cases: Array<[string, number, string, RegExp]> = [
      ['JDK11.0-NOPE1-NOPE2', 404, 'MANIFEST_UNKNOWN', /NOPE1.*NOPE2/],
      ['JDK11.0-JDK11.0', 400, 'TAG_INVALID', /JDK11\.0 appears twice/],
      ['JDK11.0-JDK17.0', 400, 'TAG_INVALID', /JDK11\.0 and JDK17\.0/],
      [`${'A'.repeat(60)}-${'B'.repeat(68)}`, 400, 'TAG_INVALID', /129 characters.*128/],
      ['JDK11.0--GRD7.0', 400, 'TAG_INVALID', /empty code name/],
      ['JDK11.0-GR%24D', 400, 'TAG_INVALID', /GR%24D/],
    ];
    for (const [tag, status, code, message] of cases) {
      const res = await fetch(`${server.url}/v2/hostpull/manifests/${tag}`);
      expect(res.status, tag).toBe(status);
      const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
      expect(body.errors[0]!.code, tag).toBe(code);
      expect(body.errors[0]!.message, tag).toMatch(message);
    }
  });

  it('answers thousands of random paths with 4xx JSON and keeps serving', async () => {
    let seed = 42;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const alphabet = 'ABCDEFabc019.-_/:%@?&=~+!$\'()*,;[]{}|^`"<> \\#';
    const pick = (n: number) => Array.from({ length: n }, () => alphabet[rand() % alphabet.length]).join('');
    const shapes = [
      () => `/v2/hostpull/manifests/${pick(1 + (rand() % 140))}`,
      () => `/v2/${pick(1 + (rand() % 40))}/manifests/${pick(1 + (rand() % 20))}`,
      () => `/v2/${pick(1 + (rand() % 30))}/blobs/sha256:${pick(rand() % 70)}`,
      () => `/v2/${pick(1 + (rand() % 30))}/tags/list?n=${pick(3)}`,
      () => `/${pick(1 + (rand() % 60))}`,
      () => `/hostpull/v1/catalog/${pick(1 + (rand() % 30))}`,
    ];
    const statuses = new Map<number, number>();
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          const path = shapes[rand() % shapes.length]!().replace(/[#\s"<>\\^`{|}]/g, (c) => encodeURIComponent(c));
          const res = await fetch(`${server.url}${path.startsWith('/') ? path : `/${path}`}`);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          const text = await res.text();
          expect(res.status, path).toBeLessThan(500);
          if (res.status >= 400) expect((JSON.parse(text) as { errors: unknown[] }).errors.length, path).toBe(1);
        }),
      );
    }
    expect([...statuses.keys()].every((s) => s < 500)).toBe(true);
    expect((await fetch(`${server.url}/v2/`)).status).toBe(200);
  });

  it('refuses catalog writes without the token', async () => {
    const body = { image: `${repoOf('GRD7.0')}:v1`, prefix: packagePrefix('GRD7.0') };
    const none = await register('GRD7.1', body, null);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('UNAUTHORIZED');
    expect((await register('GRD7.1', body, 'wrong-token-wrong-token')).status).toBe(401);
    const del = await fetch(`${server.url}/hostpull/v1/catalog/GRD7.0`, { method: 'DELETE' });
    expect(del.status).toBe(401);
    const list = (await (await fetch(`${server.url}/hostpull/v1/catalog`)).json()) as { entries: Record<string, unknown> };
    expect(Object.keys(list.entries).sort()).toEqual([...CODES].sort());
  });

  it('looks code names up in a Map: __proto__, constructor and toString are unknown', async () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      const res = await fetch(`${server.url}/hostpull/v1/catalog/${name}`);
      expect(res.status, name).toBe(404);
      const composite = await fetch(`${server.url}/v2/hostpull/manifests/${name}`);
      expect(composite.status, name).toBe(404);
    }
  });

  it('refuses to register a package whose layer writes outside its prefix', async () => {
    const evil = buildLayer([...packageFiles('EVL1.0', { bytes: 1024, files: 1 }), { path: '/etc/profile.d/evil.sh', content: 'echo owned\n' }]);
    await pushImageTo(up.upstream, 'pkg/evil', 'v1', [evil]);
    const res = await register('EVL1.0', { image: 'pkg/evil:v1', prefix: packagePrefix('EVL1.0') });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: Array<{ message: string }> };
    expect(body.errors[0]!.message).toMatch(/entry "etc": is outside the package's prefix \/opt\/evl-1\.0/);
    const two = buildLayer(packageFiles('TWO1.0', { bytes: 1024, files: 1 }));
    await pushImageTo(up.upstream, 'pkg/two', 'v1', [two, layers['GRD7.0']!]);
    const res2 = await register('TWO1.0', { image: 'pkg/two:v1', prefix: packagePrefix('TWO1.0') });
    expect(res2.status).toBe(400);
    expect(await res2.text()).toMatch(/2 layers/);
  });

  it('keeps a package pinned when its tag moves; registering it again moves it, checked again', async () => {
    const v1 = buildLayer(packageFiles('MOV1.0', { bytes: 1024, files: 1 }));
    await pushImageTo(up.upstream, 'pkg/mov', 'current', [v1]);
    expect((await register('MOV1.0', { image: 'pkg/mov:current', prefix: packagePrefix('MOV1.0') })).status).toBe(201);
    const layersOf = async (tag: string) =>
      ((await (await fetch(`${server.url}/v2/hostpull/manifests/${await headDigest(tag)}`)).json()) as { layers: Array<{ digest: string }> }).layers.map((l) => l.digest);
    const before = await headDigest('MOV1.0-GRD7.0');
    // The tag moves behind the server's back: composites keep the pinned, checked package.
    const v2 = buildLayer(packageFiles('MOV1.0', { bytes: 1024, files: 1, seed: 7 }));
    await pushImageTo(up.upstream, 'pkg/mov', 'current', [v2]);
    await new Promise((r) => setTimeout(r, 500)); // past the 200 ms cache TTL
    expect(await headDigest('GRD7.0-MOV1.0')).toBe(before);
    expect(await layersOf('MOV1.0')).toEqual([expect.anything(), v1.digest]);
    // Registering again is how a package moves: checked, then pinned to v2.
    expect((await register('MOV1.0', { image: 'pkg/mov:current', prefix: packagePrefix('MOV1.0') })).status).toBe(201);
    // Within the cache TTL (200 ms) a composite resolved before may still be served.
    let layers = await layersOf('MOV1.0');
    for (let i = 0; i < 100 && !layers.includes(v2.digest); i++) {
      await new Promise((r) => setTimeout(r, 50));
      layers = await layersOf('MOV1.0');
    }
    expect(layers).toContain(v2.digest);
    expect(await headDigest('GRD7.0-MOV1.0')).not.toBe(before);
    // A tag moved to a package that breaks its prefix is refused when registered again.
    const evil = buildLayer([...packageFiles('MOV1.0', { bytes: 1024, files: 1 }), { path: '/etc/passwd', content: 'root::0:0::/:/bin/sh\n' }]);
    await pushImageTo(up.upstream, 'pkg/mov', 'current', [evil]);
    expect((await register('MOV1.0', { image: 'pkg/mov:current', prefix: packagePrefix('MOV1.0') })).status).toBe(400);
    await new Promise((r) => setTimeout(r, 500));
    expect(await layersOf('MOV1.0')).toContain(v2.digest);
  });

  it('lists tags of package repositories and the namespace', async () => {
    const pkg = (await (await fetch(`${server.url}/v2/${repoOf('JDK11.0')}/tags/list`)).json()) as { tags: string[] };
    expect(pkg.tags).toEqual(['v1']);
    const ns = await fetch(`${server.url}/v2/hostpull/tags/list?n=2`);
    const page = (await ns.json()) as { tags: string[] };
    expect(page.tags).toHaveLength(2);
    expect(ns.headers.get('link')).toMatch(/rel="next"/);
    const unknown = await fetch(`${server.url}/v2/pkg/nothing/tags/list`);
    expect(unknown.status).toBe(404);
    expect(await readFile(join(tmp, 'token'), 'utf8')).toContain(TOKEN);
  });
});
