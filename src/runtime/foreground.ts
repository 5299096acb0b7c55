import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { errnoCode, HostpullError } from '../errors.js';

/** Signals that reach `hostpull run` (or `exec`) and are passed on to the container through the runtime. */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];

/** TTY_UNAVAILABLE unless stdin is a terminal: a runtime asked for one proxies ours (see runContainer). */
export function requireTerminal(usable = process.stdin.isTTY === true): void {
  if (!usable) throw new HostpullError('TTY_UNAVAILABLE', 'a terminal was requested but stdin is not a terminal', { hint: 'run without -t, or from an interactive terminal' });
}

/** Passes FORWARDED_SIGNALS this process receives on to `child` until the returned function is called. */
export function forwardSignals(child: ChildProcess, onSignal?: (sig: NodeJS.Signals) => void): () => void {
  const forward = (sig: NodeJS.Signals) => {
    onSignal?.(sig);
    child.kill(sig);
  };
  for (const sig of FORWARDED_SIGNALS) process.on(sig, forward);
  return () => {
    for (const sig of FORWARDED_SIGNALS) process.removeListener(sig, forward);
  };
}

/** How the runtime process ended; a runtime binary that is not there is RUNTIME_NOT_FOUND. */
export function runtimeExit(child: ChildProcess, runtime: { name: string; path: string }): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    child.once('error', (e) => reject(errnoCode(e) === 'ENOENT' ? new HostpullError('RUNTIME_NOT_FOUND', `${runtime.name} not found at ${runtime.path}`, { cause: e }) : e));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
}

/** The runtime's exit as the container's status: its code, else 128+signo (shell convention) and the signal. */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): { exitCode: number; signal?: NodeJS.Signals } {
  return code !== null ? { exitCode: code } : { exitCode: 128 + (constants.signals[signal!] ?? 0), signal: signal! };
}
