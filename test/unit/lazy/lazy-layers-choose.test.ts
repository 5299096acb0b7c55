/**
 * LazyLayers.choose when a TOC cannot be had: a registry failing on the TOC blob is asked once
 * (its client's retries are its own), and the layer is pulled whole for that reason; so is a TOC
 * fetched ahead (fetchTocsAhead), which choose() waits for. And what the helper is asked for
 * with a learned prefetch list. A fake client and helper; a real store.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HostpullError } from '../../../src/errors.js';
import type { FuseHelper } from '../../../src/lazy/fuse-helper.js';
import type { MountSpec } from '../../../src/lazy/helper-protocol.js';
import { LazyLayers } from '../../../src/lazy/lazy-layers.js';
import { silentLogger } from '../../../src/log.js';
import { digestOf, MediaType, TOC_ANNOTATION, TOC_MEDIA_TYPE, type Digest } from '../../../src/oci/index.js';
import type { RegistryClient } from '../../../src/registry/index.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { useTempDir } from '../../helpers/tmp.js';

const digest = (c: string) => `sha256:${c.repeat(64)}` as Digest;

describe('LazyLayers.choose', () => {
  const tmp = useTempDir('lazy-choose');

  it('a TOC the registry does not give is asked for once, and its layer is pulled whole for that reason', async () => {
    const store = await ContentStore.open(join(await tmp(), 'root'));
    let asked = 0;
    const client = {
      fetchBlobBytes: async () => {
        asked++;
        throw new HostpullError('REGISTRY_UNAVAILABLE', 'registry down (test)');
      },
    } as unknown as RegistryClient;
    const lazy = new LazyLayers({ store, client, logger: silentLogger() });
    try {
      const layer = { position: 0, blobDigest: digest('a'), diffId: digest('b'), mediaType: MediaType.OciLayerGzip, size: 1000 };
      const chosen = await lazy.choose({ registry: '127.0.0.1:1', repository: 'hostpull' }, [
        { layer, descriptor: { mediaType: layer.mediaType, digest: layer.blobDigest, size: layer.size, annotations: { [TOC_ANNOTATION]: digest('c') } }, claim: undefined },
      ]);
      expect(chosen.size).toBe(0);
      expect(asked).toBe(1);
      expect(store.lazyLayers.arrivals().find((a) => a.blobDigest === layer.blobDigest)).toMatchObject({ mode: 'whole', reason: expect.stringContaining('registry down (test)') });
    } finally {
      await lazy.close();
      store.close();
    }
  });

  it("fetchTocsAhead asks once for each TOC a lazy layer could use, and choose() waits for that answer rather than asking again", async () => {
    const store = await ContentStore.open(join(await tmp(), 'root'));
    const asks: Digest[] = [];
    let fail!: (err: Error) => void;
    const client = {
      fetchBlobBytes: (_repo: unknown, d: Digest) => {
        asks.push(d);
        return new Promise<Buffer>((_, reject) => (fail = reject));
      },
    } as unknown as RegistryClient;
    const lazy = new LazyLayers({ store, client, logger: silentLogger() });
    const repo = { registry: '127.0.0.1:1', repository: 'hostpull' };
    try {
      const toc = digest('c');
      const gzip = { mediaType: MediaType.OciLayerGzip, digest: digest('a'), size: 1000, annotations: { [TOC_ANNOTATION]: toc } };
      const notGzip = { mediaType: MediaType.OciLayer, digest: digest('d'), size: 10, annotations: { [TOC_ANNOTATION]: digest('e') } };
      const noToc = { mediaType: MediaType.OciLayerGzip, digest: digest('f'), size: 10 };
      // Nothing that could be lazy: nothing asked.
      expect(lazy.fetchTocsAhead(repo, [notGzip, noToc])).toBe(false);
      expect(asks).toEqual([]);
      // A gzip layer with a TOC: asked once, however often the manifest comes.
      expect(lazy.fetchTocsAhead(repo, [notGzip, gzip, noToc])).toBe(true);
      expect(lazy.fetchTocsAhead(repo, [gzip])).toBe(true);
      expect(asks).toEqual([toc]);
      const layer = { position: 0, blobDigest: gzip.digest, diffId: digest('b'), mediaType: gzip.mediaType, size: gzip.size };
      const choosing = lazy.choose(repo, [{ layer, descriptor: gzip, claim: undefined }]);
      await new Promise((r) => setTimeout(r, 20));
      expect(asks).toEqual([toc]);
      fail(new HostpullError('REGISTRY_UNAVAILABLE', 'registry down (test)'));
      expect((await choosing).size).toBe(0);
      expect(asks).toEqual([toc]);
      expect(store.lazyLayers.arrivals().find((a) => a.blobDigest === gzip.digest)).toMatchObject({ mode: 'whole', reason: expect.stringContaining('registry down (test)') });
    } finally {
      await lazy.close();
      store.close();
    }
  });

  it("a view's learned prefetch list goes with its mount when it is in by then, else to the helper as soon as it comes; the mount does not wait for it", async () => {
    const store = await ContentStore.open(join(await tmp(), 'root'));
    // The helper judges the TOC: this fake one takes any bytes, and says what it was asked.
    const toc = Buffer.from('a table of contents');
    const tocDigest = digestOf(toc);
    await store.blobs.putBytes(tocDigest, toc, TOC_MEDIA_TYPE);
    const asked: string[] = [];
    const helper = {
      pid: process.pid,
      exited: new Promise<void>(() => undefined),
      mount: async (spec: MountSpec) => {
        asked.push(`mount ${spec.key} with ${spec.prefetch?.join(',') ?? 'no list'}`);
        return { mountpoint: spec.mountpoint, ownedPaths: [] };
      },
      prefetch: async (key: string, indexes: number[]) => void asked.push(`prefetch ${key} ${indexes.join(',')}`),
      unmount: async () => undefined,
      stop: async () => undefined,
    } as unknown as FuseHelper;
    const lazy = new LazyLayers({ store, client: {} as RegistryClient, logger: silentLogger(), helper });
    const repo = { registry: '127.0.0.1:1', repository: 'hostpull' };
    const candidate = (blob: Digest) => {
      const layer = { position: 0, blobDigest: blob, diffId: digest('b'), mediaType: MediaType.OciLayerGzip, size: 1000 };
      return { layer, descriptor: { mediaType: layer.mediaType, digest: blob, size: layer.size, annotations: { [TOC_ANNOTATION]: tocDigest } }, claim: undefined };
    };
    try {
      // The list is in before the TOC is read: it goes with the mount, and nothing follows it.
      const first = await lazy.choose(repo, [candidate(digest('a'))], undefined, Promise.resolve(new Map([[digest('a'), [3, 1, 2]]])));
      expect([...first.keys()]).toEqual([digest('a')]);
      await new Promise((r) => setTimeout(r, 20));
      expect(asked).toEqual([`mount ${digest('a')} with 3,1,2`]);

      // The list comes after the view is chosen: the mount went without it, the list follows it.
      let give!: (lists: ReadonlyMap<Digest, number[]>) => void;
      const later = new Promise<ReadonlyMap<Digest, number[]>>((resolve) => (give = resolve));
      const second = await lazy.choose(repo, [candidate(digest('d'))], undefined, later);
      expect([...second.keys()]).toEqual([digest('d')]);
      expect(asked.slice(1)).toEqual([`mount ${digest('d')} with no list`]);
      give(new Map([[digest('d'), [0, 5]]]));
      await new Promise((r) => setTimeout(r, 20));
      expect(asked.slice(1)).toEqual([`mount ${digest('d')} with no list`, `prefetch ${digest('d')} 0,5`]);
    } finally {
      await lazy.close();
      store.close();
    }
  });
});
