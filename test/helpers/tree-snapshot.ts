/**
 * Everything below a directory, one line per path with a content hash for files: two snapshots
 * are equal when nothing below changed (for "a refused layer touched nothing" checks).
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export async function treeSnapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = join(e.parentPath, e.name);
    out.push(`${p} ${e.isFile() ? createHash('sha256').update(await readFile(p)).digest('hex') : e.isDirectory() ? 'dir' : 'other'}`);
  }
  return out.sort();
}
