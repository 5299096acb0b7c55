import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collectGarbage } from '../../../src/gc/collect-garbage.js';
import { digestOf } from '../../../src/oci/digest.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { LEASE_STALE_AFTER_MS } from '../../../src/store/protocol.js';
import { commitOf } from '../../helpers/layer-commit.js';
import { useTempDir } from '../../helpers/tmp.js';

describe('pull holds', () => {
  const tmp = useTempDir('pull-holds');
  let store: ContentStore;
  beforeEach(async () => {
    store = await ContentStore.open(await tmp());
  });
  afterEach(() => store.close());

  async function committedLayer(name: string) {
    const staging = await store.layers.stage();
    await writeFile(join(staging, 'file'), name);
    return store.layers.commit(staging, commitOf(name));
  }

  it('keep a committed layer, by diffID, from GC until released', async () => {
    const layer = await committedLayer('jdk');
    const hold = store.pullHolds.begin();
    hold.add([layer.diffId]);
    // What `hostpull gc --min-age 0` does while the pull is still fetching its other layers.
    expect(await collectGarbage(store, { graceMs: 0 })).toMatchObject({ layersRemoved: 0 });
    // The deleting statement re-checks on its own, for a GC that read the store before the hold.
    expect(await store.layers.collect(layer, layer.lastUsed)).toBe(false);
    expect(existsSync(store.layers.dir(layer))).toBe(true);
    hold.release();
    expect(await collectGarbage(store, { graceMs: 0 })).toMatchObject({ layersRemoved: 1 });
    expect(store.layers.get(layer.diffId)).toBeUndefined();
  });

  it('keep a layer named by its blob digest, and blobs', async () => {
    const layer = await committedLayer('mvn');
    const bytes = Buffer.from('{"config":true}');
    const config = digestOf(bytes);
    await store.blobs.putBytes(config, bytes, 'application/json');
    const hold = store.pullHolds.begin();
    hold.add([layer.blobDigest, config]);
    expect(await collectGarbage(store, { graceMs: 0 })).toMatchObject({ layersRemoved: 0, blobsRemoved: 0 });
    expect(await store.blobs.collect(config, store.blobs.get(config)!.lastUsed)).toBe(false);
    hold.release();
    expect(await collectGarbage(store, { graceMs: 0 })).toMatchObject({ layersRemoved: 1, blobsRemoved: 1 });
  });

  it('of a pull that died hold nothing and are swept by GC; of one gone silent hold nothing until it beats again', async () => {
    const a = await committedLayer('a');
    const b = await committedLayer('b');
    const c = await committedLayer('c');
    const killed = store.pullHolds.begin();
    killed.add([a.diffId]);
    const silent = store.pullHolds.begin();
    silent.add([b.diffId, c.diffId]);
    // As kill -9 leaves a hold: its lease row names a process that is gone. A silent one stopped
    // writing its heartbeat (stopped, or its event loop blocked) for longer than a lease lasts.
    const leaseOf = (d: string) => "(SELECT lease FROM pull_holds WHERE digest = '" + d + "')";
    store.db.prepare(`UPDATE leases SET pid = ? WHERE key IN ${leaseOf(a.diffId)}`).run(spawnSync('true').pid!);
    store.db.prepare(`UPDATE leases SET heartbeat_at = ? WHERE key IN ${leaseOf(b.diffId)}`).run(Date.now() - LEASE_STALE_AFTER_MS - 1);
    expect(store.pullHolds.liveDigests().size).toBe(0);
    // GC sees neither hold; it may take b, as any layer held by nobody.
    expect(await store.layers.collect(b, b.lastUsed)).toBe(true);
    expect(await collectGarbage(store, { graceMs: 0 })).toMatchObject({ layersRemoved: 2 });
    // The dead pull's rows are gone; the silent one's stay, and count again once it beats.
    const holds = () => (store.db.prepare('SELECT digest FROM pull_holds ORDER BY digest').all() as Array<{ digest: string }>).map((r) => r.digest);
    expect(holds()).toEqual([b.diffId, c.diffId].sort());
    store.db.prepare(`UPDATE leases SET heartbeat_at = ? WHERE key IN ${leaseOf(b.diffId)}`).run(Date.now());
    expect(store.pullHolds.liveDigests()).toEqual(new Set([b.diffId, c.diffId]));
    killed.release();
    silent.release();
    expect(holds()).toEqual([]);
  });

  it('of two pulls are independent: releasing one keeps what the other holds', async () => {
    const shared = await committedLayer('shared');
    const first = store.pullHolds.begin();
    const second = store.pullHolds.begin();
    first.add([shared.diffId]);
    second.add([shared.diffId]);
    first.release();
    expect(store.pullHolds.liveDigests()).toEqual(new Set([shared.diffId]));
    expect(await collectGarbage(store, { graceMs: 0 })).toMatchObject({ layersRemoved: 0 });
    second.release();
    expect(store.pullHolds.liveDigests().size).toBe(0);
  });

  it('write nothing until a digest is added, and release twice harmlessly', () => {
    const hold = store.pullHolds.begin();
    hold.release();
    hold.release();
    expect(store.db.prepare("SELECT COUNT(*) AS n FROM leases WHERE key GLOB 'pull:*'").get()).toEqual({ n: 0 });
    expect(() => hold.add([digestOf('late')])).toThrow(/after release/);
  });
});
