/**
 * kill -9 during the adoption of a snapshot's fs/ as a store layer: fs/ is containerd's only
 * copy of the snapshot, so whatever point the process dies at, the next open of the store must
 * leave the snapshot its content (back in fs/, or as the committed layer) — never delete it as
 * an unpack that renamed but did not commit.
 *
 * A crash is emulated by copying the store root at the moment the adopting process reaches a
 * statement (what a kill -9 there leaves on disk: committed transactions, renames done, the open
 * transaction lost), then failing the statement to unwind. The copy is opened as the next process;
 * the killed one is recorded as an earlier process under this pid (its start time differs), as a
 * daemon restarted with the same pid would find it.
 */
import { cpSync, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../../src/log.js';
import type { Digest } from '../../../src/oci/digest.js';
import { identifyAppliedLayers } from '../../../src/snapshotter/adopt-applied-layer.js';
import { ContentStore } from '../../../src/store/content-store.js';
import type { SnapshotRow } from '../../../src/store/snapshots.js';
import { useTempDir } from '../../helpers/tmp.js';

// While set, this process reports another start time: what it records as its identity is an
// earlier process's that had the same pid, dead by now.
const killed = vi.hoisted(() => ({ running: false }));
vi.mock('../../../src/util/process-alive.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../src/util/process-alive.js')>();
  return {
    ...real,
    processStartTime: (pid: number) => (killed.running && pid === process.pid ? 'started-earlier' : real.processStartTime(pid)),
  };
});

const BASE = `sha256:${'1'.repeat(64)}` as Digest;
const candidates = new Map([[BASE, `sha256:${'1'.repeat(63)}b` as Digest]]);

describe('adoption of a snapshot killed at any point', () => {
  const tmp = useTempDir('adopt-crash');
  let store: ContentStore;
  const opened: ContentStore[] = [];

  beforeEach(async () => {
    store = await ContentStore.open(join(await tmp(), 'root'));
  });
  afterEach(() => {
    vi.restoreAllMocks();
    store.close();
    for (const s of opened.splice(0)) s.close();
  });

  /** A bottom layer containerd applied and committed with no labels (`ctr image pull`): its name is its chainID. */
  async function applied(): Promise<SnapshotRow> {
    const key = `default/1/extract-1 ${BASE}`;
    const active = store.snapshots.create({ name: key, kind: 'active', parent: null, labels: {} });
    const fs = store.snapshots.dir(active).fs;
    await mkdir(join(fs, 'etc'));
    await writeFile(join(fs, 'etc', 'base'), 'base');
    return store.snapshots.commit(key, `default/2/${BASE}`, {}, null);
  }

  /**
   * Adopts the applied layers, "killed" when the store first prepares a statement starting with
   * `at`: returns the root as the kill left it (undefined if the statement never ran). With
   * `ownerAlive`, the killed adopter is recorded as this (live) process.
   */
  async function adoptKilledAt(at: string, ownerAlive = false): Promise<string | undefined> {
    const crashed = join(await tmp(), 'crashed');
    let reached = false;
    const prepare = store.db.prepare.bind(store.db);
    vi.spyOn(store.db, 'prepare').mockImplementation(((sql: string) => {
      if (!reached && sql.startsWith(at)) {
        reached = true;
        cpSync(store.layout.root, crashed, { recursive: true });
        throw new Error(`killed at ${at}`);
      }
      return prepare(sql);
    }) as typeof store.db.prepare);
    killed.running = !ownerAlive;
    try {
      await identifyAppliedLayers(store, candidates, silentLogger()).catch((err: Error) => {
        if (!err.message.startsWith('killed at')) throw err;
      });
    } finally {
      killed.running = false;
      vi.restoreAllMocks();
    }
    return reached ? crashed : undefined;
  }

  /** Opens `root` as the next process would (reconciling). */
  async function reopen(root: string): Promise<ContentStore> {
    const next = await ContentStore.open(root);
    opened.push(next);
    return next;
  }

  const intents = (s: ContentStore) => s.db.prepare('SELECT layer_id AS layerId FROM layer_adoptions').all();

  it('puts fs/ back when killed after the rename into layers/ and before the layer row committed', async () => {
    const s = await applied();
    const crashed = await adoptKilledAt('INSERT INTO layers ');
    expect(crashed).toBeDefined();
    // What the kill left: the directory moved, no row claiming it.
    expect(existsSync(join(crashed!, 'snapshots', String(s.id), 'fs'))).toBe(false);
    expect(await readdir(join(crashed!, 'layers'))).toEqual(['1']);

    const next = await reopen(crashed!);

    expect(await readFile(join(next.snapshots.dir(s).fs, 'etc', 'base'), 'utf8')).toBe('base');
    expect(next.reconciled).toMatchObject({ adoptionsRestored: 1, layerDirsRemoved: 0 });
    expect(next.snapshots.get(s.name)).toMatchObject({ id: s.id, diffId: BASE });
    expect(next.layers.list()).toEqual([]);
    expect(await readdir(next.layout.layersDir)).toEqual([]);
    expect(intents(next)).toEqual([]);
  });

  it('leaves fs/ in place when killed after the intent committed and before the rename', async () => {
    const s = await applied();
    // The adopting transaction's first statement: the intent is committed, nothing moved yet.
    const crashed = await adoptKilledAt('DELETE FROM layer_adoptions');
    expect(crashed).toBeDefined();

    const next = await reopen(crashed!);

    expect(next.reconciled).toMatchObject({ adoptionsRestored: 0, layerDirsRemoved: 0 });
    expect(await readFile(join(next.snapshots.dir(s).fs, 'etc', 'base'), 'utf8')).toBe('base');
    expect(next.layers.list()).toEqual([]);
    expect(intents(next)).toEqual([]);
  });

  it('keeps the committed layer when killed after the commit', async () => {
    const s = await applied();
    expect((await identifyAppliedLayers(store, candidates, silentLogger())).map((r) => r.name)).toEqual([s.name]);
    expect(intents(store)).toEqual([]);
    const crashed = join(await tmp(), 'crashed');
    cpSync(store.layout.root, crashed, { recursive: true });

    const next = await reopen(crashed);

    expect(next.reconciled).toMatchObject({ adoptionsRestored: 0, layerDirsRemoved: 0 });
    expect(await readFile(join(next.layers.dir(next.layers.get(BASE)!), 'etc', 'base'), 'utf8')).toBe('base');
    expect(existsSync(next.snapshots.dir(s).fs)).toBe(false);
  });

  it('removes the moved directory when the snapshot was removed before the restart', async () => {
    const s = await applied();
    const crashed = (await adoptKilledAt('INSERT INTO layers '))!;
    const between = await ContentStore.open(crashed, { reconcile: false });
    await between.snapshots.remove(s.name);
    between.close();

    const next = await reopen(crashed);

    expect(next.reconciled).toMatchObject({ adoptionsRestored: 0, layerDirsRemoved: 1 });
    expect(await readdir(next.layout.layersDir)).toEqual([]);
    expect(existsSync(next.snapshots.dir(s).root)).toBe(false);
    expect(intents(next)).toEqual([]);
  });

  it('leaves a live owner its reserved id and directory, and still removes an unclaimed directory without an intent', async () => {
    const s = await applied();
    const crashed = (await adoptKilledAt('INSERT INTO layers ', true))!;
    // A numbered directory with neither row nor intent: an unpack that renamed but never committed.
    await mkdir(join(crashed, 'layers', '7', 'opt'), { recursive: true });

    // The intent's owner (this process) is alive: reconcile must not touch layers/1, nor may a commit take id 1.
    const meanwhile = await reopen(crashed);
    expect(meanwhile.reconciled).toMatchObject({ adoptionsRestored: 0, layerDirsRemoved: 1 });
    expect((await readdir(meanwhile.layout.layersDir)).sort()).toEqual(['1']);
    const staging = await meanwhile.layers.stage();
    await writeFile(join(staging, 'other'), 'other');
    const other = await meanwhile.layers.commit(staging, {
      diffId: `sha256:${'3'.repeat(64)}` as Digest,
      blobDigest: `sha256:${'4'.repeat(64)}` as Digest,
      unpackedSize: 5,
      entries: 1,
      ownedPaths: ['other'],
      footprint: { claimRoot: null, neutralDirs: [], neutralOverflow: false, devices: 0, setid: [], setidCount: 0, capabilities: [], capabilityCount: 0 },
      treeChecksum: 'x',
    });
    expect(other.id).toBe(2);
    // Now its owner is gone (as if it had been an earlier process under this pid).
    meanwhile.db.prepare("UPDATE layer_adoptions SET owner_start = 'started-earlier'").run();
    meanwhile.close();
    opened.splice(opened.indexOf(meanwhile), 1);

    const next = await reopen(crashed);

    expect(next.reconciled).toMatchObject({ adoptionsRestored: 1, layerDirsRemoved: 0 });
    expect(await readFile(join(next.snapshots.dir(s).fs, 'etc', 'base'), 'utf8')).toBe('base');
    expect(next.layers.list().map((l) => l.id)).toEqual([2]);
    expect(await readdir(next.layout.layersDir)).toEqual(['2']);
  });
});
