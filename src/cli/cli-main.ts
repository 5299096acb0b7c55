// The CLI's dispatch, shared by its two entries: main.ts (an ES module Node loads file by file)
// and snapshot-main.ts (the same code evaluated into a V8 startup snapshot). No static import: a
// pull that a daemon serves loads daemon-pull.js alone (scripts/bundle.mjs).

/**
 * A reader that goes away early (`hostpull images | head -1`) is not a failure of ours: what it
 * did not read is dropped and the command finishes as it would have, cleaning up after itself
 * (a `run` still removes its container). Unheard, EPIPE is an 'error' event that kills the process.
 */
export function ignoreClosedPipes(): void {
  for (const out of [process.stdout, process.stderr]) {
    out.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
  }
}

/** Runs the command line `argv` (as `process.argv`: node, the script, then the arguments). */
export async function main(argv: string[]): Promise<void> {
  // A lazy run's FUSE helper is forked first, to load beside this process (early-lazy-helper.ts).
  if (argv.includes('--lazy')) (await import('./early-lazy-helper.js')).forkLazyHelperEarly(argv.slice(2));
  // A plain pull command line (plain-pull.ts) needs none of commander: a daemon that answers
  // takes it (daemon-pull.ts, a bundle of its own, which --no-daemon need not load), else it is
  // pulled in-process (quick-pull.ts).
  if (argv.includes('pull')) {
    if (!argv.includes('--no-daemon') && (await (await import('./daemon-pull.js')).pullThroughDaemon(argv.slice(2)))) return;
    if (await (await import('./quick-pull.js')).quickPull(argv.slice(2))) return;
  }
  const [{ CommanderError }, { buildProgram }, { EXIT_USAGE }] = await Promise.all([import('commander'), import('./program.js'), import('./context.js')]);
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; everything else commander rejects is a usage error.
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    throw err;
  }
}
