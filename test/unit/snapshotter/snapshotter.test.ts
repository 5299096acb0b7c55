/**
 * The snapshots.v1 semantics over a real store (no containerd, no network): what containerd relies
 * on — error kinds, chains as rows over shared layer directories, commit adopting what containerd
 * applied, ALREADY_EXISTS answers for targets — and GC counting snapshot rows as references.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import { collectGarbage } from '../../../src/gc/collect-garbage.js';
import { silentLogger } from '../../../src/log.js';
import { LAYER_DIFF_ID_ANNOTATION } from '../../../src/oci/annotations.js';
import { digestOf, type Digest } from '../../../src/oci/digest.js';
import { RegistryClient } from '../../../src/registry/index.js';
import { chainIdOf } from '../../../src/snapshotter/chain-id.js';
import { TARGET_REF_LABEL } from '../../../src/snapshotter/labels.js';
import { RemoteLayers } from '../../../src/snapshotter/remote-layers.js';
import { Snapshotter } from '../../../src/snapshotter/snapshotter.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { useTempDir } from '../../helpers/tmp.js';

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(isHostpullError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
}

describe('Snapshotter over the store', () => {
  const tmp = useTempDir('snapshotter-unit');
  let store: ContentStore;
  let client: RegistryClient;
  let sn: Snapshotter;

  beforeEach(async () => {
    store = await ContentStore.open(await tmp());
    client = new RegistryClient({ logger: silentLogger() });
    sn = new Snapshotter({ store, logger: silentLogger(), remote: new RemoteLayers({ store, client, logger: silentLogger() }) });
  });
  afterEach(async () => {
    await client.close();
    store.close();
  });

  /** A layer in the store whose tree has one file, named like a package. */
  async function layer(name: string): Promise<Digest> {
    const staging = await store.layers.stage();
    await mkdir(join(staging, 'opt', name), { recursive: true });
    await writeFile(join(staging, 'opt', name, 'VERSION'), name);
    const diffId = digestOf(`tar ${name}`);
    await store.layers.commit(staging, { diffId, blobDigest: digestOf(`blob ${name}`), unpackedSize: name.length, entries: 3, ownedPaths: [`opt/${name}/VERSION`] });
    return diffId;
  }

  it('answers a target that is already unpacked with a committed snapshot over the shared layer directory', async () => {
    const base = await layer('base');
    const jdk = await layer('jdk');
    const c1 = chainIdOf(undefined, base);
    const c2 = chainIdOf(c1, jdk);
    expect(await sn.prepare(`k8s.io/1/extract-1 ${c1}`, '', { [TARGET_REF_LABEL]: c1, [LAYER_DIFF_ID_ANNOTATION]: base })).toEqual({ committed: c1 });
    expect(await sn.prepare(`k8s.io/2/extract-2 ${c2}`, c1, { [TARGET_REF_LABEL]: c2, [LAYER_DIFF_ID_ANNOTATION]: jdk })).toEqual({ committed: c2 });
    expect(sn.stat(c2)).toMatchObject({ name: c2, parent: c1, kind: 'committed', labels: { [TARGET_REF_LABEL]: c2 } });
    // containerd finds it with this filter after ALREADY_EXISTS.
    expect(sn.list([`kind==committed,name=="${c2}",labels."containerd.io/snapshot.ref"=="${c2}"`]).map((i) => i.name)).toEqual([c2]);
    // Asked again (another namespace): the same answer, no new row.
    expect(await sn.prepare(`other/1/extract-3 ${c1}`, '', { [TARGET_REF_LABEL]: c1, [LAYER_DIFF_ID_ANNOTATION]: base })).toEqual({ committed: c1 });

    const mounts = (await sn.prepare('k8s.io/3/container-1', c2, {})) as { mounts: Array<{ type: string; options: string[] }> };
    const jdkDir = store.layers.dir(store.layers.get(jdk)!);
    const baseDir = store.layers.dir(store.layers.get(base)!);
    expect(mounts.mounts[0]!.type).toBe('overlay');
    expect(mounts.mounts[0]!.options[0]).toBe(`lowerdir=${jdkDir}:${baseDir}`);
    expect(await sn.mounts('k8s.io/3/container-1')).toEqual(mounts.mounts);
    expect(store.snapshotLog.totals()).toMatchObject({ reused: 3, fetched: 0, applied: 0 });
  });

  it('leaves a target to containerd when its diffID label does not make the chain, and says why', async () => {
    const base = await layer('base');
    const wrong = chainIdOf(undefined, digestOf('something else'));
    const r = await sn.prepare(`default/1/extract-1 ${wrong}`, '', { [TARGET_REF_LABEL]: wrong, [LAYER_DIFF_ID_ANNOTATION]: base });
    expect(r).toHaveProperty('mounts');
    expect(sn.stat(`default/1/extract-1 ${wrong}`).kind).toBe('active');
    await sn.commit(`default/2/${wrong}`, `default/1/extract-1 ${wrong}`, {});
    expect(store.snapshotLog.perLayer()[0]).toMatchObject({ applied: 1, lastReason: expect.stringContaining('cri.image-ref') });
  });

  it('adopts a base layer containerd applied as a store layer, and drops an applied copy of a layer it has', async () => {
    const key = `default/1/extract-1 sha256:${'0'.repeat(64)}`;
    const applied = (await sn.prepare(key, '', {})) as { mounts: Array<{ type: string; source: string }> };
    expect(applied.mounts[0]).toMatchObject({ type: 'bind' });
    await mkdir(join(applied.mounts[0]!.source, 'bin'));
    await writeFile(join(applied.mounts[0]!.source, 'bin', 'sh'), 'busybox');
    // The bottom layer's chainID is its diffID: the name alone identifies it.
    const diffId = `sha256:${'0'.repeat(64)}` as Digest;
    await sn.commit(`default/2/${diffId}`, key, {});
    const row = store.layers.get(diffId)!;
    expect(row.entries).toBe(2);
    expect(store.snapshots.get(`default/2/${diffId}`)).toMatchObject({ kind: 'committed', diffId });

    // Another namespace applies the same layer again: the copy goes, the layer directory serves both.
    const again = (await sn.prepare(`other/1/extract-2 ${diffId}`, '', {})) as { mounts: Array<{ source: string }> };
    await writeFile(join(again.mounts[0]!.source, 'x'), 'x');
    await sn.commit(`other/2/${diffId}`, `other/1/extract-2 ${diffId}`, {});
    expect(store.layers.list()).toHaveLength(1);
    expect(await readdir(store.layout.snapshotsDir)).toEqual([]);
    expect(await sn.view('other/3/view', `other/2/${diffId}`, {})).toEqual([{ type: 'bind', source: store.layers.dir(row), options: ['rbind', 'ro'] }]);
    expect(store.snapshotLog.totals()).toMatchObject({ applied: 2 });
  });

  it('keeps what containerd applied under an unknown chain in the snapshot’s own directory', async () => {
    const base = await layer('base');
    const c1 = chainIdOf(undefined, base);
    expect(await sn.prepare(`d/1/extract-1 ${c1}`, '', { [TARGET_REF_LABEL]: c1, [LAYER_DIFF_ID_ANNOTATION]: base })).toEqual({ committed: c1 });
    const unknown = chainIdOf(c1, digestOf('unknown layer'));
    const key = `d/2/extract-2 ${unknown}`;
    const m = (await sn.prepare(key, c1, {})) as { mounts: Array<{ options: string[] }> };
    const upper = m.mounts[0]!.options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length);
    await writeFile(join(upper, 'file'), 'data');
    await sn.commit(`d/3/${unknown}`, key, {});
    expect(store.snapshots.get(`d/3/${unknown}`)!.diffId).toBeNull();
    const view = await sn.view('d/4/v', `d/3/${unknown}`, {});
    expect(view[0]!.options[0]).toBe(`lowerdir=${upper}:${store.layers.dir(store.layers.get(base)!)}`);
    expect(await sn.usage(`d/3/${unknown}`)).toEqual({ size: 4, inodes: 1 });
  });

  it('maps misuse to the errors containerd expects', async () => {
    await expectCode(() => sn.stat('nope'), 'SNAPSHOT_NOT_FOUND');
    await expectCode(sn.prepare('a', 'missing-parent', {}), 'SNAPSHOT_NOT_FOUND');
    await sn.prepare('a', '', {});
    await expectCode(sn.prepare('a', '', {}), 'SNAPSHOT_EXISTS');
    await expectCode(sn.prepare('b', 'a', {}), 'SNAPSHOT_PARENT_NOT_COMMITTED');
    await sn.commit('a-done', 'a', { x: '1' });
    await expectCode(() => sn.mounts('a-done'), 'SNAPSHOT_NOT_ACTIVE');
    await expectCode(sn.commit('again', 'a-done', {}), 'SNAPSHOT_NOT_ACTIVE');
    await sn.view('v', 'a-done', {});
    await expectCode(sn.commit('v-done', 'v', {}), 'SNAPSHOT_NOT_ACTIVE');
    await expectCode(sn.remove('a-done'), 'SNAPSHOT_HAS_CHILDREN');
    await expectCode(() => sn.update('a-done', {}, ['parent']), 'SNAPSHOT_INVALID');
    await sn.remove('v');
    await sn.remove('a-done');
    expect(sn.list([])).toEqual([]);
  });

  it('updates labels by field mask', async () => {
    await sn.prepare('a', '', { keep: '1', drop: '2' });
    expect(sn.update('a', { add: '3' }, ['labels.add', 'labels.drop']).labels).toEqual({ keep: '1', add: '3' });
    expect(sn.update('a', { only: 'x' }, []).labels).toEqual({ only: 'x' });
  });

  it('cleanup removes directories no snapshot owns', async () => {
    await sn.prepare('a', '', {});
    await mkdir(join(store.layout.snapshotsDir, '99', 'fs'), { recursive: true });
    expect(await sn.cleanup()).toBe(1);
    expect(await readdir(store.layout.snapshotsDir)).toEqual(['1']);
  });

  it('GC keeps a layer while a snapshot stands for it, and frees it after', async () => {
    const base = await layer('base');
    const c1 = chainIdOf(undefined, base);
    await sn.prepare(`k/1/extract ${c1}`, '', { [TARGET_REF_LABEL]: c1, [LAYER_DIFF_ID_ANNOTATION]: base });
    const dir = store.layers.dir(store.layers.get(base)!);
    expect((await collectGarbage(store, { graceMs: 0 })).layersRemoved).toBe(0);
    expect(existsSync(dir)).toBe(true);
    await sn.remove(c1);
    expect((await collectGarbage(store, { graceMs: 0 })).layersRemoved).toBe(1);
    expect(existsSync(dir)).toBe(false);
  });

  it('a committed snapshot over a layer still arriving (lazy) holds it for GC from the start, and mounts its directory once it is in', async () => {
    const pkg = digestOf('tar pkg');
    const chain = chainIdOf(undefined, pkg);
    await expectCode(() => store.snapshots.create({ name: chain, kind: 'committed', parent: null, labels: {}, diffId: pkg }), 'LAYER_MISSING');
    store.snapshots.create({ name: chain, kind: 'committed', parent: null, labels: {}, diffId: pkg, layerArriving: true });
    expect(store.snapshots.awaitingLayer().map((r) => r.name)).toEqual([chain]);
    // Neither in the store nor served lazily, and its labels do not say where to fetch it: the
    // mount fails, and the snapshot containerd asked for is not left behind.
    await expectCode(sn.prepare('k/2/container', chain, {}), 'SNAPSHOT_CONTENT_MISSING');
    expect(store.snapshots.get('k/2/container')).toBeUndefined();

    // The background completion commits the layer: the snapshot mounts it, and GC keeps it.
    expect(await layer('pkg')).toBe(pkg);
    expect(store.snapshots.awaitingLayer()).toEqual([]);
    const { mounts } = (await sn.prepare('k/2/container', chain, {})) as { mounts: Array<{ options: string[] }> };
    expect(mounts[0]!.options.join(',')).toContain(store.layers.dir(store.layers.get(pkg)!));
    expect((await collectGarbage(store, { graceMs: 0, maxStoreSize: 0 })).layersRemoved).toBe(0);
  });
});
