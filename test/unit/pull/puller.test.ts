import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostpullError, isHostpullError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { digestOf, type Digest } from '../../../src/oci/digest.js';
import { MediaType } from '../../../src/oci/mediatypes.js';
import type { ImageReference } from '../../../src/oci/reference.js';
import { Puller } from '../../../src/pull/puller.js';
import type { RegistryReader, RepositoryRef } from '../../../src/registry/index.js';
import { RetryPolicy, type RetryBudgetOptions } from '../../../src/registry/retry.js';
import { type BlobResponse, type FetchedManifest, type ManifestHead } from '../../../src/registry/client.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { useTempDir } from '../../helpers/tmp.js';

/**
 * An in-memory registry behind the RegistryReader interface the puller depends on. It counts requests so
 * tests can assert what was (not) fetched, and `breakBlob` cuts a blob's first transfer short.
 */
class FakeRegistry {
  readonly manifests = new Map<string, { bytes: Buffer; mediaType: string }>();
  readonly blobs = new Map<string, Buffer>();
  readonly calls: string[] = [];
  readonly blobOffsets: Array<{ digest: Digest; offset: number }> = [];
  /** digest → bytes after which the first transfer breaks with ECONNRESET. */
  readonly breakBlob = new Map<string, number>();

  putBlob(bytes: Buffer): Digest {
    const d = digestOf(bytes);
    this.blobs.set(d, bytes);
    return d;
  }

  putManifest(repository: string, tag: string, value: unknown, mediaType: string): Digest {
    const bytes = Buffer.from(JSON.stringify(value));
    const digest = digestOf(bytes);
    this.manifests.set(`${repository}:${tag}`, { bytes, mediaType });
    this.manifests.set(`${repository}@${digest}`, { bytes, mediaType });
    return digest;
  }

  #lookup(ref: ImageReference): { bytes: Buffer; mediaType: string } | undefined {
    return this.manifests.get(ref.digest ? `${ref.repository}@${ref.digest}` : `${ref.repository}:${ref.tag ?? 'latest'}`);
  }

  client(): RegistryReader {
    const retry = new RetryPolicy({ baseDelayMs: 1, budgetMs: 1000 });
    const client: RegistryReader = {
      retryBudget: (registry: string, options?: RetryBudgetOptions) => retry.begin(registry, options),
      headManifest: async (ref: ImageReference): Promise<ManifestHead | null> => {
        this.calls.push(`HEAD manifest ${ref.digest ?? ref.tag}`);
        const m = this.#lookup(ref);
        return m ? { digest: digestOf(m.bytes), mediaType: m.mediaType, size: m.bytes.length } : null;
      },
      getManifest: async (ref: ImageReference): Promise<FetchedManifest> => {
        this.calls.push(`GET manifest ${ref.digest ?? ref.tag}`);
        const m = this.#lookup(ref);
        if (!m) throw new HostpullError('MANIFEST_UNKNOWN', `no manifest ${ref.repository}:${ref.tag}`);
        return { bytes: m.bytes, digest: digestOf(m.bytes), mediaType: m.mediaType };
      },
      fetchBlobBytes: async (_repo: RepositoryRef, digest: Digest): Promise<Buffer> => {
        this.calls.push(`GET blob ${digest}`);
        const b = this.blobs.get(digest);
        if (!b) throw new HostpullError('BLOB_UNKNOWN', `no blob ${digest}`);
        return b;
      },
      getBlob: async (_repo: RepositoryRef, digest: Digest, opts: { offset?: number } = {}): Promise<BlobResponse> => {
        this.calls.push(`GET blob ${digest}`);
        const offset = opts.offset ?? 0;
        this.blobOffsets.push({ digest, offset });
        const b = this.blobs.get(digest);
        if (!b) throw new HostpullError('BLOB_UNKNOWN', `no blob ${digest}`);
        const cut = this.breakBlob.get(digest);
        if (cut !== undefined) {
          this.breakBlob.delete(digest);
          const stream = new Readable({ read() {} });
          stream.push(b.subarray(offset, cut));
          setImmediate(() => stream.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })));
          return { stream, offset };
        }
        return { stream: Readable.from([b.subarray(offset)]), offset };
      },
    };
    return client;
  }

  blobGets(): number {
    return this.calls.filter((c) => c.startsWith('GET blob')).length;
  }
}

const HOST = { os: 'linux', architecture: 'amd64' };

/** An image of the given layers (raw bytes; media type: uncompressed tar, never unpacked here). */
function pushImage(reg: FakeRegistry, repository: string, tag: string, layers: Buffer[]): { manifest: Digest; config: Digest; layers: Digest[] } {
  const layerDigests = layers.map((l) => reg.putBlob(l));
  const config = Buffer.from(JSON.stringify({ ...HOST, rootfs: { type: 'layers', diff_ids: layerDigests } }));
  const configDigest = reg.putBlob(config);
  const manifest = reg.putManifest(
    repository,
    tag,
    {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: configDigest, size: config.length },
      layers: layers.map((l, i) => ({ mediaType: MediaType.OciLayer, digest: layerDigests[i], size: l.length })),
    },
    MediaType.OciManifest,
  );
  return { manifest, config: configDigest, layers: layerDigests };
}

const ref = (repository: string, tag: string): ImageReference => ({ registry: 'reg.test:5000', repository, tag });

describe('Puller (blobs only, fake registry)', () => {
  const tmp = useTempDir('pull-unit');
  let store: ContentStore;
  let reg: FakeRegistry;
  let puller: Puller;
  beforeEach(async () => {
    store = await ContentStore.open(await tmp());
    reg = new FakeRegistry();
    puller = new Puller({ store, client: reg.client(), logger: silentLogger() });
  });
  afterEach(() => store.close());

  const base = Buffer.from('base layer '.repeat(100));
  const jdk = Buffer.from('jdk layer '.repeat(300));
  const mvn = Buffer.from('mvn layer '.repeat(50));

  it('fetches manifest, config and every layer on a cold pull, and records it', async () => {
    const image = pushImage(reg, 'hostpull', 'JDK11.0', [base, jdk]);
    const result = await puller.pull(ref('hostpull', 'JDK11.0'), { unpack: false });
    expect(result).toMatchObject({ ok: true, upToDate: false, manifestDigest: image.manifest, configDigest: image.config, layerHits: 0, layerMisses: 2 });
    const manifestBytes = reg.manifests.get('hostpull:JDK11.0')!.bytes.length;
    const configBytes = reg.blobs.get(image.config)!.length;
    expect(result.bytesFetched).toBe(manifestBytes + configBytes + base.length + jdk.length);
    for (const d of [image.manifest, image.config, ...image.layers]) expect(store.blobs.has(d)).toBe(true);
    expect(store.images.get('reg.test:5000/hostpull:JDK11.0')).toMatchObject({ manifestDigest: image.manifest, configDigest: image.config });
    expect(store.images.layers(image.manifest).map((l) => l.blobDigest)).toEqual(image.layers);
    expect(store.pulls.stats()).toMatchObject({ pulls: 1, layerMisses: 2, bytesFetched: result.bytesFetched });
  });

  it('stops after the HEAD when the manifest is already complete in the store', async () => {
    pushImage(reg, 'hostpull', 'JDK11.0', [base, jdk]);
    await puller.pull(ref('hostpull', 'JDK11.0'), { unpack: false });
    reg.calls.length = 0;
    const again = await puller.pull(ref('hostpull', 'JDK11.0'), { unpack: false });
    expect(reg.calls).toEqual(['HEAD manifest JDK11.0']);
    expect(again).toMatchObject({ upToDate: true, bytesFetched: 0, layerHits: 2, layerMisses: 0, bytesReused: base.length + jdk.length });
  });

  it('tells onManifest the manifest and its layers before it asks for the config; an up-to-date pull does not', async () => {
    const image = pushImage(reg, 'hostpull', 'JDK11.0', [base, jdk]);
    const told: unknown[] = [];
    const onManifest = (m: { manifestDigest: Digest; layers: readonly { digest: Digest }[] }) => {
      reg.calls.push('onManifest');
      told.push({ manifestDigest: m.manifestDigest, layers: m.layers.map((l) => l.digest) });
    };
    await puller.pull(ref('hostpull', 'JDK11.0'), { unpack: false, onManifest });
    expect(reg.calls.slice(0, 3)).toEqual(['GET manifest JDK11.0', 'onManifest', `GET blob ${image.config}`]);
    expect(told).toEqual([{ manifestDigest: image.manifest, layers: image.layers }]);
    await puller.pull(ref('hostpull', 'JDK11.0'), { unpack: false, onManifest });
    expect(told).toHaveLength(1);
  });

  it('fetches only the layer it has not seen for a new combination', async () => {
    pushImage(reg, 'hostpull', 'JDK11.0', [base, jdk]);
    await puller.pull(ref('hostpull', 'JDK11.0'), { unpack: false });
    const second = pushImage(reg, 'hostpull', 'JDK11.0-MVN3.8', [base, jdk, mvn]);
    reg.calls.length = 0;
    const result = await puller.pull(ref('hostpull', 'JDK11.0-MVN3.8'), { unpack: false });
    const layerGets = reg.calls.filter((c) => c.startsWith('GET blob') && second.layers.some((d) => c.endsWith(d)));
    expect(layerGets).toEqual([`GET blob ${second.layers[2]}`]);
    expect(result).toMatchObject({ layerHits: 2, layerMisses: 1, bytesReused: base.length + jdk.length });
  });

  it('picks this host’s platform from an index', async () => {
    const image = pushImage(reg, 'pkg/jdk', 'amd64-only', [jdk]);
    const manifestBytes = reg.manifests.get('pkg/jdk:amd64-only')!.bytes;
    const index = reg.putManifest(
      'pkg/jdk',
      '11.0',
      {
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [
          { mediaType: MediaType.OciManifest, digest: digestOf('other'), size: 10, platform: { os: 'linux', architecture: 's390x' } },
          { mediaType: MediaType.OciManifest, digest: image.manifest, size: manifestBytes.length, platform: HOST },
        ],
      },
      MediaType.OciIndex,
    );
    const result = await puller.pull(ref('pkg/jdk', '11.0'), { unpack: false, platform: HOST });
    expect(result.manifestDigest).toBe(image.manifest);
    expect(store.images.get('reg.test:5000/pkg/jdk:11.0')).toMatchObject({ indexDigest: index, manifestDigest: image.manifest });
    expect(store.blobs.has(index)).toBe(true);
    reg.calls.length = 0;
    expect(await puller.pull(ref('pkg/jdk', '11.0'), { unpack: false, platform: HOST })).toMatchObject({ upToDate: true });
    expect(reg.calls).toEqual(['HEAD manifest 11.0']);
    // The same index asked for another platform is not "up to date" with the amd64 image.
    const err = await puller.pull(ref('pkg/jdk', '11.0'), { unpack: false, platform: { os: 'linux', architecture: 'riscv64' } }).catch((e: unknown) => e);
    expect(isHostpullError(err, 'PLATFORM_UNAVAILABLE')).toBe(true);
  });

  it('refuses a layer whose bytes do not match its digest, keeps no partial, and records the failure', async () => {
    const image = pushImage(reg, 'hostpull', 'BAD1.0', [base, jdk]);
    const tampered = Buffer.from(jdk);
    tampered[10] = tampered[10]! ^ 0xff;
    reg.blobs.set(image.layers[1]!, tampered);
    const err = await puller.pull(ref('hostpull', 'BAD1.0'), { unpack: false }).catch((e: unknown) => e);
    expect(isHostpullError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect(store.blobs.has(image.layers[1]!)).toBe(false);
    await expect(stat(store.layout.ingestPath(image.layers[1]!))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(store.images.get('reg.test:5000/hostpull:BAD1.0')).toBeUndefined();
    expect(store.pulls.stats()).toMatchObject({ pulls: 1, failedPulls: 1 });
  });

  it('refuses a config that does not match its descriptor', async () => {
    const image = pushImage(reg, 'hostpull', 'CFG1.0', [base]);
    reg.blobs.set(image.config, Buffer.from('{"not":"it"}'));
    const err = await puller.pull(ref('hostpull', 'CFG1.0'), { unpack: false }).catch((e: unknown) => e);
    expect(isHostpullError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect(store.blobs.has(image.config)).toBe(false);
  });

  it('resumes a broken layer transfer with a Range from what reached the disk', async () => {
    const image = pushImage(reg, 'hostpull', 'JDK11.0', [jdk]);
    reg.breakBlob.set(image.layers[0]!, 1000);
    const result = await puller.pull(ref('hostpull', 'JDK11.0'), { unpack: false });
    expect(reg.blobOffsets).toEqual([
      { digest: image.layers[0], offset: 0 },
      { digest: image.layers[0], offset: 1000 },
    ]);
    expect(result.layers[0]).toMatchObject({ hit: false, fetchedBytes: jdk.length });
    expect(store.blobs.has(image.layers[0]!)).toBe(true);
  });

  it('commits a partial download that is already whole without asking the registry for it', async () => {
    // A process killed after the blob's last byte reached the disk, before its commit.
    const image = pushImage(reg, 'hostpull', 'JDK11.0', [jdk]);
    await mkdir(store.layout.ingestDir, { recursive: true });
    await writeFile(store.layout.ingestPath(image.layers[0]!), jdk);
    const result = await puller.pull(ref('hostpull', 'JDK11.0'), { unpack: false });
    expect(reg.blobOffsets).toEqual([]);
    expect(result.layers[0]).toMatchObject({ fetchedBytes: 0, resumedFrom: jdk.length });
    expect(store.blobs.has(image.layers[0]!)).toBe(true);
    expect((await readFile(store.blobs.path(image.layers[0]!))).equals(jdk)).toBe(true);
  });

  it('drops a whole partial download whose bytes are not the blob: the pull says so, the next one fetches it', async () => {
    const image = pushImage(reg, 'hostpull', 'JDK11.0', [jdk]);
    const corrupt = Buffer.from(jdk);
    corrupt[corrupt.length - 1] ^= 1;
    await mkdir(store.layout.ingestDir, { recursive: true });
    await writeFile(store.layout.ingestPath(image.layers[0]!), corrupt);
    const err = await puller.pull(ref('hostpull', 'JDK11.0'), { unpack: false }).catch((e: unknown) => e);
    expect(isHostpullError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect(reg.blobOffsets).toEqual([]);
    await expect(stat(store.layout.ingestPath(image.layers[0]!))).rejects.toMatchObject({ code: 'ENOENT' });
    const again = await puller.pull(ref('hostpull', 'JDK11.0'), { unpack: false });
    expect(reg.blobOffsets).toEqual([{ digest: image.layers[0], offset: 0 }]);
    expect(again.layers[0]).toMatchObject({ fetchedBytes: jdk.length });
  });

  it('fetches a blob once when two pulls need it at the same time', async () => {
    pushImage(reg, 'hostpull', 'JDK11.0', [base, jdk]);
    pushImage(reg, 'hostpull', 'JDK11.0-MVN3.8', [base, jdk, mvn]);
    const [a, b] = await Promise.all([
      puller.pull(ref('hostpull', 'JDK11.0'), { unpack: false }),
      puller.pull(ref('hostpull', 'JDK11.0-MVN3.8'), { unpack: false }),
    ]);
    for (const layer of [base, jdk, mvn]) {
      expect(reg.blobOffsets.filter((o) => o.digest === digestOf(layer))).toHaveLength(1);
    }
    expect(a.layerMisses + b.layerMisses).toBe(3);
    expect(a.layerHits + b.layerHits).toBe(2);
  });
});
