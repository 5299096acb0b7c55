// Entry of the CLI's V8 startup snapshot (scripts/bundle.mjs builds it into dist/cli/hostpull.blob
// with `node --build-snapshot`; dist/cli/hostpull starts Node from it). Importing a module here
// evaluates it at build time, so that a command finds it loaded: Node's start from the snapshot
// replaces the resolving, reading, compiling and evaluating of the ~30 modules a pull loads.
// Through the launcher, an up-to-date in-process pull took 102 instead of 123 ms, and one that
// fetches a 8.9 MB layer 200 instead of 228 ms (medians of 10, alternated).
//
// What may be imported here: our own modules that only compute at load time. The bundle of this
// file gives every package and the Node built-ins that cannot be evaluated into a snapshot (see
// scripts/bundle.mjs) to the running process, loaded when first used, so a module that touches
// one at load time fails the build. Nothing read at load time may depend on the command's
// environment: process.env, the working directory and the user are those of the build.
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startupSnapshot } from 'node:v8';
import { ignoreClosedPipes, main } from './cli-main.js';
import { SNAPSHOT_GLOBALS } from './snapshot-globals.js';
// A plain pull, in-process or through a daemon (cli-main.ts), and what it needs up to unpacking.
import './daemon-pull.js';
import './quick-pull.js';
import '../store/index.js';
import '../registry/index.js';
import '../daemon/index.js';
import '../pull/index.js';
import '../unpack/index.js';

startupSnapshot.setDeserializeMainFunction(() => {
  // The launcher runs `node --snapshot-blob … <dist>/cli/main.js ARGS`: argv[1] says where this
  // build is, now (the build may have been moved since the snapshot was made).
  const mainScript = resolve(process.argv[1]!);
  const globals = globalThis as unknown as Record<string, unknown>;
  globals[SNAPSHOT_GLOBALS.require] = createRequire(mainScript);
  globals[SNAPSHOT_GLOBALS.moduleUrl] = pathToFileURL(join(dirname(mainScript), 'snapshot-main.cjs')).href;
  ignoreClosedPipes();
  void main(process.argv);
});
