/**
 * `hostpull pull` through a real CNCF distribution registry: only unseen blobs are fetched
 * (counted on the registry side), bad content never lands in the store, a killed pull resumes
 * with Range, and concurrent pulls fetch each blob once.
 */
import { chmod, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli } from '../../helpers/cli.js';
import { buildLayer, packageFiles, pushFixtureSet, pushImage, type FixtureSet } from '../../helpers/fixtures.js';
import { startProxy, type TestProxy } from '../../helpers/proxy.js';
import { blobRequests, startRegistry, type TestRegistry } from '../../helpers/registry.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

let registry: TestRegistry;
let fixtures: FixtureSet;
const temps: string[] = [];

async function tempRoot(): Promise<string> {
  const d = await makeTempDir('pull');
  temps.push(d);
  return d;
}

function pull(root: string, server: string, ref: string, extra: string[] = []) {
  return runCli(['--root', root, '--server', server, 'pull', ref, '--json', ...extra], { timeoutMs: 120_000 });
}

/** Resolves once the proxy has sent more than `bytes` of blob `digest` to the client. */
async function streamed(proxy: TestProxy, digest: string, bytes: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!((proxy.requests.find((r) => r.path.endsWith(`/blobs/${digest}`))?.bytes ?? 0) > bytes)) {
    if (Date.now() > deadline) throw new Error(`blob ${digest} never streamed ${bytes} bytes`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every file under blobs/ hashes to its name. */
async function verifyStoredBlobs(root: string): Promise<number> {
  let n = 0;
  const base = join(root, 'blobs', 'sha256');
  for (const fan of await readdir(base)) {
    for (const hex of await readdir(join(base, fan))) {
      const data = await readFile(join(base, fan, hex));
      expect(createHash('sha256').update(data).digest('hex')).toBe(hex);
      n++;
    }
  }
  return n;
}

async function blobFileExists(root: string, digest: string): Promise<boolean> {
  const hex = digest.slice('sha256:'.length);
  return stat(join(root, 'blobs', 'sha256', hex.slice(0, 2), hex)).then(
    () => true,
    () => false,
  );
}

beforeAll(async () => {
  registry = await startRegistry();
  fixtures = await pushFixtureSet(registry.url);
});

afterAll(async () => {
  await registry?.stop();
  for (const d of temps) await removeTempDir(d);
});

describe('pull fetches only blobs the store has not seen', () => {
  it('second composite fetches exactly the one new layer, a repeat fetches no blob', async () => {
    const root = await tempRoot();
    const first = await pull(root, registry.host, 'JDK11.0-MVN3.8-GRD7.0');
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const r1 = JSON.parse(first.stdout);
    expect(r1.layerMisses).toBe(4);
    expect(r1.manifestDigest).toBe(fixtures.images['JDK11.0-MVN3.8-GRD7.0']!.manifestDigest);

    const mark = await registry.mark();
    const second = await pull(root, registry.host, 'JDK11.0-MVN3.7-GRD7.0');
    expect(second.code).toBe(0);
    const served = blobRequests(await registry.since(mark));
    const target = fixtures.images['JDK11.0-MVN3.7-GRD7.0']!;
    const mvn37 = fixtures.packages['MVN3.7']!;
    // Registry side: the MVN3.7 layer and the new config, nothing else.
    expect(served.map((e) => e.path.split('/blobs/')[1]).sort()).toEqual([mvn37.digest, target.configDigest].sort());
    expect(served.find((e) => e.path.endsWith(mvn37.digest))!.bytes).toBe(mvn37.size);
    // A tag this store has not got: one GET of the manifest by tag, no HEAD before it.
    const manifestRequests = (await registry.since(mark)).filter((e) => e.path.includes('/manifests/'));
    expect(manifestRequests.map((e) => `${e.method} ${e.path.split('/manifests/')[1]}`)).toEqual(['GET JDK11.0-MVN3.7-GRD7.0']);
    const r2 = JSON.parse(second.stdout);
    expect(r2.layerHits).toBe(3);
    expect(r2.layerMisses).toBe(1);
    expect(r2.bytesFetched).toBe(mvn37.size + target.config.length + target.manifest.length);

    const mark2 = await registry.mark();
    const again = await pull(root, registry.host, 'JDK11.0-MVN3.7-GRD7.0');
    expect(again.code).toBe(0);
    const entries = await registry.since(mark2);
    expect(blobRequests(entries)).toEqual([]);
    // HEAD only: the manifest digest is already complete in the store.
    expect(entries.filter((e) => e.method === 'GET')).toEqual([]);
    expect(JSON.parse(again.stdout).upToDate).toBe(true);

    const stats = await runCli(['--root', root, 'stats', '--json']);
    const s = JSON.parse(stats.stdout);
    expect(s.pulls).toBe(3);
    expect(s.layerHits).toBe(7);
    expect(s.layerMisses).toBe(5);
    // One copy of each layer: the unpacked one. Only the 2 manifests and 2 configs stay as blobs.
    expect(await verifyStoredBlobs(root)).toBe(2 + 2);
  });

  it('images and inspect show what was pulled; an unknown tag fails with exit 1 and a hint', async () => {
    const root = await tempRoot();
    expect((await pull(root, registry.host, 'JDK11.0-GRD7.0')).code).toBe(0);
    const images = await runCli(['--root', root, 'images', '--json']);
    const list = JSON.parse(images.stdout);
    expect(list.map((i: { reference: string }) => i.reference)).toEqual([`${registry.host}/hostpull:JDK11.0-GRD7.0`]);
    const inspect = await runCli(['--root', root, '--server', registry.host, 'inspect', 'JDK11.0-GRD7.0']);
    const doc = JSON.parse(inspect.stdout);
    expect(doc.config.rootfs.diff_ids).toEqual([fixtures.base.diffId, fixtures.packages['JDK11.0']!.diffId, fixtures.packages['GRD7.0']!.diffId]);
    expect(doc.layers.every((l: { unpackedAt: string | null }) => l.unpackedAt !== null)).toBe(true);

    const unknown = await pull(root, registry.host, 'NOPE1.0-JDK11.0');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/NOPE1\.0-JDK11\.0/);
    expect(unknown.stderr).toMatch(/hint:/);
  });

  it('usage errors exit 2', async () => {
    const r = await runCli(['pull']);
    expect(r.code).toBe(2);
    const c = await runCli(['--server', registry.host, 'pull', 'X', '--concurrency', 'zero']);
    expect(c.code).toBe(2);
  });
});

describe('bad content from the registry never lands in the store', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startProxy(registry.url);
  });
  afterAll(async () => proxy?.close());

  for (const fault of ['corrupt', 'wrong-length', 'truncate'] as const) {
    it(`a ${fault} layer blob fails the pull, naming blob and registry, with no row and no file`, async () => {
      const root = await tempRoot();
      const victim = fixtures.packages['GRD7.0']!;
      proxy.setFault((req) => (req.method === 'GET' && req.path.endsWith(`/blobs/${victim.digest}`) ? fault : undefined));
      try {
        // A short body is resumed as long as each attempt brings bytes; one that brings none
        // (the last byte, halved to nothing) is retried for the budget, kept short here.
        const r = await pull(root, proxy.host, 'JDK11.0-GRD7.0', ['--registry-retry-budget', '1s']);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(victim.digest.slice(0, 19));
        expect(r.stderr).toContain(proxy.host);
        // The error the pull ends with names the blob itself, not only the log lines before it.
        expect(r.stderr).toMatch(new RegExp(`^hostpull: .*${victim.digest.slice(0, 19)}`, 'm'));
      } finally {
        proxy.clearFaults();
      }
      expect(await blobFileExists(root, victim.digest)).toBe(false);
      const blobs = JSON.parse((await runCli(['--root', root, 'stats', '--json'])).stdout);
      expect(blobs.failedPulls).toBe(1);
      const inspect = await runCli(['--root', root, '--server', proxy.host, 'inspect', 'JDK11.0-GRD7.0']);
      expect(inspect.code).toBe(1);
      // The store is still usable: the same pull without the fault succeeds (and with
      // --keep-blobs the verified blob is there to see).
      const ok = await pull(root, proxy.host, 'JDK11.0-GRD7.0', ['--keep-blobs']);
      expect(ok.code).toBe(0);
      expect(await blobFileExists(root, victim.digest)).toBe(true);
    });
  }
});

describe('a killed pull resumes with Range', () => {
  it('kill -9 in the middle of a large blob, then pull again: partial transfer, all blobs verify', async () => {
    const big = buildLayer(packageFiles('BIG1.0', { bytes: 24 * 1024 * 1024, seed: 7 }));
    await pushImage(registry.url, 'hostpull', 'BIG1.0', [fixtures.base, big], { cmd: ['/bin/sh'] });
    const proxy = await startProxy(registry.url);
    const root = await tempRoot();
    try {
      proxy.setFault((req) => (req.method === 'GET' && req.path.endsWith(`/blobs/${big.digest}`) ? { throttleBytesPerSec: 4 * 1024 * 1024 } : undefined));
      const child = spawnCli(['--root', root, '--server', proxy.host, 'pull', 'BIG1.0']);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await streamed(proxy, big.digest, 3 * 1024 * 1024);
      child.kill('SIGKILL');
      await exited;
      proxy.clearFaults();
      const before = proxy.requests.length;
      const r = await pull(root, proxy.host, 'BIG1.0');
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const resumed = proxy.requests.slice(before).filter((q) => q.path.endsWith(`/blobs/${big.digest}`));
      expect(resumed).toHaveLength(1);
      expect(resumed[0]!.range).toMatch(/^bytes=[1-9]\d*-$/);
      const start = Number(/bytes=(\d+)-/.exec(resumed[0]!.range!)![1]);
      expect(resumed[0]!.bytes).toBe(big.size - start);
      const result = JSON.parse(r.stdout);
      const layer = result.layers.find((l: { digest: string }) => l.digest === big.digest);
      expect(layer.resumedFrom).toBe(start);
      expect(layer.fetchedBytes).toBe(big.size - start);
      await verifyStoredBlobs(root);
    } finally {
      await proxy.close();
    }
  });
});

describe('an interrupted pull', () => {
  it('Ctrl-C in the middle of a blob: says it was interrupted, exits 130, and the next pull resumes', async () => {
    const big = buildLayer(packageFiles('BIG2.0', { bytes: 16 * 1024 * 1024, seed: 11 }));
    await pushImage(registry.url, 'hostpull', 'BIG2.0', [fixtures.base, big], { cmd: ['/bin/sh'] });
    const proxy = await startProxy(registry.url);
    const root = await tempRoot();
    try {
      proxy.setFault((req) => (req.method === 'GET' && req.path.endsWith(`/blobs/${big.digest}`) ? { throttleBytesPerSec: 4 * 1024 * 1024 } : undefined));
      const child = spawnCli(['--root', root, '--server', proxy.host, 'pull', 'BIG2.0', '--no-daemon']);
      let stderr = '';
      child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await streamed(proxy, big.digest, 2 * 1024 * 1024);
      child.kill('SIGINT');
      expect(await exited).toBe(130);
      expect(stderr).toContain(`fetching blob ${big.digest}`);
      expect(stderr).toContain('interrupted by SIGINT');
      expect(stderr).not.toContain('The operation was aborted');
      expect(stderr).toContain('hint: the partial download is kept; pulling again resumes it');
      proxy.clearFaults();
      const before = proxy.requests.length;
      const r = await pull(root, proxy.host, 'BIG2.0');
      expect(r.code).toBe(0);
      expect(proxy.requests.slice(before).find((q) => q.path.endsWith(`/blobs/${big.digest}`))?.range).toMatch(/^bytes=[1-9]\d*-$/);
    } finally {
      await proxy.close();
    }
  });
});

describe('one copy of each layer', () => {
  const layerBlobs = () => [fixtures.base, ...Object.values(fixtures.packages)];
  const storedLayerBlobs = async (root: string) => {
    const out: string[] = [];
    for (const l of layerBlobs()) if (await blobFileExists(root, l.digest)) out.push(l.digest);
    return out.sort();
  };

  it('a pull drops each blob once its layer is unpacked; --keep-blobs and HOSTPULL_KEEP_BLOBS keep them', async () => {
    const dropped = await tempRoot();
    const r = await pull(dropped, registry.host, 'JDK11.0-GRD7.0');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).layers.every((l: { layerId?: number }) => typeof l.layerId === 'number')).toBe(true);
    expect(await storedLayerBlobs(dropped)).toEqual([]);
    expect(await readdir(join(dropped, 'ingest'))).toEqual([]);
    const stats = JSON.parse((await runCli(['--root', dropped, 'stats', '--json'])).stdout);
    expect(stats.store.layers).toBe(3);
    expect(stats.store.blobs).toBe(2); // manifest and config

    const kept = await tempRoot();
    expect((await pull(kept, registry.host, 'JDK11.0-GRD7.0', ['--keep-blobs'])).code).toBe(0);
    const wanted = [fixtures.base.digest, fixtures.packages['JDK11.0']!.digest, fixtures.packages['GRD7.0']!.digest].sort();
    expect(await storedLayerBlobs(kept)).toEqual(wanted);
    expect(await verifyStoredBlobs(kept)).toBe(3 + 2);

    const byEnv = await tempRoot();
    const e = await runCli(['--root', byEnv, '--server', registry.host, 'pull', 'JDK11.0-GRD7.0'], { env: { HOSTPULL_KEEP_BLOBS: '1' } });
    expect(e.code).toBe(0);
    expect(await storedLayerBlobs(byEnv)).toEqual(wanted);
  });

  it('--no-unpack keeps the blobs; a later pull unpacks them without fetching, then drops them', async () => {
    const root = await tempRoot();
    expect((await pull(root, registry.host, 'JDK11.0-GRD7.0', ['--no-unpack'])).code).toBe(0);
    const wanted = [fixtures.base.digest, fixtures.packages['JDK11.0']!.digest, fixtures.packages['GRD7.0']!.digest].sort();
    expect(await storedLayerBlobs(root)).toEqual(wanted);
    const mark = await registry.mark();
    const r = await pull(root, registry.host, 'JDK11.0-GRD7.0');
    expect(r.code).toBe(0);
    expect(blobRequests(await registry.since(mark))).toEqual([]);
    expect(JSON.parse(r.stdout).layers.every((l: { layerId?: number; fetchedBytes: number }) => typeof l.layerId === 'number' && l.fetchedBytes === 0)).toBe(true);
    expect(await storedLayerBlobs(root)).toEqual([]);
  });

  it('a stored blob that no longer matches its digest is fetched again instead of failing the pull', async () => {
    const root = await tempRoot();
    expect((await pull(root, registry.host, 'JDK11.0-GRD7.0', ['--no-unpack'])).code).toBe(0);
    const victim = fixtures.packages['GRD7.0']!;
    const hex = victim.digest.slice('sha256:'.length);
    const file = join(root, 'blobs', 'sha256', hex.slice(0, 2), hex);
    await chmod(file, 0o644);
    const bytes = await readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await writeFile(file, bytes);
    const mark = await registry.mark();
    const r = await pull(root, registry.host, 'JDK11.0-GRD7.0');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('stored layer blob is corrupt; quarantined, fetching it again');
    expect(r.stderr).toContain(victim.digest);
    expect(blobRequests(await registry.since(mark)).map((e) => e.path.split('/blobs/')[1])).toEqual([victim.digest]);
    expect(JSON.parse(r.stdout).layers.find((l: { digest: string }) => l.digest === victim.digest)).toMatchObject({ fetchedBytes: victim.size });
    expect(await storedLayerBlobs(root)).toEqual([]);
  });

  it('mount of an image whose layers GC evicted fetches them again and mounts', async () => {
    const root = await tempRoot();
    expect((await pull(root, registry.host, 'JDK11.0-GRD7.0')).code).toBe(0);
    const gc = await runCli(['--root', root, 'gc', '--max-store-size', '0', '--min-age', '0', '--json', '--no-daemon']);
    expect(JSON.parse(gc.stdout)).toMatchObject({ layersRemoved: 3 });
    const mark = await registry.mark();
    const dir = join(root, 'mnt');
    const m = await runCli(['--root', root, '--server', registry.host, 'mount', 'JDK11.0-GRD7.0', dir, '--json']);
    try {
      expect(m.stderr).toBe('');
      expect(m.code).toBe(0);
      const served = blobRequests(await registry.since(mark)).map((e) => e.path.split('/blobs/')[1]);
      expect(served).toEqual(expect.arrayContaining([fixtures.base.digest, fixtures.packages['JDK11.0']!.digest, fixtures.packages['GRD7.0']!.digest]));
      expect(await readdir(join(dir, 'opt'))).toEqual(expect.arrayContaining(['jdk-11.0', 'grd-7.0']));
    } finally {
      await runCli(['--root', root, 'umount', dir]);
    }
    expect(await storedLayerBlobs(root)).toEqual([]);
  });
});

describe('concurrent pulls', () => {
  it('8 processes over overlapping tags fetch each layer blob once, without errors', async () => {
    const root = await tempRoot();
    const tags = ['JDK11.0-MVN3.8-GRD7.0', 'JDK11.0-MVN3.7-GRD7.0', 'JDK17.0-MVN3.8-GRD7.0', 'JDK11.0-GRD7.0'];
    const mark = await registry.mark();
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => pull(root, registry.host, tags[i % tags.length]!)));
    for (const r of results) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    const served = blobRequests(await registry.since(mark));
    const layerDigests = new Set([fixtures.base, ...Object.values(fixtures.packages)].map((l) => l.digest));
    const counts = new Map<string, number>();
    for (const e of served) {
      const d = e.path.split('/blobs/')[1]!;
      if (layerDigests.has(d)) counts.set(d, (counts.get(d) ?? 0) + 1);
    }
    // base, JDK11.0, JDK17.0, MVN3.8, MVN3.7, GRD7.0: six distinct layers, each served once.
    expect([...counts.values()]).toEqual([1, 1, 1, 1, 1, 1]);
    await verifyStoredBlobs(root);
  });
});

describe('registry authentication', () => {
  let secured: TestRegistry;
  beforeAll(async () => {
    secured = await startRegistry({ htpasswd: { user: 'alice', password: 's3cret' } });
    const auth = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
    await pushFixtureSet(secured.url, { codes: ['JDK11.0', 'GRD7.0'], composites: ['JDK11.0-GRD7.0'], auth });
  });
  afterAll(async () => secured?.stop());

  it('a 401 without credentials says how to provide them', async () => {
    const root = await tempRoot();
    const r = await runCli(['--root', root, '--server', secured.host, 'pull', 'JDK11.0-GRD7.0'], { env: { HOSTPULL_REGISTRY_AUTH: undefined, DOCKER_CONFIG: root } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/401|unauthori[sz]ed/i);
    expect(r.stderr).toContain(`hostpull login ${secured.host}`);
  });

  it('Basic credentials from HOSTPULL_REGISTRY_AUTH and from a docker config.json work', async () => {
    const root = await tempRoot();
    const env = await runCli(['--root', root, '--server', secured.host, 'pull', 'JDK11.0-GRD7.0'], {
      env: { HOSTPULL_REGISTRY_AUTH: `${secured.host}=alice:s3cret`, DOCKER_CONFIG: root },
    });
    expect(env.stderr).toBe('');
    expect(env.code).toBe(0);

    const root2 = await tempRoot();
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(root2, 'config.json'), JSON.stringify({ auths: { [secured.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }));
    const docker = await runCli(['--root', root2, '--server', secured.host, 'pull', 'JDK11.0-GRD7.0'], { env: { HOSTPULL_REGISTRY_AUTH: undefined, DOCKER_CONFIG: root2 } });
    expect(docker.stderr).toBe('');
    expect(docker.code).toBe(0);
  });
});
