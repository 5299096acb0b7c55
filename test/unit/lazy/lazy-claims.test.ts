/**
 * One verdict for one layer, lazy or not (DESIGN §2 "The trust boundary"): the tree a lazy layer
 * is served from is built from its TOC through the unpack's entry checker, so every hostile
 * package is refused from its TOC with the code and rule that the unpack of its bytes gives.
 * A TOC that hides a hostile entry shows only what it lists (all inside the claim), and the
 * background completion then refuses the layer as an unpack does.
 */
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { completeLayer } from '../../../src/lazy/complete-layer.js';
import { LazyTree } from '../../../src/lazy/lazy-tree.js';
import { SpanCache } from '../../../src/lazy/span-cache.js';
import { isHostpullError } from '../../../src/errors.js';
import type { SeekableToc } from '../../../src/oci/seekable-toc.js';
import { writeSeekableLayer } from '../../../src/publish/seekable-layer.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { applyLayer } from '../../../src/unpack/index.js';
import { HOSTILE, packageLayer } from '../../helpers/hostile-packages.js';
import { writeTar } from '../../helpers/tar-writer.js';
import { useTempDir } from '../../helpers/tmp.js';

/** A seekable layer of `tar` (span gzip + TOC, as publish makes them), its blob kept in memory. */
async function seekable(tar: Buffer, spanSize = 64 * 1024): Promise<{ blob: Buffer; toc: SeekableToc }> {
  const parts: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _e, cb) {
      parts.push(chunk);
      cb();
    },
  });
  const layer = await writeSeekableLayer(Readable.from([tar]), out, { where: 'test tar', spanSize });
  return { blob: Buffer.concat(parts), toc: layer.toc };
}

/** The error a call throws, as code and rule. */
async function verdict(fn: () => unknown): Promise<{ code: string; rule: unknown }> {
  try {
    await fn();
  } catch (err) {
    if (!isHostpullError(err)) throw err;
    return { code: err.code, rule: err.details?.rule };
  }
  throw new Error('expected a refusal');
}

describe('a lazy layer is held to its package claim from its TOC', () => {
  const tmp = useTempDir('lazy-claims');

  it.each(HOSTILE.map((h) => [h.rule, h.code, h] as const))('%s (%s): refused from the TOC with the unpack\'s code and rule', async (_rule, _code, h) => {
    const claim = { code: h.code, prefix: h.prefix, allowSetuid: false };
    const { toc } = await seekable(h.layer.tar);
    const lazy = await verdict(() => LazyTree.fromToc(toc, { where: `layer ${h.layer.digest}`, claim }));
    const target = join(await tmp(), 'layer');
    await mkdir(target);
    const unpack = await verdict(() => applyLayer(Readable.from([h.layer.blob]), { compression: 'gzip', target, claim }));
    expect(unpack).toEqual({ code: 'LAYER_UNSAFE', rule: h.rule });
    expect(lazy).toEqual(unpack);
  });

  it('a layer within its claim is shown as an unpack writes it: ancestors of the prefix neutral, nothing outside it', async () => {
    const layer = packageLayer('/opt/ok-1.0', [{ name: 'opt/ok-1.0/bin/run', type: 'file', mode: 0o750, uid: 7, content: 'x' }]);
    const { toc } = await seekable(layer.tar);
    const tree = LazyTree.fromToc(toc, { where: 'ok', claim: { code: 'OK1.0', prefix: '/opt/ok-1.0/', allowSetuid: false } });
    expect(tree.lookup('/opt')).toMatchObject({ type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    expect(tree.lookup('/opt/ok-1.0/bin/run')).toMatchObject({ type: 'file', mode: 0o750, uid: 7, size: 1 });
    expect(tree.ownedPaths).toEqual(['opt/ok-1.0/bin/run', 'opt/ok-1.0/bin/tool']);
  });

  it('setuid allowed by the catalog is shown; file capabilities are left to a whole pull (the view has no xattrs)', async () => {
    const suid = HOSTILE.find((h) => h.rule === 'setid-in-package')!;
    const cap = HOSTILE.find((h) => h.rule === 'capability-in-package')!;
    const allowed = (h: typeof suid) => ({ code: h.code, prefix: h.prefix, allowSetuid: true });
    const tree = LazyTree.fromToc((await seekable(suid.layer.tar)).toc, { where: 'suid', claim: allowed(suid) });
    expect(tree.lookup('/opt/suid-1.0/bin/su')?.mode).toBe(0o4755);
    expect(await verdict(async () => LazyTree.fromToc((await seekable(cap.layer.tar)).toc, { where: 'cap', claim: allowed(cap) }))).toMatchObject({ code: 'LAZY_REFUSED' });
  });

  it('a bomb is refused from its TOC by the unpack\'s expansion bound', async () => {
    const { toc } = await seekable(writeTar([{ name: 'opt/', type: 'dir' }, { name: 'opt/z', type: 'file', content: 'z' }]));
    // What a 1 MiB gzip of 1 GiB of zeros declares: more than 100 × 1 MiB + 64 MiB.
    const bomb: SeekableToc = { ...toc, size: 1 << 20, uncompressedSize: 1 << 30 };
    expect(await verdict(() => LazyTree.fromToc(bomb, { where: 'bomb' }))).toEqual({ code: 'LAYER_QUOTA_EXCEEDED', rule: 'expansion-ratio' });
  });

  it('a TOC that hides a hostile entry shows only what it lists, and the completion refuses the layer as an unpack does', async () => {
    const h = HOSTILE.find((x) => x.rule === 'outside-prefix')!;
    const claim = { code: h.code, prefix: h.prefix, allowSetuid: false };
    const { blob, toc } = await seekable(h.layer.tar, 1024);
    const liar: SeekableToc = { ...toc, entries: toc.entries.filter((e) => !e.path.startsWith('etc/')) };
    const tree = LazyTree.fromToc(liar, { where: 'liar', claim });
    expect(tree.lookup('/etc')).toBeUndefined();

    const dir = await tmp();
    const store = await ContentStore.open(join(dir, 'store'));
    try {
      const cache = new SpanCache(join(dir, 'spans'));
      for (const [i, s] of toc.spans.entries()) await cache.put(i, blob.subarray(s.c, s.c + s.cs));
      const completed = await verdict(() => completeLayer({ blobDigest: h.layer.digest, diffId: h.layer.diffId, toc: liar, claim }, { store, cache, ensureSpans: async () => undefined }));
      expect(completed).toEqual({ code: 'LAYER_UNSAFE', rule: 'outside-prefix' });
      expect(store.layers.get(h.layer.diffId)).toBeUndefined();
      expect(await readdir(store.layout.layersDir)).toEqual([]);
    } finally {
      store.close();
    }
  });
});
