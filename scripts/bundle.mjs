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
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, realpathSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(root, 'dist');
/** The CLI: each verb's code is loaded on demand, from chunks the verbs share (dist/chunks/). */
const CLI = 'cli/main.js';
/** The CLI's dispatch, imported by main.js alone, so its code lands in main.js's own output. */
const CLI_MAIN = 'cli/cli-main.js';
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
 * Leaves cli-main.js's import of a standalone module as it is written: that module is a bundle of
 * its own, at the same path relative to main.js, where cli-main.js's code lands. Only it may
 * import one (main.js's output stays where it is; a chunk's would not).
 */
const standaloneExternal = {
  name: 'standalone-external',
  setup(b) {
    const standalone = new Set(STANDALONE.map((m) => join(dist, m)));
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      if (!standalone.has(resolve(args.resolveDir, args.path))) return undefined;
      if (args.importer !== join(dist, CLI_MAIN)) return { errors: [{ text: `${args.path} is bundled on its own: only ${CLI_MAIN} may import it` }] };
      return { path: args.path, external: true };
    });
  },
};

// ── The CLI's startup snapshot ─────────────────────────────────────────────────────────────────
// dist/cli/hostpull (scripts/launcher.sh) starts Node from dist/cli/hostpull.blob, a V8 startup
// snapshot in which cli/snapshot-main.js and the modules a plain pull needs were evaluated at
// build time (snapshot-main.ts says what it saves). `node --build-snapshot` takes one CommonJS
// script that may load Node built-ins only, so the CLI is bundled once more, as such a script:
// - packages are loaded by the running process, when first used, through its own `require`;
// - so are the built-ins Node 20 cannot evaluate into a snapshot or does not vouch for there:
//   http fails to load, worker_threads leaves a SharedArrayBuffer behind that a Worker then
//   needs (found: "undefined is not an integer typed array"), module and child_process come with
//   Node's warning that their state may be out of sync after deserialisation;
// - `import.meta.url` is the URL of dist/cli/snapshot-main.cjs where the build is when it runs.
// A module evaluated into the snapshot that touches one of them at load time fails the build.
// So does any built-in Node warns about there.
const { SNAPSHOT_GLOBALS } = await import(join(dist, 'cli/snapshot-globals.js'));
const SNAPSHOT_SCRIPT = join(dist, 'cli/snapshot-main.cjs');
const SNAPSHOT_BLOB = join(dist, 'cli/hostpull.blob');
/** Has the mtime of the node binary that made the blob; the launcher uses the blob only with that node. */
const SNAPSHOT_STAMP = join(dist, 'cli/hostpull.blob.node');
const LATE_BUILTINS = new Set(['module', 'child_process', 'worker_threads', 'http', 'https']);
const builtins = new Set(builtinModules);
const requireHere = createRequire(import.meta.url);

const loadedWhenUsed = {
  name: 'loaded-when-used',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      const bare = args.path.replace(/^node:/, '');
      // The getters' own require of the built-in (below) is the real one.
      if (args.namespace === 'late-builtin' || (builtins.has(bare) && !LATE_BUILTINS.has(bare))) return { path: args.path, external: true };
      return { path: args.path, namespace: builtins.has(bare) ? 'late-builtin' : 'late-package' };
    });
    // A built-in: the snapshot script's own `require` (built-ins only) at first use of an export.
    // Each export a getter of its own (their names are the same in this node): the bundle's
    // interop copies a module's properties when a module importing it is evaluated.
    b.onLoad({ filter: /.*/, namespace: 'late-builtin' }, (args) => ({
      contents: [
        `const load = () => require(${JSON.stringify(args.path)});`,
        ...Object.keys(requireHere(args.path)).map((key) => `Object.defineProperty(exports, ${JSON.stringify(key)}, { enumerable: true, get: () => load()[${JSON.stringify(key)}] });`),
      ].join('\n'),
      loader: 'js',
    }));
    // A package: the running process's `require`, set by snapshot-main.ts before the CLI runs.
    b.onLoad({ filter: /.*/, namespace: 'late-package' }, (args) => ({
      contents: `module.exports = globalThis[${JSON.stringify(SNAPSHOT_GLOBALS.require)}](${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

/** Bundles snapshot-main.js as one CommonJS script and builds the blob and its stamp from it. */
async function buildSnapshot() {
  for (const f of [SNAPSHOT_BLOB, SNAPSHOT_STAMP]) rmSync(f, { force: true });
  await build({
    ...common,
    entryPoints: [join(dist, 'cli/snapshot-main.js')],
    outfile: SNAPSHOT_SCRIPT,
    outdir: undefined,
    outbase: undefined,
    format: 'cjs',
    packages: undefined,
    sourcemap: false,
    define: { 'import.meta.url': `globalThis.${SNAPSHOT_GLOBALS.moduleUrl}` },
    plugins: [loadedWhenUsed],
  });
  const made = spawnSync(process.execPath, ['--snapshot-blob', SNAPSHOT_BLOB, '--build-snapshot', SNAPSHOT_SCRIPT], { cwd: dist, encoding: 'utf8' });
  // Node warns, and goes on, when a built-in it does not vouch for is loaded into a snapshot.
  const unvouched = [...made.stderr.matchAll(/not yet fully verified whether built-in module "([^"]+)"/g)].map((m) => m[1]);
  if (made.status !== 0 || unvouched.length > 0) {
    rmSync(SNAPSHOT_BLOB, { force: true });
    const why = unvouched.length > 0 ? `a module evaluated at build time loads ${unvouched.join(', ')}: load it where it is used (LATE_BUILTINS)` : `exit ${made.status ?? made.signal}`;
    throw new Error(`building the CLI's startup snapshot failed (${why}):\n${made.stderr}`);
  }
  // Only after the blob is whole: without a stamp, the launcher does not use the blob.
  const node = statSync(realpathSync(process.execPath));
  writeFileSync(SNAPSHOT_STAMP, `${process.version} ${realpathSync(process.execPath)}\n`);
  utimesSync(SNAPSHOT_STAMP, node.atime, node.mtime);
}

/** dist/cli/hostpull: the command users run (package.json's bin). */
function installLauncher() {
  const launcher = join(dist, 'cli/hostpull');
  copyFileSync(join(root, 'scripts/launcher.sh'), launcher);
  chmodSync(launcher, 0o755);
}

// Chunks are named by content: those of an earlier build would pile up.
rmSync(join(dist, 'chunks'), { recursive: true, force: true });
await Promise.all([
  build({ ...common, entryPoints: [join(dist, CLI)], splitting: true, chunkNames: 'chunks/[name]-[hash]', plugins: [standaloneExternal] }),
  build({ ...common, entryPoints: STANDALONE.map((e) => join(dist, e)) }),
  buildSnapshot(),
]);
installLauncher();
