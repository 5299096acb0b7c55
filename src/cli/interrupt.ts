import { HostpullError } from '../errors.js';

/** SIGINT (Ctrl-C) and SIGTERM, seen as an AbortSignal, until released. */
export interface Interrupt {
  /** Aborts, with an ABORTED HostpullError naming the signal, at the first SIGINT or SIGTERM. */
  readonly signal: AbortSignal;
  /** Stops listening (idempotent): from then on the signals do what they would do without us. */
  release(): void;
}

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * The one wiring of terminal signals to cancellation for CLI verbs: the work below the CLI only
 * knows AbortSignal. A verb that hands signals on from some point (run forwards them to the
 * container) releases early; one that listens again later (run --lazy, waiting for its background
 * pulls) passes the controller whose signal it handed down already.
 */
export function onInterrupt(abort = new AbortController()): Interrupt {
  const onSignal = (sig: NodeJS.Signals) => abort.abort(new HostpullError('ABORTED', `interrupted by ${sig}`));
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
