import { stat } from 'node:fs/promises';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { isHostpullError } from '../../../src/errors.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { MIGRATIONS } from '../../../src/store/migrations.js';
import { useTempDir } from '../../helpers/tmp.js';

describe('ContentStore.open', () => {
  const tmp = useTempDir('store-open');

  it('creates the on-disk layout and the schema', async () => {
    const root = `${await tmp()}/nested/root`;
    const store = await ContentStore.open(root);
    try {
      for (const dir of [store.layout.blobsDir, store.layout.ingestDir, store.layout.layersDir, store.layout.containersDir]) {
        expect((await stat(dir)).isDirectory()).toBe(true);
      }
      expect(store.db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
      const tables = (store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
      expect(tables).toEqual(expect.arrayContaining(['blobs', 'images', 'layers', 'leases', 'manifest_layers', 'pulls']));
      expect(store.reconciled).toMatchObject({ blobRowsDropped: 0, blobsAdopted: 0, layerDirsRemoved: 0 });
    } finally {
      store.close();
    }
  });

  it('reopens an existing store without migrating again or losing rows', async () => {
    const root = await tmp();
    const first = await ContentStore.open(root);
    first.pulls.record({
      reference: 'r/x:1',
      manifestDigest: null,
      startedAt: 1,
      finishedAt: 2,
      ok: true,
      upToDate: false,
      bytesFetched: 10,
      bytesReused: 0,
      layerHits: 0,
      layerMisses: 1,
      phases: { resolve: 0, layers: 0, total: 1 },
    });
    first.close();
    first.close(); // closing twice is harmless
    const second = await ContentStore.open(root);
    try {
      expect(second.db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      expect(second.pulls.stats().pulls).toBe(1);
    } finally {
      second.close();
    }
  });

  it('migrates a store of schema 6: snapshotter rows of lazy layers (fetched, 0 bytes) become lazy, the others keep their outcome', async () => {
    const root = await tmp();
    const raw = new Database(`${root}/hostpull.db`);
    for (const m of MIGRATIONS.slice(0, 6)) raw.exec(m);
    raw.pragma('user_version = 6');
    const lazyBlob = `sha256:${'a'.repeat(64)}`;
    const wholeBlob = `sha256:${'b'.repeat(64)}`;
    const lazyLayer = raw.prepare('INSERT INTO lazy_layers (blob_digest, diff_id, mode, bytes_lazy, updated_at) VALUES (?, ?, ?, ?, 1)');
    lazyLayer.run(lazyBlob, `sha256:${'c'.repeat(64)}`, 'lazy-completed', 5000);
    lazyLayer.run(wholeBlob, `sha256:${'d'.repeat(64)}`, 'whole', 0);
    const event = raw.prepare('INSERT INTO snapshot_layer_events (at, chain_id, diff_id, blob_digest, outcome, bytes, reason) VALUES (1, ?, NULL, ?, ?, ?, ?)');
    event.run('chain-lazy', lazyBlob, 'fetched', 0, null);
    event.run('chain-whole', wholeBlob, 'fetched', 700, null);
    event.run('chain-whole', wholeBlob, 'reused', 0, null);
    event.run('chain-applied', null, 'applied', 0, 'no label');
    raw.close();

    const store = await ContentStore.open(root);
    try {
      expect(store.db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      expect(store.snapshotLog.totals()).toEqual({ fetched: 1, reused: 1, applied: 1, lazy: 1, bytesFetched: 700 });
      expect(store.snapshotLog.perLayer().map((l) => [l.chainId, l.fetched, l.lazy, l.reused, l.applied, l.lastReason])).toEqual([
        ['chain-lazy', 0, 1, 0, 0, null],
        ['chain-whole', 1, 0, 1, 0, null],
        ['chain-applied', 0, 0, 0, 1, 'no label'],
      ]);
      // The new outcome is accepted from now on, and nothing else is.
      store.snapshotLog.record({ chainId: 'chain-new', diffId: null, blobDigest: null, outcome: 'lazy', bytes: 0 });
      expect(store.snapshotLog.totals().lazy).toBe(2);
      expect(() => store.snapshotLog.record({ chainId: 'x', diffId: null, blobDigest: null, outcome: 'stolen' as 'lazy', bytes: 0 })).toThrow(/CHECK constraint/);
    } finally {
      store.close();
    }
  });

  it('refuses a store written by a newer hostpull with STORE_TOO_NEW', async () => {
    const root = await tmp();
    (await ContentStore.open(root)).close();
    const raw = new Database(`${root}/hostpull.db`);
    raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    raw.close();
    const err = await ContentStore.open(root).catch((e: unknown) => e);
    expect(isHostpullError(err, 'STORE_TOO_NEW')).toBe(true);
    expect((err as Error).message).toContain(`schema version ${MIGRATIONS.length + 1}`);
    expect((err as { hint?: string }).hint).toContain('upgrade hostpull');
  });
});
