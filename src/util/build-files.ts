import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The path of a module of this build that is run by path (a worker thread's or a child process's
 * entry), e.g. `unpack/apply-worker.js`: `dist/<module>` in the built package, `src/<module>`
 * when this file runs from the sources (vitest), where there is no such .js file.
 *
 * Why not `new URL('./apply-worker.js', import.meta.url)` in the module that starts it: the
 * built CLI is bundled (scripts/bundle.mjs), and the code of that module then runs from a chunk
 * in `dist/chunks/`. Every module of the build is one directory below the build's root, chunks
 * and this file too, so a path from that root resolves the same from any of them.
 */
export function buildFile(module: string): string {
  return fileURLToPath(new URL(`../${module}`, import.meta.url));
}

/** This package's version (package.json, one directory above the build's root). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string }).version;
}
