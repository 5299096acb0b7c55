import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { FORWARDED_SIGNALS } from './foreground.js';

/** Signals that, arriving before the container's command runs, end the start instead: Ctrl-C, `kill`, a hangup. */
const STOPPING: ReadonlySet<NodeJS.Signals> = new Set(['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']);
/** How often the runtime's pid file is looked for until it appears (runc takes ~100 ms to start). */
const POLL_MS = 10;

/** What became of a signal: passed to the runtime, kept until the start, ending the start, or the runtime killed. */
export type StartSignalAction = 'forwarded' | 'held' | 'stopping' | 'killed';

export interface StartSignalsOptions {
  /**
   * The runtime's `--pid-file`. runc writes it once the container's process was let go to exec
   * the command (after the exec fifo handshake), so it existing is "the command runs".
   */
  pidFile: string;
  /** Kills a container that has started (SIGKILL through the runtime): a stopping signal came before it did. */
  killContainer: () => void;
  /** Each signal and what was done with it (the debug log). */
  onSignal?: (sig: NodeJS.Signals, action: StartSignalAction) => void;
}

export interface StartSignals {
  /** The runtime process exists: signals are passed to it once the container's command runs. */
  attach(child: ChildProcess): void;
  /** The first stopping signal that came before the command ran: the run is over, not the container's. */
  readonly interrupted: NodeJS.Signals | undefined;
  /** Stops listening (idempotent). */
  release(): void;
}

/**
 * Takes the FORWARDED_SIGNALS of this process from the moment it is called, before the runtime
 * exists, so that no signal finds the process without a handler (Node would die of it with the
 * rootfs still mounted) and none is lost on the way to the container.
 *
 * Once the container's command runs (the pid file exists) a signal goes to the runtime process,
 * whose foreground `run` passes it to the container's init. Before that, runc is no place to send
 * it: a Go runtime signalled before its handler is installed exits 2, and one that queues the
 * signal delivers it to an init that has not exec'd the command yet, or to a command that has
 * not installed its handler: pid 1 of a namespace ignores a signal it has no handler for, so the
 * container ran on as if nothing had been sent. So before the start:
 * - a stopping signal (INT, TERM, HUP, QUIT) ends the run, as podman does: if the runtime is
 *   not spawned yet, it never is; if it is, the container is killed as soon as it exists and
 *   runs (the start is let finish, so the runtime cleans up its own cgroup and state); a second
 *   one kills the runtime at once, for a start that hangs;
 * - any other signal (USR1, USR2, WINCH) is kept and passed on once the command runs.
 * runc writes the pid file a moment after it let the command go (the two race): a stopping
 * signal in that moment stops a command that may have begun, as it would have stopped one that
 * had not. A signal just after the start can find the command without its handler yet, as with
 * any runtime: that is the command's (and its pid 1's) business.
 */
export function takeStartSignals(opts: StartSignalsOptions): StartSignals {
  let child: ChildProcess | undefined;
  let started = false;
  let interrupted: NodeJS.Signals | undefined;
  const held: NodeJS.Signals[] = [];
  let poll: NodeJS.Timeout | undefined;

  const hasStarted = (): boolean => (started ||= child !== undefined && existsSync(opts.pidFile));
  const running = (c: ChildProcess): boolean => c.exitCode === null && c.signalCode === null;
  const stopPolling = () => {
    if (poll) clearInterval(poll);
    poll = undefined;
  };
  const afterStart = (): boolean => {
    if (!child || !running(child)) {
      stopPolling();
      return true;
    }
    if (!hasStarted()) return false;
    stopPolling();
    if (interrupted) {
      opts.killContainer();
    } else {
      for (const sig of held.splice(0)) child.kill(sig);
    }
    return true;
  };
  const waitForStart = () => {
    if (child && !poll && !afterStart()) poll = setInterval(afterStart, POLL_MS).unref();
  };

  const onSignal = (sig: NodeJS.Signals) => {
    if (hasStarted()) {
      opts.onSignal?.(sig, 'forwarded');
      child!.kill(sig);
    } else if (!STOPPING.has(sig)) {
      opts.onSignal?.(sig, 'held');
      held.push(sig);
      waitForStart();
    } else if (interrupted === undefined) {
      opts.onSignal?.(sig, 'stopping');
      interrupted = sig;
      held.length = 0;
      waitForStart();
    } else if (child && running(child)) {
      opts.onSignal?.(sig, 'killed');
      child.kill('SIGKILL');
    }
  };
  for (const sig of FORWARDED_SIGNALS) process.on(sig, onSignal);

  return {
    attach(c) {
      child = c;
      c.once('exit', stopPolling);
      // Watched from now until it appears, whether or not a signal came: once seen, the start is
      // known for good, even if the pid file goes later (its bundle removed under a live run).
      waitForStart();
    },
    get interrupted() {
      return interrupted;
    },
    release() {
      stopPolling();
      for (const sig of FORWARDED_SIGNALS) process.removeListener(sig, onSignal);
    },
  };
}
