import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, MediaType, type Digest } from '../../../src/oci/index.js';
import { RegistryClient, type RegistryClientOptions } from '../../../src/registry/index.js';
import { noCredentials } from '../../../src/registry/auth/credentials.js';
import { runCli } from '../../helpers/cli.js';
import { startRegistry, useRegistry, type TestRegistry } from '../../helpers/registry.js';
import { startTokenServer, type TokenServer } from './token-server.js';

const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
const configDigest = digestOf(config);
const layer = Buffer.alloc(300 * 1024);
for (let i = 0; i < layer.length; i++) layer[i] = (i * 7919) & 0xff;
const layerDigest = digestOf(layer);
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: configDigest, size: config.length },
    layers: [{ mediaType: MediaType.OciLayerGzip, digest: layerDigest, size: layer.length }],
  }),
);
const manifestDigest = digestOf(manifest);

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Pushes the fixture image as `<repository>:<tag>`; the layer goes up as a stream factory. */
async function pushImage(c: RegistryClient, host: string, repository: string, tag: string): Promise<Digest> {
  const repo = { registry: host, repository };
  await c.pushBlob(repo, configDigest, config.length, config);
  await c.pushBlob(repo, layerDigest, layer.length, () => Readable.from([layer.subarray(0, 100_000), layer.subarray(100_000)]));
  return c.putManifest({ ...repo, tag }, manifest, MediaType.OciManifest);
}

function newClient(opts: RegistryClientOptions = {}): RegistryClient {
  return new RegistryClient({ retries: 2, retryBaseDelayMs: 1, credentials: noCredentials(), ...opts });
}

describe('against a real distribution registry (no auth)', () => {
  const registry = useRegistry();
  let c: RegistryClient;
  beforeAll(() => {
    c = newClient();
  });
  afterAll(async () => {
    await c?.close();
  });

  it('pushes blobs and a manifest, then gets them back by tag and by digest', async () => {
    const { host } = registry();
    await c.ping(host);
    expect(await pushImage(c, host, 'pkg/jdk', '11.0')).toBe(manifestDigest);

    const head = await c.headManifest({ registry: host, repository: 'pkg/jdk', tag: '11.0' });
    expect(head).toEqual({ digest: manifestDigest, mediaType: MediaType.OciManifest, size: manifest.length });
    const byTag = await c.getManifest({ registry: host, repository: 'pkg/jdk', tag: '11.0' });
    expect(byTag.bytes.equals(manifest)).toBe(true);
    expect(byTag.digest).toBe(manifestDigest);
    const byDigest = await c.getManifest({ registry: host, repository: 'pkg/jdk', digest: manifestDigest });
    expect(byDigest.mediaType).toBe(MediaType.OciManifest);

    const repo = { registry: host, repository: 'pkg/jdk' };
    expect(await c.blobExists(repo, layerDigest)).toBe(layer.length);
    expect(await c.blobExists(repo, digestOf('absent'))).toBeNull();
    expect((await c.fetchBlobBytes(repo, configDigest, 1 << 20)).equals(config)).toBe(true);
    const blob = await c.getBlob(repo, layerDigest);
    expect(blob.offset).toBe(0);
    expect((await readAll(blob.stream)).equals(layer)).toBe(true);

    // Resume: the real registry answers Range with a 206 at the asked offset.
    const rest = await c.getBlob(repo, layerDigest, { offset: 1000 });
    expect(rest.offset).toBe(1000);
    expect(rest.totalSize).toBe(layer.length);
    expect((await readAll(rest.stream)).equals(layer.subarray(1000))).toBe(true);

    // A second push of the same blob is skipped after HEAD.
    const mark = await registry().mark();
    await c.pushBlob(repo, layerDigest, layer.length, layer);
    expect((await registry().since(mark)).map((e) => e.method)).toEqual(['HEAD']);
  });

  it('reports unknown manifests and blobs with their codes', async () => {
    const { host } = registry();
    expect(await c.headManifest({ registry: host, repository: 'pkg/jdk', tag: 'nope' })).toBeNull();
    await expect(c.getManifest({ registry: host, repository: 'pkg/jdk', tag: 'nope' })).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN', status: 404 });
    await expect(c.getBlob({ registry: host, repository: 'pkg/jdk' }, digestOf('absent'))).rejects.toMatchObject({ code: 'BLOB_UNKNOWN', status: 404 });
    await expect(c.listTags({ registry: host, repository: 'pkg/nothing' })).rejects.toMatchObject({ code: 'NAME_UNKNOWN' });
  });

  it('mounts a blob from another repository instead of uploading it', async () => {
    const { host } = registry();
    await pushImage(c, host, 'pkg/src', 'v1');
    const mark = await registry().mark();
    await c.pushBlob({ registry: host, repository: 'pkg/dst' }, layerDigest, layer.length, () => {
      throw new Error('the body must not be opened for a mount');
    }, { mountFrom: 'pkg/src' });
    const log = await registry().since(mark);
    expect(log.map((e) => `${e.method} ${e.status}`)).toEqual(['HEAD 404', 'POST 201']);
    expect(log[1]!.path).toContain(`mount=${encodeURIComponent(layerDigest)}`);
    expect(await c.blobExists({ registry: host, repository: 'pkg/dst' }, layerDigest)).toBe(layer.length);
  });

  it('lists tags, with n/last pages', async () => {
    const { host } = registry();
    const repo = { registry: host, repository: 'pkg/tags' };
    await pushImage(c, host, repo.repository, 'a');
    for (const t of ['b', 'c', 'd', 'e']) await c.putManifest({ ...repo, tag: t }, manifest, MediaType.OciManifest);
    // distribution 2.8 returns the full list in storage order; pages (with n) are sorted.
    expect((await c.listTags(repo)).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    // distribution 2.8 ignores n/last (pagination came with 3.0; the fake-server unit test covers
    // the Link walk): check that we ask as the spec says and take the one page we get.
    const mark = await registry().mark();
    const page = await c.listTags(repo, { n: 2, last: 'b' });
    expect(page.length).toBeGreaterThan(0);
    expect(page.every((t) => ['a', 'b', 'c', 'd', 'e'].includes(t))).toBe(true);
    const log = await registry().since(mark);
    expect(log.map((e) => `${e.method} ${e.path}`)).toEqual(['GET /v2/pkg/tags/tags/list?n=2&last=b']);
  });
});

describe('htpasswd Basic auth', () => {
  const user = { user: 'alice', password: 'wonder-land' };
  const registry = useRegistry({ htpasswd: user });

  it('refuses without credentials with a clear error, works with them', async () => {
    const { host } = registry();
    const anon = newClient();
    try {
      const err = await anon.ping(host).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
      expect((err as Error).message).toContain(`GET http://${host}/v2/`);
      expect((err as { hint: string }).hint).toContain('HOSTPULL_REGISTRY_AUTH');
    } finally {
      await anon.close();
    }
    // Explicit credentials through the environment variable.
    const c = new RegistryClient({ retries: 1, env: { HOSTPULL_REGISTRY_AUTH: `${host}=${user.user}:${user.password}`, DOCKER_CONFIG: '/nonexistent' } });
    try {
      await c.ping(host);
      expect(await pushImage(c, host, 'pkg/mvn', '3.8')).toBe(manifestDigest);
      const m = await c.getManifest({ registry: host, repository: 'pkg/mvn', tag: '3.8' });
      expect(m.digest).toBe(manifestDigest);
    } finally {
      await c.close();
    }
  });
});

/** A registry behind a token server (its realm over https with `tls`), for one describe block's tests. */
function useTokenRegistry(user: { user: string; password: string }, options: { tls?: boolean } = {}): { dir: string; tokens: TokenServer; registry: TestRegistry } {
  const ctx = {} as { dir: string; tokens: TokenServer; registry: TestRegistry };
  beforeAll(async () => {
    ctx.dir = await mkdtemp(join(tmpdir(), 'hostpull-token-'));
    ctx.tokens = await startTokenServer(ctx.dir, user, options);
    const t = ctx.tokens;
    ctx.registry = await startRegistry({ tokenAuth: { realm: `${t.url}/token`, service: t.service, issuer: t.issuer, rootCertBundle: t.certPath } });
  });
  afterAll(async () => {
    await ctx.registry?.stop();
    await ctx.tokens?.close();
    if (ctx.dir) await rm(ctx.dir, { recursive: true, force: true });
  });
  return ctx;
}

describe('Bearer token auth (distribution auth.token)', () => {
  const user = { user: 'bob', password: 'builder' };
  const ctx = useTokenRegistry(user);

  it('gets scoped tokens with Basic credentials, pushes and pulls, reuses cached tokens', async () => {
    const { registry, tokens } = ctx;
    const { host } = registry;
    const c = newClient({ credentials: { [host]: { username: user.user, password: user.password } }, env: {} });
    try {
      expect(await pushImage(c, host, 'pkg/grd', '7.0')).toBe(manifestDigest);
      const m1 = await c.getManifest({ registry: host, repository: 'pkg/grd', tag: '7.0' });
      const m2 = await c.getManifest({ registry: host, repository: 'pkg/grd', digest: manifestDigest });
      expect(m1.digest).toBe(manifestDigest);
      expect(m2.bytes.equals(manifest)).toBe(true);
      await c.pushBlob({ registry: host, repository: 'pkg/other' }, layerDigest, layer.length, layer, { mountFrom: 'pkg/grd' });
      expect(await c.blobExists({ registry: host, repository: 'pkg/other' }, layerDigest)).toBe(layer.length);
    } finally {
      await c.close();
    }
    // One token per distinct scope set, each fetched once.
    expect(tokens.issued.map((t) => t.scopes.join(' '))).toEqual([
      'repository:pkg/grd:pull,push',
      'repository:pkg/grd:pull',
      'repository:pkg/other:pull,push repository:pkg/grd:pull',
      'repository:pkg/other:pull',
    ]);
  });

  it('is UNAUTHORIZED without credentials, with a hint', async () => {
    const { registry } = ctx;
    const c = newClient();
    try {
      const err = await c.getManifest({ registry: registry.host, repository: 'pkg/grd', tag: '7.0' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'UNAUTHORIZED' });
      expect((err as { hint: string }).hint).toContain(`no credentials for ${registry.host}`);
    } finally {
      await c.close();
    }
  });
});

describe('a token realm over https, trusted through HOSTPULL_EXTRA_CA_CERTS', () => {
  const user = { user: 'bob', password: 'builder' };
  const ctx = useTokenRegistry(user, { tls: true });

  it.each(['undici', 'node'] as const)('over %s: the token is fetched when the file names its CA, refused as untrusted otherwise', async (httpClient) => {
    const { registry, tokens } = ctx;
    const { host } = registry;
    const credentials = { [host]: { username: user.user, password: user.password } };
    const trusting = newClient({ credentials, httpClient, env: { HOSTPULL_EXTRA_CA_CERTS: tokens.tlsCertPath } });
    try {
      expect(await pushImage(trusting, host, `pkg/tls-${httpClient}`, '1')).toBe(manifestDigest);
    } finally {
      await trusting.close();
    }
    const plain = newClient({ credentials, httpClient, env: {} });
    try {
      const err = await plain.getManifest({ registry: host, repository: `pkg/tls-${httpClient}`, tag: '1' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(JSON.stringify({ message: (err as Error).message, cause: String((err as { cause?: unknown }).cause) })).toMatch(/self[- ]signed certificate/i);
    } finally {
      await plain.close();
    }
  });

  it('the CLI, started by its launcher from its startup snapshot, trusts the CA that NODE_EXTRA_CA_CERTS names', async () => {
    const { registry, tokens, dir } = ctx;
    const login = (env: Record<string, string | undefined>) =>
      runCli(['login', '-u', user.user, '--password-stdin', '--authfile', join(dir, 'auth.json'), registry.host], {
        input: `${user.password}\n`,
        env: { HOSTPULL_EXTRA_CA_CERTS: undefined, NODE_OPTIONS: undefined, HOSTPULL_NO_SNAPSHOT: undefined, ...env },
      });
    const trusted = await login({ NODE_EXTRA_CA_CERTS: tokens.tlsCertPath });
    expect(trusted.code, trusted.stderr).toBe(0);
    const untrusted = await login({ NODE_EXTRA_CA_CERTS: undefined });
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toMatch(/TLS certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT: self[- ]signed certificate\)/);
    expect(untrusted.stderr).toContain('NODE_EXTRA_CA_CERTS');
  });
});
