import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Bytes a directory tree occupies on disk (allocated blocks, like `du -B1`), so store growth
 * counts what a node really pays, metadata files and unpacked layers included.
 */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const walk = async (p: string): Promise<void> => {
    let st;
    try {
      st = await lstat(p);
    } catch {
      return; // removed while walking (a temp file of the store): not part of the total
    }
    total += st.blocks * 512;
    if (!st.isDirectory()) return;
    for (const name of await readdir(p)) await walk(join(p, name));
  };
  await walk(dir);
  return total;
}
