import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostpullError } from '../errors.js';
import type { Logger } from '../log.js';
import { exitStatus, forwardSignals, requireTerminal, runtimeExit } from './foreground.js';
import { runtimeErrors, type RunResult } from './run-container.js';
import { startFailure } from './start-failure.js';

export interface ExecOptions {
  /** The runtime that runs the container (its state is under `stateRoot`). */
  runtime: { name: string; path: string };
  stateRoot: string;
  containerId: string;
  /** The program and its arguments. */
  args: string[];
  /** A terminal for the process (`--tty`): stdin must be one, as for `hostpull run -t`. */
  tty: boolean;
  /** KEY=VALUE added to (and overriding) the container's environment. */
  env?: string[];
  /** Numeric ids, as the runtime takes them (names are resolved in the rootfs by the caller). */
  user?: { uid: number; gid: number; additionalGids: number[] };
  /** Working directory inside the container. Default: the container's. */
  cwd?: string;
  logger?: Logger;
}

/**
 * Runs one more process in a running container, in the foreground: `<runtime> exec`, which takes
 * the container's process settings (environment, user, capabilities, working directory) and the
 * overrides given here. Output and exit status are the process's own (128+signo for a signal);
 * signals this process receives are passed on to it, as `hostpull run` does, and a terminal is
 * proxied by the runtime itself (see runContainer). A command that is not there or cannot be
 * executed is COMMAND_NOT_FOUND or COMMAND_NOT_EXECUTABLE, another failure of the runtime
 * RUNTIME_FAILED, told by the runtime's `--log` (runc exec exits 255 for them all, as a process
 * may itself).
 */
export async function execInContainer(o: ExecOptions): Promise<RunResult> {
  if (o.args.length === 0 || o.args[0] === '') throw new HostpullError('NO_COMMAND', 'no command to run in the container', { hint: 'pass it after --, e.g. `hostpull exec ID -- sh`' });
  if (o.tty) requireTerminal();
  // The log of one exec: a file of its own, outside the runtime's state directory.
  const logDir = await mkdtemp(join(tmpdir(), 'hostpull-exec-'));
  const logPath = join(logDir, 'runtime.log');
  const argv = [
    `--root=${o.stateRoot}`,
    `--log=${logPath}`,
    '--log-format=json',
    'exec',
    ...(o.tty ? ['--tty'] : []),
    ...(o.env ?? []).flatMap((e) => ['--env', e]),
    ...(o.user ? ['--user', `${o.user.uid}:${o.user.gid}`, ...o.user.additionalGids.flatMap((g) => ['--additional-gids', String(g)])] : []),
    ...(o.cwd ? ['--cwd', o.cwd] : []),
    o.containerId,
    ...o.args,
  ];
  o.logger?.debug({ runtime: o.runtime.path, args: argv }, 'exec in container');
  // Without a terminal, a session of its own: a Ctrl-C aimed at our process group reaches the process once, through us.
  const child = spawn(o.runtime.path, argv, { stdio: 'inherit', detached: !o.tty });
  const stopForwarding = forwardSignals(child);
  try {
    const { code, signal } = await runtimeExit(child, o.runtime);
    const result = exitStatus(code, signal);
    if (result.exitCode !== 0 && result.signal === undefined) {
      const errors = await runtimeErrors(logPath);
      if (errors.length > 0) throw startFailure(o.runtime, errors, { shown: true, exitCode: result.exitCode, verb: 'exec' });
    }
    return result;
  } finally {
    stopForwarding();
    await rm(logDir, { recursive: true, force: true });
  }
}
