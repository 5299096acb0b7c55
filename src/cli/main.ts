#!/usr/bin/env node
import { CommanderError } from 'commander';
import { EXIT_USAGE } from './context.js';
import { buildProgram } from './program.js';

// A reader that goes away early (`hostpull images | head -1`) is not a failure of ours: what it
// did not read is dropped and the command finishes as it would have, cleaning up after itself
// (a `run` still removes its container). Unheard, EPIPE is an 'error' event that kills the process.
for (const out of [process.stdout, process.stderr]) {
  out.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

async function main(argv: string[]): Promise<void> {
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

await main(process.argv);
