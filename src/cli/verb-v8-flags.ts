// The V8 flags of each verb, apart from the program (commander): a pull that skips commander
// (quick-pull.ts) runs with the flags its verb has in the full CLI.

/** Verbs that serve for a long time. */
const LONG_RUNNING = new Set(['daemon', 'serve', 'bench', 'demo']);

/**
 * V8 flags a verb runs with, set before it starts (worker isolates started later see them too,
 * and the lazy-layer FUSE helper it forks gets them on its command line).
 *
 * `--liftoff-only`, for every verb that ends soon: undici parses HTTP with llhttp compiled to
 * WebAssembly. V8 compiles it quickly (Liftoff), then again optimised on a background thread, and
 * a process that is done waits for that second compile before it exits: about 130 ms of every
 * short command here. A short command gains nothing from the optimised code. The verbs that serve
 * for a long time (daemon, serve, bench, demo) keep the optimised tier.
 *
 * `--interrupt-budget` four times V8's default, for the short verbs and the daemon (every process
 * that unpacks layers): by default V8 optimises a function with TurboFan after it has run about
 * 66 KB of bytecode, so a cold pull of the full-size peer images had 194 functions optimised, most
 * of them stream plumbing, three times over (the main thread and two unpack workers each compile
 * their own), for 0.9 s of compile time on background threads. With the larger budget: 62
 * functions and 0.2 s, and the hot loops of the tar reader and the applier still get optimised
 * within the first megabytes of a layer. In a daemon, measured on its first cold pull of those
 * images (10 alternated fresh daemons, tmpfs store): CPU 3.22 s against 3.61 s and the pull
 * 1.93 s against 2.09 s (medians); its third and fourth cold pulls took as long either way.
 */
export function v8FlagsFor(verb: string): string[] {
  const flags: string[] = [];
  if (!LONG_RUNNING.has(verb)) flags.push('--liftoff-only');
  if (!LONG_RUNNING.has(verb) || verb === 'daemon') flags.push('--interrupt-budget=270336');
  return flags;
}
