/**
 * The background completion holds the TOC to the tar it rebuilt, entry by entry: the lazy view
 * showed the TOC's mtimes, so a TOC whose mtime differs from the tar's makes the layer unfit
 * (TOC_MISMATCH, nothing committed), while an honest TOC, read back from its JSON as a node reads
 * it, agrees to the fraction of a second a PAX mtime carries.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { completeLayer } from '../../../src/lazy/complete-layer.js';
import { SpanCache } from '../../../src/lazy/span-cache.js';
import { parseToc, type SeekableToc } from '../../../src/oci/seekable-toc.js';
import { writeSeekableLayer } from '../../../src/publish/seekable-layer.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { writeTar } from '../../helpers/tar-writer.js';
import { useTempDir } from '../../helpers/tmp.js';

/** A seekable layer of `tar` as publish makes it: the blob, its digests, and its TOC as a node parses it from JSON. */
async function published(tar: Buffer) {
  const parts: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _e, cb) {
      parts.push(chunk);
      cb();
    },
  });
  const layer = await writeSeekableLayer(Readable.from([tar]), out, { where: 'test tar', spanSize: 1024 });
  return { blob: Buffer.concat(parts), digest: layer.digest, diffId: layer.diffId, toc: parseToc(JSON.stringify(layer.toc), 'test TOC') };
}

describe('completeLayer holds the TOC to the tar', () => {
  const tmp = useTempDir('complete-layer');

  const tar = writeTar([
    { name: 'opt/', type: 'dir' },
    { name: 'opt/app/', type: 'dir' },
    // A PAX mtime with a fraction of a second, as `tar --format=posix` writes it.
    { name: 'opt/app/run', type: 'file', mode: 0o755, content: 'echo run\n', pax: { mtime: '1577836800.123456789' } },
    { name: 'opt/app/data', type: 'file', content: 'some data\n', mtime: 1600000000 },
  ]);

  async function complete(toc: SeekableToc, layer: Awaited<ReturnType<typeof published>>) {
    const dir = await tmp();
    const store = await ContentStore.open(join(dir, 'store'));
    const cache = new SpanCache(join(dir, 'spans'));
    for (const [i, s] of layer.toc.spans.entries()) await cache.put(i, layer.blob.subarray(s.c, s.c + s.cs));
    try {
      const row = await completeLayer({ blobDigest: layer.digest, diffId: layer.diffId, toc, claim: undefined }, { store, cache, ensureSpans: async () => undefined }).catch((err: unknown) => err);
      return { row, committed: store.layers.get(layer.diffId), layerDirs: await readdir(store.layout.layersDir) };
    } finally {
      store.close();
    }
  }

  it('an honest TOC agrees, PAX fractions of a second included, and the layer is committed', async () => {
    const layer = await published(tar);
    expect(layer.toc.entries.find((e) => e.path === 'opt/app/run')?.mtime).toBe(1577836800.123456789);
    const { row, committed } = await complete(layer.toc, layer);
    expect(row).toMatchObject({ diffId: layer.diffId });
    expect(committed).toBeDefined();
  });

  it.each([
    ['on a file, by a second', 'opt/app/data', 1600000001],
    ['on a file, by a fraction of a second', 'opt/app/run', 1577836800.5],
    ['on a directory', 'opt/', 0],
  ])('a TOC whose mtime differs (%s) is refused with TOC_MISMATCH and nothing is committed', async (_what, path, mtime) => {
    const layer = await published(tar);
    const liar: SeekableToc = { ...layer.toc, entries: layer.toc.entries.map((e) => (e.path === path ? { ...e, mtime } : e)) };
    expect(liar.entries.find((e) => e.path === path)?.mtime).toBe(mtime);
    expect(layer.toc.entries.find((e) => e.path === path)?.mtime).not.toBe(mtime);
    const { row, committed, layerDirs } = await complete(liar, layer);
    expect(row).toMatchObject({ code: 'TOC_MISMATCH', message: expect.stringContaining(`(${JSON.stringify(path)}): mtime ${mtime}`) });
    expect(committed).toBeUndefined();
    expect(layerDirs).toEqual([]);
  });
});
