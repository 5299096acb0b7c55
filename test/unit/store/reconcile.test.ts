import { spawnSync } from 'node:child_process';
import { chmod, mkdir, readdir, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/log.js';
import { digestOf, type Digest } from '../../../src/oci/digest.js';
import { ContentStore } from '../../../src/store/content-store.js';
import type { LayerRow, LayerStore } from '../../../src/store/layers.js';
import { reconcile, type ReconcileOptions } from '../../../src/store/reconcile.js';
import { useTempDir } from '../../helpers/tmp.js';

/** Older than reconcile's 60 s grace for files that may be mid-commit in another process. */
const AGED = new Date(Date.now() - 10 * 60_000);

/** The pid of a process that has exited (spawned and waited for here). */
function deadPid(): number {
  const r = spawnSync('true');
  expect(r.status).toBe(0);
  return r.pid!;
}

async function writeBlobFile(store: ContentStore, digest: Digest, bytes: Buffer | string, aged = true): Promise<string> {
  const path = store.blobs.path(digest);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
  if (aged) await utimes(path, AGED, AGED);
  return path;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** What a layer with nothing claiming records (these tests are about files and rows). */
const NO_FOOTPRINT = { claimRoot: null, neutralDirs: [], neutralOverflow: false, devices: 0, setid: [], setidCount: 0, capabilities: [], capabilityCount: 0 };

describe('reconcile', () => {
  const tmp = useTempDir('store-reconcile');
  let store: ContentStore;
  beforeEach(async () => {
    store = await ContentStore.open(await tmp(), { reconcile: false });
  });
  afterEach(() => store.close());

  const run = (options: ReconcileOptions = {}, layers: LayerStore = store.layers) =>
    reconcile({ layout: store.layout, blobs: store.blobs, layers, leases: store.leases, logger: silentLogger() }, options);

  it('drops a blob row whose file is missing', async () => {
    const bytes = Buffer.from('manifest');
    const digest = digestOf(bytes);
    await store.blobs.putBytes(digest, bytes, null);
    await unlink(store.blobs.path(digest));
    const report = await run();
    expect(report.blobRowsDropped).toBe(1);
    expect(store.blobs.has(digest)).toBe(false);
  });

  it('drops the row of a truncated blob and removes the bad file in the same pass', async () => {
    const bytes = Buffer.from('a config that will be truncated');
    const digest = digestOf(bytes);
    await store.blobs.putBytes(digest, bytes, null);
    const path = store.blobs.path(digest);
    await chmod(path, 0o644);
    await writeFile(path, bytes.subarray(0, 5));
    await utimes(path, AGED, AGED);
    const report = await run();
    expect(report).toMatchObject({ blobRowsDropped: 1, blobFilesRemoved: 1, blobsAdopted: 0 });
    expect(store.blobs.has(digest)).toBe(false);
    expect(await exists(path)).toBe(false);
  });

  it('adopts a valid orphan file older than the grace period', async () => {
    const bytes = Buffer.from('layer bytes renamed but never committed');
    const digest = digestOf(bytes);
    await writeBlobFile(store, digest, bytes);
    const report = await run();
    expect(report.blobsAdopted).toBe(1);
    expect(store.blobs.get(digest)).toMatchObject({ size: bytes.length });
  });

  it('leaves a young orphan alone: it may be a commit in progress elsewhere', async () => {
    const bytes = Buffer.from('just renamed');
    const digest = digestOf(bytes);
    const path = await writeBlobFile(store, digest, bytes, false);
    const young = digestOf('young and wrong');
    const youngPath = await writeBlobFile(store, young, 'not its content', false);
    const report = await run();
    expect(report).toMatchObject({ blobsAdopted: 0, blobFilesRemoved: 0 });
    expect(store.blobs.has(digest)).toBe(false);
    expect(await exists(path)).toBe(true);
    expect(await exists(youngPath)).toBe(true);
  });

  it('removes an old orphan whose content does not match its name, and junk names', async () => {
    const digest = digestOf('expected');
    const path = await writeBlobFile(store, digest, 'something else');
    const junk = join(store.layout.blobsDir, 'sha256', 'zz', 'not-a-digest');
    await mkdir(dirname(junk), { recursive: true });
    await writeFile(junk, 'x');
    await utimes(junk, AGED, AGED);
    const report = await run();
    expect(report.blobFilesRemoved).toBe(2);
    expect(store.blobs.has(digest)).toBe(false);
    expect(await exists(path)).toBe(false);
    expect(await exists(junk)).toBe(false);
  });

  it('removes partial downloads older than maxIngestAgeMs and keeps fresh ones', async () => {
    const old = store.layout.ingestPath(digestOf('old'));
    const fresh = store.layout.ingestPath(digestOf('fresh'));
    await writeFile(old, 'par');
    await writeFile(fresh, 'par');
    await utimes(old, AGED, AGED);
    const report = await run({ maxIngestAgeMs: 60_000 });
    expect(report.ingestRemoved).toBe(1);
    expect(await exists(old)).toBe(false);
    expect(await exists(fresh)).toBe(true);
  });

  it('removes staging dirs of dead processes and keeps ours', async () => {
    const dead = join(store.layout.layersDir, `staging-${deadPid()}-abc123`);
    const ours = join(store.layout.layersDir, `staging-${process.pid}-def456`);
    await mkdir(join(dead, 'opt'), { recursive: true });
    await mkdir(ours);
    const report = await run();
    expect(report.layerDirsRemoved).toBe(1);
    expect(await exists(dead)).toBe(false);
    expect(await exists(ours)).toBe(true);
  });

  it('removes a numbered layer dir without a row, and drops a row without its dir', async () => {
    const kept = await store.layers.commit(await store.layers.stage(), {
      diffId: digestOf('kept'),
      blobDigest: digestOf('kept blob'),
      unpackedSize: 1,
      entries: 1,
      ownedPaths: [],
      footprint: NO_FOOTPRINT,
      treeChecksum: 'tree1:test',
    });
    const lost = await store.layers.commit(await store.layers.stage(), {
      diffId: digestOf('lost'),
      blobDigest: digestOf('lost blob'),
      unpackedSize: 1,
      entries: 1,
      ownedPaths: [],
      footprint: NO_FOOTPRINT,
      treeChecksum: 'tree1:test',
    });
    await rm(store.layers.dir(lost), { recursive: true });
    const orphan = join(store.layout.layersDir, '42');
    await mkdir(join(orphan, 'opt'), { recursive: true });
    const report = await run();
    expect(report).toMatchObject({ layerDirsRemoved: 1, layerRowsDropped: 1 });
    expect(await exists(orphan)).toBe(false);
    expect(store.layers.list().map((r: LayerRow) => r.id)).toEqual([kept.id]);
    expect(await readdir(store.layout.layersDir)).toEqual([String(kept.id)]);
  });

  it('keeps a layer that another process commits while reconcile is scanning', async () => {
    const staging = await store.layers.stage();
    await writeFile(join(staging, 'file'), 'unpacked');
    let committing: Promise<LayerRow> | undefined;
    // Another process's commit (rename into layers/<id> and row, under the write lock) lands
    // right after reconcile read the rows and before it lists the directory.
    const layers = new Proxy(store.layers, {
      get(target, prop) {
        if (prop === 'list') {
          return () => {
            const rows = target.list();
            committing = target.commit(staging, { diffId: digestOf('racing'), blobDigest: digestOf('racing blob'), unpackedSize: 8, entries: 1, ownedPaths: ['file'], footprint: NO_FOOTPRINT, treeChecksum: 'tree1:test' });
            return rows;
          };
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const report = await run({}, layers);
    const row = await committing!;
    expect(report.layerDirsRemoved).toBe(0);
    expect(await exists(join(store.layers.dir(row), 'file'))).toBe(true);
  });

  it('runs at open and reports what it did', async () => {
    const bytes = Buffer.from('adopt me at open');
    const digest = digestOf(bytes);
    await writeBlobFile(store, digest, bytes);
    const root = store.layout.root;
    store.close();
    store = await ContentStore.open(root);
    expect(store.reconciled).toMatchObject({ blobsAdopted: 1 });
    expect(store.blobs.has(digest)).toBe(true);
  });
});
