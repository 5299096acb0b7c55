/**
 * A FUSE helper that exits under LazyLayers (crashed, killed): its mounts, which answer ENOTCONN
 * from then on, are detached and its mount dir removed at once, not at the daemon's next start,
 * and its layers' background pulls settle as failed. A fake helper; a real store; as root, a
 * bind mount stands in for the dead FUSE mount of the view.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HostpullError } from '../../../src/errors.js';
import type { FuseHelper } from '../../../src/lazy/fuse-helper.js';
import type { MountSpec } from '../../../src/lazy/helper-protocol.js';
import { LazyLayers } from '../../../src/lazy/lazy-layers.js';
import { silentLogger } from '../../../src/log.js';
import { digestOf, MediaType, TOC_ANNOTATION, TOC_MEDIA_TYPE, type Digest } from '../../../src/oci/index.js';
import type { RegistryClient } from '../../../src/registry/index.js';
import { listMountsUnder, performMount } from '../../../src/rootfs/index.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { useTempDir } from '../../helpers/tmp.js';

const digest = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const asRoot = process.getuid?.() === 0;

describe('LazyLayers when its helper exits', () => {
  const tmp = useTempDir('lazy-helper-gone');

  it(`detaches the helper's mounts and removes its mount dir at once; its layers' background pulls settle as failed${asRoot ? '' : ' (not root: no mount stands in for the view)'}`, async () => {
    const dir = await tmp();
    const store = await ContentStore.open(join(dir, 'root'));
    const toc = Buffer.from('a table of contents');
    await store.blobs.putBytes(digestOf(toc), toc, TOC_MEDIA_TYPE);
    const elsewhere = join(dir, 'elsewhere');
    await mkdir(elsewhere);
    // The helper's requests fail once it is gone, as FuseHelper's do (LAZY_HELPER_GONE).
    let exit!: () => void;
    const exited = new Promise<void>((resolve) => (exit = resolve));
    const gone = exited.then(() => Promise.reject(new HostpullError('LAZY_HELPER_GONE', 'the lazy-layer helper exited (test)')));
    gone.catch(() => undefined);
    const views: string[] = [];
    const helper = {
      pid: process.pid,
      exited,
      mount: async (spec: MountSpec) => {
        await mkdir(spec.mountpoint, { recursive: true });
        if (asRoot) performMount({ type: 'bind', source: elsewhere, target: spec.mountpoint, options: ['bind', 'ro'] });
        views.push(spec.mountpoint);
        return { mountpoint: spec.mountpoint, ownedPaths: [] };
      },
      unmount: () => gone,
      prefetch: () => gone,
      spans: () => gone,
      stats: () => gone,
      stop: async () => undefined,
    } as unknown as FuseHelper;
    const lazy = new LazyLayers({ store, client: {} as RegistryClient, logger: silentLogger(), helper, backgroundDelayMs: 0 });
    const repo = { registry: '127.0.0.1:1', repository: 'hostpull' };
    const layer = { position: 0, blobDigest: digest('a'), diffId: digest('b'), mediaType: MediaType.OciLayerGzip, size: 1000 };
    try {
      const chosen = await lazy.choose(repo, [{ layer, descriptor: { mediaType: layer.mediaType, digest: layer.blobDigest, size: 1000, annotations: { [TOC_ANNOTATION]: digestOf(toc) } }, claim: undefined }]);
      const m = await lazy.mount(repo, chosen.get(layer.blobDigest)!, 'container-1');
      expect(views).toEqual([m.dir]);
      const helperDir = join(m.dir, '..');
      if (asRoot) expect(listMountsUnder(helperDir).map((x) => x.mountPoint)).toEqual([m.dir]);

      exit();
      // The background pull fails without its helper, while the container still holds the layer.
      expect(await lazy.completion(layer.blobDigest)).toBeUndefined();
      expect(store.lazyLayers.arrivals().find((a) => a.blobDigest === layer.blobDigest)).toMatchObject({ mode: 'lazy', reason: expect.stringContaining('LAZY_HELPER_GONE') });
      for (let i = 0; i < 100 && existsSync(helperDir); i++) await new Promise((r) => setTimeout(r, 10));
      expect(existsSync(helperDir)).toBe(false);
      expect(listMountsUnder(helperDir)).toEqual([]);
      // What the view showed is untouched: only the mount was detached.
      expect(existsSync(elsewhere)).toBe(true);
      await lazy.release('container-1');
    } finally {
      await lazy.close();
      store.close();
    }
  });
});
