import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface LayerDirSummary {
  /** Bytes of regular files (what the layer's tar carried as file data, near enough). */
  unpackedSize: number;
  entries: number;
  /** Non-directory paths the layer writes (relative), whiteouts excluded: the store's overlap data. */
  ownedPaths: string[];
}

/**
 * What the store records about a layer directory that containerd applied (an unpack hostpull did
 * itself reports the same from the tar stream). Overlay whiteouts — 0:0 character devices — mark
 * deletions, not paths the layer writes.
 */
export async function summarizeLayerDir(root: string): Promise<LayerDirSummary> {
  const out: LayerDirSummary = { unpackedSize: 0, entries: 0, ownedPaths: [] };
  const walk = async (rel: string): Promise<void> => {
    for (const d of await readdir(join(root, rel), { withFileTypes: true })) {
      const path = rel === '' ? d.name : `${rel}/${d.name}`;
      out.entries++;
      if (d.isDirectory()) {
        await walk(path);
        continue;
      }
      if (d.isCharacterDevice()) {
        const st = await lstat(join(root, path));
        if (st.rdev === 0) continue;
      }
      if (d.isFile()) out.unpackedSize += (await lstat(join(root, path))).size;
      out.ownedPaths.push(path);
    }
  };
  await walk('');
  out.ownedPaths.sort();
  return out;
}
