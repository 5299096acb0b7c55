import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf } from '../../../src/oci/digest.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { LayerStore } from '../../../src/store/layers.js';
import { commitOf } from '../../helpers/layer-commit.js';
import { useTempDir } from '../../helpers/tmp.js';


describe('LayerStore', () => {
  const tmp = useTempDir('store-layers');
  let store: ContentStore;
  beforeEach(async () => {
    store = await ContentStore.open(await tmp());
  });
  afterEach(() => store.close());

  it('stages in a directory named after this process', async () => {
    const staging = await store.layers.stage();
    expect(staging.startsWith(join(store.layout.layersDir, `staging-${process.pid}-`))).toBe(true);
    expect(await readdir(staging)).toEqual([]);
  });

  it('renames the staging dir to layers/<id> and writes the row', async () => {
    const staging = await store.layers.stage();
    await writeFile(join(staging, 'file'), 'hello');
    const layer = commitOf('jdk');
    const row = await store.layers.commit(staging, layer);
    expect(row).toMatchObject({ id: 1, diffId: layer.diffId, blobDigest: layer.blobDigest, unpackedSize: 5, entries: 1 });
    expect(store.layers.dir(row)).toBe(join(store.layout.layersDir, '1'));
    expect(await readFile(join(store.layers.dir(row), 'file'), 'utf8')).toBe('hello');
    await expect(stat(staging)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(store.layers.get(layer.diffId)).toEqual(row);
    expect(store.layers.ownedPaths(layer.diffId)).toEqual(layer.ownedPaths);

    const second = await store.layers.commit(await store.layers.stage(), commitOf('mvn'));
    expect(second.id).toBe(2);
    expect(store.layers.list().map((r) => r.id)).toEqual([1, 2]);
  });

  it('keeps one row when the same diffId is committed twice, and removes the second staging dir', async () => {
    const layer = commitOf('jdk');
    const first = await store.layers.commit(await store.layers.stage(), layer);
    const again = await store.layers.stage();
    await writeFile(join(again, 'file'), 'duplicate');
    const second = await store.layers.commit(again, layer);
    expect(second).toEqual(first);
    expect(store.layers.list()).toHaveLength(1);
    await expect(stat(again)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await readdir(store.layout.layersDir)).sort()).toEqual(['1']);
  });

  it('keeps the footprint and tree checksum recorded at unpack', async () => {
    const layer = commitOf('jdk');
    await store.layers.commit(await store.layers.stage(), layer);
    expect(store.layers.footprint(layer.diffId)).toEqual(layer.footprint);
    expect(store.layers.treeChecksum(layer.diffId)).toBe('tree1:jdk');
    expect(store.layers.footprint(digestOf('unknown'))).toBeNull();
  });

  it('quarantines a layer: the row goes, the directory moves to quarantine/', async () => {
    const row = await store.layers.commit(await store.layers.stage(), commitOf('jdk'));
    const moved = store.layers.quarantine(row);
    expect(moved).toMatch(/\/quarantine\/layer-1-sha256-/);
    expect(store.layers.get(row.diffId)).toBeUndefined();
    await expect(stat(store.layers.dir(row))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await stat(moved!)).isDirectory()).toBe(true);
  });

  it('drops the row of a layer whose directory is gone, and only while it is gone', async () => {
    const row = await store.layers.commit(await store.layers.stage(), commitOf('jdk'));
    expect(store.layers.remove(row)).toBe(false);
    expect(store.layers.get(row.diffId)).toBeDefined();
    await rm(store.layers.dir(row), { recursive: true });
    expect(store.layers.remove(row)).toBe(true);
    expect(store.layers.get(row.diffId)).toBeUndefined();
  });

  it('keeps a new layer that took the id of the one reconcile saw without its directory', async () => {
    // Reconcile read this row and saw no directory; then GC collected the layer and another pull
    // committed a new one, which got the same id (MAX(id)+1).
    const seen = await store.layers.commit(await store.layers.stage(), commitOf('jdk'));
    expect(await store.layers.collect(seen, seen.lastUsed)).toBe(true);
    const staging = await store.layers.stage();
    await writeFile(join(staging, 'file'), 'new');
    const fresh = await store.layers.commit(staging, commitOf('mvn'));
    expect(fresh.id).toBe(seen.id);
    expect(store.layers.remove(seen)).toBe(false);
    expect(store.layers.get(fresh.diffId)).toMatchObject({ id: seen.id });
    expect(await readFile(join(store.layers.dir(fresh), 'file'), 'utf8')).toBe('new');
  });
});

describe('LayerStore.commit racing another process', () => {
  const tmp = useTempDir('store-layers-race');

  it('returns the other process’s row when it committed the same diffId while we waited for the write lock', async () => {
    const store = await ContentStore.open(await tmp());
    const { Worker } = await import('node:worker_threads');
    const { createRequire } = await import('node:module');
    const layer = commitOf('jdk');
    // A second connection (in a worker thread, as another process would) takes the write lock
    // and inserts the same diffId; it commits only after our commit() has started waiting.
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const Database = require(workerData.sqlite);
       const db = new Database(workerData.db);
       db.pragma('busy_timeout = 10000');
       db.exec('BEGIN IMMEDIATE');
       db.prepare("INSERT INTO layers (id, diff_id, blob_digest, unpacked_size, entries, owned_paths, created_at, last_used) VALUES (1, ?, ?, 0, 0, '', 0, 0)").run(workerData.diffId, workerData.blobDigest);
       require('node:fs').mkdirSync(workerData.dir);
       parentPort.postMessage('locked');
       Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
       db.exec('COMMIT');
       db.close();`,
      {
        eval: true,
        workerData: {
          sqlite: createRequire(import.meta.url).resolve('better-sqlite3'),
          db: store.layout.database,
          diffId: layer.diffId,
          blobDigest: digestOf('another blob, same content'),
          dir: join(store.layout.layersDir, '1'),
        },
      },
    );
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    try {
      await new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      const staging = await store.layers.stage();
      const row = await store.layers.commit(staging, layer);
      expect(row.id).toBe(1);
      expect(store.layers.list()).toHaveLength(1);
      await expect(stat(staging)).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await readdir(store.layout.layersDir)).sort()).toEqual(['1']);
    } finally {
      await exited;
      store.close();
    }
  });
});

describe('LayerStore with a file-system flush (--sync-fs)', () => {
  const tmp = useTempDir('store-layers-sync');

  it('flushes the staged tree before the row is written, and records nothing when the flush fails', async () => {
    const root = await tmp();
    const seen: Array<{ dir: string; files: string[]; rows: number }> = [];
    let fail = false;
    const store = await ContentStore.open(root);
    const layers = new LayerStore(store.db, store.layout, {
      syncFs: async (dir) => {
        seen.push({ dir, files: await readdir(dir), rows: layers.list().length });
        if (fail) throw new Error('EIO');
      },
    });
    try {
      const staging = await layers.stage();
      await writeFile(join(staging, 'file'), 'hello');
      const row = await layers.commit(staging, commitOf('jdk'));
      expect(seen).toEqual([{ dir: staging, files: ['file'], rows: 0 }]);
      expect(await readFile(join(layers.dir(row), 'file'), 'utf8')).toBe('hello');

      fail = true;
      const second = await layers.stage();
      await writeFile(join(second, 'file'), 'world');
      await expect(layers.commit(second, commitOf('mvn'))).rejects.toThrow('EIO');
      expect(layers.get(commitOf('mvn').diffId)).toBeUndefined();
      // The tree stays where it was staged: the caller (an unpack) removes it with its error.
      expect(await readdir(second)).toEqual(['file']);
      // A layer already present needs no flush.
      await expect(layers.commit(await layers.stage(), commitOf('jdk'))).resolves.toMatchObject({ id: row.id });
      expect(seen).toHaveLength(2);
    } finally {
      store.close();
    }
  });
});
