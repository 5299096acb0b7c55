/**
 * A real kill -9 of a process adopting a containerd snapshot's fs/ as a store layer, in the
 * window between the rename into layers/ and the commit of the layer row: the next open of the
 * store must give the snapshot its fs/ back (it was containerd's only copy), not remove it as an
 * unpack that never committed. The child runs the built code (dist/) and SIGKILLs itself when the
 * store prepares the layer row's INSERT — which comes after the rename, inside the transaction —
 * so the kill lands in that window every time, without a hook in the production code.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { collectChild, REPO_ROOT, spawnCli } from '../../helpers/cli.js';
import { useTempDir } from '../../helpers/tmp.js';
import type { Digest } from '../../../src/oci/digest.js';
import { ContentStore } from '../../../src/store/content-store.js';

const BASE = `sha256:${'1'.repeat(64)}` as Digest;
const BLOB = `sha256:${'1'.repeat(63)}b` as Digest;
const dist = (path: string) => JSON.stringify(pathToFileURL(join(REPO_ROOT, 'dist', path)).href);

/** identifyAppliedLayers (the adoption the daemon runs on an image pull), killed with SIGKILL at the layer row's INSERT. */
const CHILD = `
import { ContentStore } from ${dist('store/content-store.js')};
import { identifyAppliedLayers } from ${dist('snapshotter/adopt-applied-layer.js')};
import { silentLogger } from ${dist('log.js')};
const store = await ContentStore.open(process.argv[2]);
const prepare = store.db.prepare.bind(store.db);
store.db.prepare = (sql) => {
  if (sql.startsWith('INSERT INTO layers ')) process.kill(process.pid, 'SIGKILL');
  return prepare(sql);
};
await identifyAppliedLayers(store, new Map([[${JSON.stringify(BASE)}, ${JSON.stringify(BLOB)}]]), silentLogger());
console.log('adoption finished: the kill never came');
`;

describe('adoption killed with SIGKILL between rename and commit', () => {
  const tmp = useTempDir('adopt-kill9');

  it("gives the snapshot its fs/ back at the next open", async () => {
    const dir = await tmp();
    const root = join(dir, 'root');
    let store = await ContentStore.open(root);
    // What `ctr image pull` leaves: a bottom layer applied into an active snapshot, committed under its chainID.
    const key = `default/1/extract-1 ${BASE}`;
    const active = store.snapshots.create({ name: key, kind: 'active', parent: null, labels: {} });
    await mkdir(join(store.snapshots.dir(active).fs, 'etc'));
    await writeFile(join(store.snapshots.dir(active).fs, 'etc', 'base'), 'base');
    const s = store.snapshots.commit(key, `default/2/${BASE}`, {}, null);
    const fs = store.snapshots.dir(s).fs;
    store.close();

    const script = join(dir, 'adopt-and-die.mjs');
    await writeFile(script, CHILD);
    const r = await collectChild(spawnCli([root], { entry: script }));

    expect(r, r.stderr).toMatchObject({ signal: 'SIGKILL', stdout: '' });
    // Killed in the window: the directory moved, the row not committed.
    expect(existsSync(fs)).toBe(false);
    expect(await readdir(join(root, 'layers'))).toEqual(['1']);

    store = await ContentStore.open(root);
    try {
      expect(await readFile(join(fs, 'etc', 'base'), 'utf8')).toBe('base');
      expect(store.reconciled).toMatchObject({ adoptionsRestored: 1, layerDirsRemoved: 0 });
      expect(store.snapshots.get(s.name)).toMatchObject({ id: s.id, diffId: BASE });
      expect(store.layers.list()).toEqual([]);
      expect(await readdir(store.layout.layersDir)).toEqual([]);
    } finally {
      store.close();
    }
  });
});
