/**
 * The scan of a layer tree containerd applied (footprint and tree checksum) runs in a worker
 * thread, so the daemon's event loop keeps turning while it reads every file; the worker's
 * answer is the same as the scan on the calling thread, and its failure is an error that names
 * the path. The worker is the built one (dist/), compiled from the source this test imports.
 */
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { scanLayerDir, scanLayerDirHere } from '../../../src/snapshotter/scan-layer-dir.js';
import { useTempDir } from '../../helpers/tmp.js';

const BUILT_WORKER = fileURLToPath(new URL('../../../dist/snapshotter/scan-layer-dir-worker.js', import.meta.url));

describe('scanLayerDir', () => {
  const tmp = useTempDir('scan-layer-dir');

  async function tree(fileMiB: number): Promise<string> {
    const dir = await tmp();
    await mkdir(join(dir, 'opt/jdk-17.0/bin'), { recursive: true });
    await writeFile(join(dir, 'opt/jdk-17.0/bin/java'), Buffer.alloc(fileMiB * 1024 * 1024, 7));
    await chmod(join(dir, 'opt/jdk-17.0/bin/java'), 0o4755);
    await writeFile(join(dir, 'opt/jdk-17.0/release'), 'JAVA_VERSION="17"\n');
    await symlink('bin/java', join(dir, 'opt/jdk-17.0/java'));
    return dir;
  }

  it('answers from the worker what the scan on this thread answers', async () => {
    const dir = await tree(1);
    const here = scanLayerDirHere(dir);
    expect(here.footprint.setid).toEqual(['opt/jdk-17.0/bin/java']);
    expect(await scanLayerDir(dir, BUILT_WORKER)).toEqual(here);
  });

  it('leaves the event loop free while it reads the files', async () => {
    const dir = await tree(64);
    let turns = 0;
    const ticker = setInterval(() => turns++, 1);
    try {
      await scanLayerDir(dir, BUILT_WORKER);
    } finally {
      clearInterval(ticker);
    }
    // On this thread the scan would hold the loop from start to end: no turn at all.
    expect(turns).toBeGreaterThan(2);
  });

  it('reports a tree it cannot read with the path', async () => {
    const missing = join(await tmp(), 'gone');
    await expect(scanLayerDir(missing, BUILT_WORKER)).rejects.toThrow(/gone/);
  });
});
