import { createHash, randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { DebFile } from './apt.js';

/**
 * Bumped whenever the way a package or the base is assembled changes, so a cache built by an
 * older demo is rebuilt rather than trusted.
 */
const BUILD_REVISION = 1;

/** What a build depends on: the exact .deb files (their names carry the versions) and our code. */
export function buildKey(kind: string, debs: readonly DebFile[]): string {
  const h = createHash('sha256');
  h.update(`${kind}\n${BUILD_REVISION}\n`);
  for (const d of debs) h.update(`${d.file} ${d.sha256}\n`);
  return h.digest('hex');
}

export async function readMarker<T extends { key: string }>(file: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** Written last, atomically: a build interrupted halfway leaves no marker and is redone. */
export async function writeMarker<T extends { key: string }>(file: string, value: T): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`);
  await rename(tmp, file);
}
