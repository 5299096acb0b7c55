// Bundles the processes hostpull starts by path (the CLI, its worker threads and child processes)
// from what tsc wrote to dist/, over the same files: `npm run build:ts` runs it after tsc.
//
// Why: each ES module Node loads is resolved, read, compiled and linked on its own, and a
// `hostpull pull` loads about a hundred of ours, a fixed cost of every command (and of every
// lazy run's FUSE helper and unpack worker) that a 0.2 s pull pays in full. Bundled, with the
// code each command loads on demand split into shared chunks (dist/chunks/), a pull that finds
// every layer at home took 192 against 217 ms (medians of 15, alternated).
//
// The rest of dist/ stays as tsc wrote it (benchmarks import modules from it); packages stay in
// node_modules. A module that starts another by path finds it with util/build-files.ts, which
// works from a chunk as from its own file.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(root, 'dist');
/** Modules run by path: `node dist/cli/main.js`, `new Worker(…)`, `fork(…)`, `unshare … node …`. */
const ENTRIES = ['cli/main.js', 'unpack/apply-worker.js', 'lazy/fuse-helper-main.js', 'rootless/child-main.js', 'snapshotter/scan-layer-dir-worker.js'];

// Chunks are named by content: those of an earlier build would pile up.
rmSync(join(dist, 'chunks'), { recursive: true, force: true });
await build({
  entryPoints: ENTRIES.map((e) => join(dist, e)),
  outbase: dist,
  outdir: dist,
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  chunkNames: 'chunks/[name]-[hash]',
  // Error and class names show in messages and logs as they are in the sources.
  keepNames: true,
  // Through tsc's maps to src/, for `node --enable-source-maps` when a stack trace matters.
  sourcemap: 'linked',
  logLevel: 'warning',
});
