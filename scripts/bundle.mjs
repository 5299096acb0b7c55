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
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(root, 'dist');
/** The CLI: each verb's code is loaded on demand, from chunks the verbs share (dist/chunks/). */
const CLI = 'cli/main.js';
/**
 * Modules that run as a process or thread of their own, by path (`new Worker(…)`, `fork(…)`,
 * `unshare … node …`), and the CLI's first step of a pull that a daemon serves, which main.js
 * imports before it knows it needs the rest: each is one self-contained file, with no chunk
 * shared with the CLI. Each module Node loads costs it a resolve, a read on the threadpool, a
 * compile and a link, and a worker or helper starts with none of them loaded: as one file, an
 * unpack worker was ready in 36 instead of 44 ms (medians of 8), an up-to-date pull through the
 * daemon took 0.09 instead of 0.11 s (12 alternated). The code they share with the CLI is then
 * in dist/ twice, and a process that loads both has two copies of it: main.js hands nothing of
 * daemon-pull.js's to the rest of the CLI.
 */
const STANDALONE = ['cli/daemon-pull.js', 'unpack/apply-worker.js', 'lazy/fuse-helper-main.js', 'rootless/child-main.js', 'snapshotter/scan-layer-dir-worker.js'];

const common = {
  outbase: dist,
  outdir: dist,
  allowOverwrite: true,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  // Error and class names show in messages and logs as they are in the sources.
  keepNames: true,
  // Through tsc's maps to src/, for `node --enable-source-maps` when a stack trace matters.
  sourcemap: 'linked',
  logLevel: 'warning',
};

/**
 * Leaves main.js's import of a standalone module as it is written: that module is a bundle of its
 * own, at the same path relative to main.js. Only main.js may import one (its output stays where
 * it is; a chunk's would not).
 */
const standaloneExternal = {
  name: 'standalone-external',
  setup(b) {
    const standalone = new Set(STANDALONE.map((m) => join(dist, m)));
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      if (!standalone.has(resolve(args.resolveDir, args.path))) return undefined;
      if (args.importer !== join(dist, CLI)) return { errors: [{ text: `${args.path} is bundled on its own: only ${CLI} may import it` }] };
      return { path: args.path, external: true };
    });
  },
};

// Chunks are named by content: those of an earlier build would pile up.
rmSync(join(dist, 'chunks'), { recursive: true, force: true });
await Promise.all([
  build({ ...common, entryPoints: [join(dist, CLI)], splitting: true, chunkNames: 'chunks/[name]-[hash]', plugins: [standaloneExternal] }),
  build({ ...common, entryPoints: STANDALONE.map((e) => join(dist, e)) }),
]);
