/**
 * The helper's views of a layer, shared and counted by the mount requests of its key
 * (served-views.ts), and the interleaving in LazyLayers that made two requests overlap: an image
 * refused while its view of a layer was still mounting drops that view, while another image's
 * prepare over the same layer asks for it again. A fake helper over the real ServedViews (FUSE
 * aside); a real store.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HostpullError } from '../../../src/errors.js';
import type { FuseHelper } from '../../../src/lazy/fuse-helper.js';
import type { MountSpec } from '../../../src/lazy/helper-protocol.js';
import { LazyLayers } from '../../../src/lazy/lazy-layers.js';
import { ServedViews } from '../../../src/lazy/served-views.js';
import { silentLogger } from '../../../src/log.js';
import { digestOf, MediaType, TOC_ANNOTATION, TOC_MEDIA_TYPE, type Digest } from '../../../src/oci/index.js';
import type { RegistryClient } from '../../../src/registry/index.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { useTempDir } from '../../helpers/tmp.js';

const digest = (c: string) => `sha256:${c.repeat(64)}` as Digest;

/** A promise and the function that settles it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('ServedViews', () => {
  it('two overlapping requests for a key share one view, which goes with the last release only', async () => {
    const closed: string[] = [];
    const views = new ServedViews<string>(async (v) => void closed.push(v));
    const g = gate();
    let opens = 0;
    const open = (at: string) => async () => {
      opens++;
      await g.opened;
      return at;
    };
    // The second arrives while the first is still mounting.
    const first = views.acquire('k', open('/mnt/0'));
    const second = views.acquire('k', open('/mnt/1'));
    g.open();
    expect(await first).toBe('/mnt/0');
    expect(await second).toBe('/mnt/0');
    expect(opens).toBe(1);
    expect(views.get('k')).toBe('/mnt/0');

    expect(await views.release('k')).toBe(false);
    expect(closed).toEqual([]);
    expect(views.get('k')).toBe('/mnt/0');
    expect(await views.release('k')).toBe(true);
    expect(closed).toEqual(['/mnt/0']);
    expect(views.get('k')).toBeUndefined();
    // Nothing served: the caller may remove its mount point.
    expect(await views.release('k')).toBe(true);
    expect(closed).toEqual(['/mnt/0']);
  });

  it('a failed open fails every request waiting for it, holds nothing, and the next request opens again', async () => {
    const views = new ServedViews<string>(async () => undefined);
    const g = gate();
    const failing = async () => {
      await g.opened;
      throw new HostpullError('LAYER_UNSAFE', 'refused (test)');
    };
    const a = views.acquire('k', failing);
    const b = views.acquire('k', async () => '/mnt/never');
    g.open();
    await expect(a).rejects.toThrow('refused (test)');
    await expect(b).rejects.toThrow('refused (test)');
    expect(views.size).toBe(0);
    expect(await views.acquire('k', async () => '/mnt/2')).toBe('/mnt/2');
    expect(await views.release('k')).toBe(true);
  });

  it('closeAll closes a view whoever holds it, and one still mounting once it is', async () => {
    const closed: string[] = [];
    const views = new ServedViews<string>(async (v) => void closed.push(v));
    await views.acquire('a', async () => '/mnt/a');
    await views.acquire('a', async () => '/mnt/x');
    const g = gate();
    const b = views.acquire('b', async () => (await g.opened, '/mnt/b'));
    const closing = views.closeAll();
    g.open();
    await b;
    await closing;
    expect(closed.sort()).toEqual(['/mnt/a', '/mnt/b']);
    expect(views.size).toBe(0);
  });
});

describe('LazyLayers over a shared view', () => {
  const tmp = useTempDir('lazy-shared-view');

  it("an image refused while its view of a layer mounts does not take that layer's view from another image prepared meanwhile", async () => {
    const store = await ContentStore.open(join(await tmp(), 'root'));
    const tocD = Buffer.from('toc of D');
    const tocE = Buffer.from('toc of E');
    await store.blobs.putBytes(digestOf(tocD), tocD, TOC_MEDIA_TYPE);
    await store.blobs.putBytes(digestOf(tocE), tocE, TOC_MEDIA_TYPE);
    const D = digest('d');
    const E = digest('e');
    // The helper's bookkeeping is the real one; opening a view is a directory and a wait.
    const mountingD = gate();
    const requested: string[] = [];
    const opened: string[] = [];
    const views = new ServedViews<string>(async () => undefined);
    const helper = {
      pid: process.pid,
      exited: new Promise<void>(() => undefined),
      mount: async (spec: MountSpec) => {
        requested.push(spec.key);
        // E writes outside its package's prefix: the whole image is refused.
        if (spec.key === E) throw new HostpullError('LAYER_UNSAFE', 'layer E writes outside its prefix (test)');
        const mountpoint = await views.acquire(spec.key, async () => {
          await mountingD.opened;
          await mkdir(spec.mountpoint, { recursive: true });
          opened.push(spec.mountpoint);
          return spec.mountpoint;
        });
        return { mountpoint, ownedPaths: [] };
      },
      unmount: (key: string) => views.release(key),
      prefetch: async () => undefined,
      spans: () => new Promise<void>(() => undefined),
      stats: async () => ({ reads: 0 }),
      stop: async () => undefined,
    } as unknown as FuseHelper;
    const lazy = new LazyLayers({ store, client: {} as RegistryClient, logger: silentLogger(), helper, backgroundDelayMs: 60_000 });
    const repo = { registry: '127.0.0.1:1', repository: 'hostpull' };
    const candidate = (blob: Digest, toc: Buffer) => {
      const layer = { position: 0, blobDigest: blob, diffId: digest(blob === D ? '1' : '2'), mediaType: MediaType.OciLayerGzip, size: 1000 };
      return { layer, descriptor: { mediaType: layer.mediaType, digest: blob, size: 1000, annotations: { [TOC_ANNOTATION]: digestOf(toc) } }, claim: undefined };
    };
    try {
      // Image A = [E, D]: refused on E while D's view is still mounting, so A drops D's view...
      const a = lazy.choose(repo, [candidate(E, tocE), candidate(D, tocD)]);
      a.catch(() => undefined);
      await until('A to ask for both views', () => requested.length === 2);
      // ...and image B = [D], prepared meanwhile, finds no view of D and asks for one again.
      await new Promise((r) => setTimeout(r, 20));
      const b = lazy.choose(repo, [candidate(D, tocD)]);
      await until("B's mount request", () => requested.filter((k) => k === D).length === 2);
      mountingD.open();
      await expect(a).rejects.toMatchObject({ code: 'LAYER_UNSAFE' });
      const chosenB = await b;
      const mB = await lazy.mount(repo, chosenB.get(D)!, 'container-B');

      // One view of D, still served where B's container has its lowerdir, and its directory kept.
      expect(opened).toHaveLength(1);
      expect(mB.dir).toBe(opened[0]);
      expect(views.get(D)).toBe(mB.dir);
      expect(existsSync(mB.dir)).toBe(true);
      // A's drop ended its use: B's is the only one left, whose end takes the view down.
      expect(await views.release(D)).toBe(true);
      expect(views.get(D)).toBeUndefined();
    } finally {
      await lazy.close();
      store.close();
    }
  });
});
