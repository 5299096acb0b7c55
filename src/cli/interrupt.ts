import { constants } from 'node:os';
import { HostpullError, isHostpullError } from '../errors.js';

/** SIGINT (Ctrl-C), SIGTERM, SIGHUP (a terminal or SSH session gone) and SIGQUIT, seen as an AbortSignal, until released. */
export interface Interrupt {
  /** Aborts, with an ABORTED HostpullError naming the signal (and `details.signal`), at the first of them. */
  readonly signal: AbortSignal;
  /** Stops listening (idempotent): from then on the signals do what they would do without us. */
  release(): void;
}

/**
 * The signals that end a command: without a handler each would kill Node at once, leaving what a
 * verb had begun (a mounted rootfs, a half-built layer) for the next start to clean up. The same
 * ones that stop a run before its container's command runs (runtime/start-signals.ts).
 */
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const;

/**
 * The one wiring of terminal signals to cancellation for CLI verbs: the work below the CLI only
 * knows AbortSignal. A verb that hands signals on from some point (run forwards them to the
 * container) releases early; one that listens again later (run --lazy, waiting for its background
 * pulls) passes the controller whose signal it handed down already.
 */
export function onInterrupt(abort = new AbortController()): Interrupt {
  const onSignal = (sig: NodeJS.Signals) => abort.abort(new HostpullError('ABORTED', `interrupted by ${sig}`, { details: { signal: sig } }));
  for (const sig of SIGNALS) process.once(sig, onSignal);
  return {
    signal: abort.signal,
    release() {
      for (const sig of SIGNALS) process.off(sig, onSignal);
    },
  };
}

/** Runs fn with an {@link Interrupt} that is released when fn settles. */
export async function withInterrupt<T>(fn: (interrupt: Interrupt) => Promise<T>): Promise<T> {
  const interrupt = onInterrupt();
  try {
    return await fn(interrupt);
  } finally {
    interrupt.release();
  }
}

/**
 * The signal that ended an operation, when `err` is the ABORTED of an interrupt (this module's, or
 * runContainer's for a signal before the container's command ran).
 */
export function interruptSignal(err: unknown): NodeJS.Signals | undefined {
  const sig = isHostpullError(err, 'ABORTED') ? err.details?.['signal'] : undefined;
  return typeof sig === 'string' && sig in constants.signals ? (sig as NodeJS.Signals) : undefined;
}

/** The shell's exit status for a process ended by `sig`: 128 + its number (130 for SIGINT, 143 for SIGTERM). */
export function signalExitCode(sig: NodeJS.Signals): number {
  return 128 + (constants.signals[sig] ?? 0);
}
