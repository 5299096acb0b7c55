import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { execTool } from './exec-tool.js';

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or below `dir`, deepest first (the order they must be unmounted in). */
export async function mountsBelow(dir: string): Promise<string[]> {
  const root = resolve(dir);
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const points = text
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map(unescapeMountPath)
    .filter((p) => p === root || p.startsWith(`${root}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/**
 * Unmounts whatever an interrupted earlier run left mounted under the work dir, before that dir
 * is reset: removing files through a live overlay would delete them from the layers below it.
 * Returns the mount points it unmounted.
 */
export async function unmountBelow(dir: string, signal?: AbortSignal): Promise<string[]> {
  const points = await mountsBelow(dir);
  for (const p of points) {
    await execTool('umount', [p], signal ? { signal } : {}).catch(() => execTool('umount', ['-l', p], signal ? { signal } : {}));
  }
  return points;
}
