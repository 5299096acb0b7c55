/**
 * identifyAppliedLayers against containerd's Remove: a snapshot removed while its layer is being
 * identified is skipped, and its path — which a new snapshot may own by then, since ids are
 * reused — is never moved into layers/.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../../src/log.js';
import type { Digest } from '../../../src/oci/digest.js';
import { identifyAppliedLayers } from '../../../src/snapshotter/adopt-applied-layer.js';
import { ContentStore } from '../../../src/store/content-store.js';
import type { SnapshotRow } from '../../../src/store/snapshots.js';
import { useTempDir } from '../../helpers/tmp.js';

// Runs while a tree is being scanned, as another process's work would.
const duringScan = vi.hoisted(() => ({ hook: undefined as (() => Promise<void>) | undefined }));
vi.mock('../../../src/snapshotter/layer-dir-summary.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../src/snapshotter/layer-dir-summary.js')>();
  return {
    ...real,
    summarizeLayerDir: async (root: string) => {
      const summary = await real.summarizeLayerDir(root);
      await duringScan.hook?.();
      return summary;
    },
  };
});

const BASE = `sha256:${'1'.repeat(64)}` as Digest;
const OTHER = `sha256:${'2'.repeat(64)}` as Digest;
const blobOf = (diffId: Digest) => `sha256:${diffId.slice(-63)}b` as Digest;

describe('identifyAppliedLayers', () => {
  const tmp = useTempDir('adopt-applied');
  let store: ContentStore;
  const removals: Promise<unknown>[] = [];

  beforeEach(async () => {
    store = await ContentStore.open(await tmp());
  });
  afterEach(async () => {
    await Promise.all(removals.splice(0));
    vi.restoreAllMocks();
    duringScan.hook = undefined;
    store.close();
  });

  /** A bottom layer containerd applied and committed with no labels (`ctr image pull`): its name is its chainID, its diffID. */
  async function applied(seq: number, diffId: Digest, file: string): Promise<SnapshotRow> {
    const key = `default/${seq}/extract-${seq} ${diffId}`;
    const active = store.snapshots.create({ name: key, kind: 'active', parent: null, labels: {} });
    const fs = store.snapshots.dir(active).fs;
    await mkdir(join(fs, 'etc'));
    await writeFile(join(fs, 'etc', file), file);
    return store.snapshots.commit(key, `default/${seq + 1}/${diffId}`, {}, null);
  }

  /** Removes `name` as containerd's Remove does, once the layer it holds has been identified (before its tree is scanned). */
  function removeOnceIdentified(name: string, then?: () => void): void {
    const identify = store.snapshotLog.identify.bind(store.snapshotLog);
    vi.spyOn(store.snapshotLog, 'identify').mockImplementation((chainId, diffId, blob) => {
      identify(chainId, diffId, blob);
      if (diffId !== store.snapshots.get(name)?.diffId) return;
      // The row and the directory go synchronously (one transaction); only the rm is awaited.
      removals.push(store.snapshots.remove(name));
      then?.();
    });
  }

  const candidates = new Map([
    [BASE, blobOf(BASE)],
    [OTHER, blobOf(OTHER)],
  ]);

  it('skips a snapshot removed between its listing and the scan of its tree, and adopts the others', async () => {
    const other = await applied(1, OTHER, 'other');
    const base = await applied(3, BASE, 'base');
    const logger = silentLogger();
    const debug = vi.spyOn(logger, 'debug');
    removeOnceIdentified(base.name);

    const adopted = await identifyAppliedLayers(store, candidates, logger);

    expect(adopted.map((s) => s.name)).toEqual([other.name]);
    expect(store.layers.get(BASE)).toBeUndefined();
    expect(await readFile(join(store.layers.dir(store.layers.get(OTHER)!), 'etc', 'other'), 'utf8')).toBe('other');
    expect(store.snapshots.get(base.name)).toBeUndefined();
    expect(debug).toHaveBeenCalledWith(expect.objectContaining({ snapshot: base.name }), expect.stringContaining('removed while its layer was being scanned'));
  });

  it('never moves a new snapshot that took the removed one\'s id into layers/', async () => {
    const base = await applied(1, BASE, 'base');
    let reused: SnapshotRow | undefined;
    removeOnceIdentified(base.name, () => {
      // The next Prepare takes the freed id (MAX(id)+1), so snapshots/<id>/fs is its upper now.
      reused = store.snapshots.create({ name: 'default/9/container', kind: 'active', parent: null, labels: {} });
      writeFileSync(join(store.snapshots.dir(reused).fs, 'written-by-container'), 'data');
    });

    expect(await identifyAppliedLayers(store, candidates, silentLogger())).toEqual([]);

    expect(reused!.id).toBe(base.id);
    expect(store.layers.list()).toEqual([]);
    expect(await readFile(join(store.snapshots.dir(reused!).fs, 'written-by-container'), 'utf8')).toBe('data');
    expect(existsSync(join(store.snapshots.dir(reused!).fs, 'etc'))).toBe(false);
  });

  it('skips a snapshot removed before it was marked', async () => {
    const base = await applied(1, BASE, 'base');
    const unidentified = store.snapshots.unidentified.bind(store.snapshots);
    vi.spyOn(store.snapshots, 'unidentified').mockImplementation(() => {
      const rows = unidentified();
      removals.push(store.snapshots.remove(base.name));
      return rows;
    });
    const logger = silentLogger();
    const debug = vi.spyOn(logger, 'debug');

    expect(await identifyAppliedLayers(store, candidates, logger)).toEqual([]);

    expect(store.layers.list()).toEqual([]);
    expect(debug).toHaveBeenCalledWith(expect.objectContaining({ snapshot: base.name }), expect.stringContaining('removed or identified since it was listed'));
  });

  it('leaves the snapshot its tree when another process committed the layer during the scan', async () => {
    const base = await applied(1, BASE, 'base');
    duringScan.hook = async () => {
      const staging = await store.layers.stage();
      await writeFile(join(staging, 'theirs'), 'theirs');
      await store.layers.commit(staging, { diffId: BASE, blobDigest: blobOf(BASE), unpackedSize: 6, entries: 1, ownedPaths: ['theirs'], footprint: { claimRoot: '', neutralDirs: [], neutralOverflow: false, devices: 0, setid: [], setidCount: 0, capabilities: [], capabilityCount: 0 }, treeChecksum: 'x' });
    };

    expect((await identifyAppliedLayers(store, candidates, silentLogger())).map((s) => s.name)).toEqual([base.name]);

    expect(store.layers.list()).toHaveLength(1);
    expect(await readFile(join(store.layers.dir(store.layers.get(BASE)!), 'theirs'), 'utf8')).toBe('theirs');
    // Its fs/ is the snapshot's until containerd removes it: a mount may use it as a lowerdir.
    expect(await readFile(join(store.snapshots.dir(base).fs, 'etc', 'base'), 'utf8')).toBe('base');
  });
});
