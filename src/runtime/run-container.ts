import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HostpullError, errnoCode } from '../errors.js';
import type { Logger } from '../log.js';
import { captureOutput } from './capture-output.js';
import { exitStatus, requireTerminal, runtimeExit } from './foreground.js';
import { execRuntime, isNotExist, tail } from './exec-runtime.js';
import { removeOwner, writeOwner } from './owner.js';
import type { RuntimeInfo } from './runtime-info.js';
import type { RuntimeSpec } from './spec-types.js';
import { startFailure } from './start-failure.js';
import { takeStartSignals, type StartSignals } from './start-signals.js';

export interface RunOptions {
  runtime: RuntimeInfo;
  /** Bundle directory holding config.json (see writeBundle). */
  bundleDir: string;
  /** Container id: letters, digits, `_ . + -`, at most 128 characters (runc's rule). */
  containerId: string;
  /** The runtime's state directory (`--root`). */
  stateRoot: string;
  /**
   * Whether the bundle asks for a terminal. Default: read from config.json (`process.terminal`);
   * when given, it must agree with it.
   */
  tty?: boolean;
  /**
   * `inherit` (default): the container uses our stdin/stdout/stderr. `pipe`: output is captured
   * and returned (tests, probes); stdin gets `input` then EOF.
   */
  stdio?: 'inherit' | 'pipe';
  /** Bytes written to the container's stdin with `stdio: 'pipe'`. Default: none (immediate EOF). */
  input?: string | Uint8Array;
  /** Abort: the container is killed (SIGKILL), cleaned up, and the call rejects with ABORTED. */
  signal?: AbortSignal;
  /** Skip the final `delete --force` (debugging). Default false. */
  keep?: boolean;
  /**
   * Leave the bundle's owner file for the caller, who removes the bundle after more work of its
   * own (`hostpull run`: a lazy run's learned prefetch, then the directory): until then the
   * container is still this process's, and another run's cleanup of killed runs leaves it alone.
   * Default false: removed with the runtime's state.
   */
  keepOwnerFile?: boolean;
  /**
   * Forward SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2/SIGWINCH received by this process to
   * the container while it runs. Default true; a daemon running many containers turns it off.
   */
  forwardSignals?: boolean;
  /**
   * Called at once, synchronously, when this process has taken the signals it forwards (with
   * `forwardSignals`): a caller that handled SIGINT/SIGTERM itself until now drops its handlers
   * here, not earlier, so that no signal finds the process without one.
   */
  onSignalsTaken?: () => void;
  logger?: Logger;
}

export interface RunResult {
  /** The container's exit status; 128+signo when it died of a signal (shell convention). */
  exitCode: number;
  /** Set when the runtime process itself was killed by a signal. */
  signal?: NodeJS.Signals;
  /** Captured output with `stdio: 'pipe'` (the last 4 MiB of each). */
  stdout?: string;
  stderr?: string;
}

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$/;
/** The runtime's own log (`--log`): its errors, apart from the container's stderr. */
const RUNTIME_LOG = 'runtime.log';
/** The runtime's `--pid-file`: it exists once the container's command was started (see takeStartSignals). */
const PID_FILE = 'init.pid';

function checkContainerId(id: string): void {
  if (!CONTAINER_ID.test(id)) {
    throw new HostpullError('CONTAINER_ID_INVALID', `container id "${id}" must be 1-128 of [A-Za-z0-9_.+-], starting alphanumeric`);
  }
}

/** Error-level messages from a runtime's JSON log (runc writes one object per line; crun omits newlines). */
export async function runtimeErrors(logPath: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(logPath, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  const out: string[] = [];
  for (const line of text.replace(/}\s*{/g, '}\n{').split('\n')) {
    if (line.trim() === '') continue;
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if ((entry.level === 'error' || entry.level === 'fatal') && entry.msg) out.push(entry.msg);
    } catch {
      // A non-JSON line (e.g. from an older runtime) is kept verbatim.
      out.push(line.trim());
    }
  }
  return out;
}

async function readTerminal(bundleDir: string): Promise<boolean> {
  let spec: Partial<RuntimeSpec>;
  try {
    spec = JSON.parse(await readFile(join(bundleDir, 'config.json'), 'utf8')) as Partial<RuntimeSpec>;
  } catch (err) {
    throw new HostpullError('BUNDLE_INVALID', `cannot read ${join(bundleDir, 'config.json')}: ${(err as Error).message}`, { cause: err });
  }
  return spec.process?.terminal === true;
}

/**
 * Runs a container in the foreground with `<runtime> --root <stateRoot> run --bundle <dir> <id>`
 * and resolves with its exit code once it is gone and deleted.
 *
 * Signals: taken from the call on, before the first await (see takeStartSignals). Once the
 * container's command runs they go to the runtime *process*, whose foreground `run` forwards
 * every signal it receives to the container's init; before that a SIGINT/SIGTERM/SIGHUP/SIGQUIT
 * ends the run (the call rejects with ABORTED, `details.signal` naming it) and the others wait
 * for the start. Without a terminal the runtime gets its own session (`detached`): a Ctrl-C or
 * hangup aimed at our process group then reaches the container exactly once, through us.
 *
 * TTY: with `process.terminal` the runtime allocates the pty itself and, in foreground mode,
 * opens /dev/tty — our controlling terminal — to put it in raw mode and proxy it (it fails with
 * "open /dev/tty: no such device or address" otherwise). So the runtime must stay in our session
 * and process group, stdio must be inherited, and our stdin must be a terminal; we check that
 * up front. In raw mode the keyboard produces bytes, not signals, and the runtime receives the
 * terminal's SIGWINCH itself; a signal sent to the whole process group may reach it twice.
 *
 * Exit: the runtime exits with the container's status, or 128+signo when the container died of a
 * signal; if the runtime itself dies of a signal we report 128+signo and the signal. Runtime
 * failures (it could not create or start the container) are told apart from a container exiting
 * non-zero by the error entries of its `--log` file and thrown (see startFailure): a command
 * that is not there (127) or cannot be executed (126), else RUNTIME_FAILED (125).
 * `delete --force` runs on every path unless `keep`.
 */
export async function runContainer(opts: RunOptions): Promise<RunResult> {
  const { runtime, bundleDir, containerId, stateRoot } = opts;
  const log = opts.logger;
  checkContainerId(containerId);
  if (opts.signal?.aborted) throw new HostpullError('ABORTED', `run of ${containerId} aborted before start`, { cause: opts.signal.reason });
  const stdio = opts.stdio ?? 'inherit';
  const pidFile = join(bundleDir, PID_FILE);

  let child: ChildProcess | undefined;
  const killContainer = () => {
    void execRuntime(runtime, stateRoot, ['kill', containerId, 'KILL']).then(
      (r) => {
        // Not created yet (or already gone): stop the runtime itself; delete --force follows.
        if (r.code !== 0) child?.kill('SIGKILL');
      },
      () => child?.kill('SIGKILL'),
    );
  };
  const signals: StartSignals | undefined = (opts.forwardSignals ?? true)
    ? takeStartSignals({ pidFile, killContainer, onSignal: (sig, action) => log?.debug({ signal: sig, action, containerId }, 'signal during run') })
    : undefined;
  opts.onSignalsTaken?.();
  const interrupted = (when: string): HostpullError | undefined =>
    signals?.interrupted ? new HostpullError('ABORTED', `interrupted by ${signals.interrupted} ${when}`, { details: { signal: signals.interrupted } }) : undefined;

  let aborted = false;
  const onAbort = () => {
    aborted = true;
    killContainer();
  };
  let spawned = false;
  try {
    const terminal = await readTerminal(bundleDir);
    if (opts.tty !== undefined && opts.tty !== terminal) {
      throw new HostpullError('BUNDLE_INVALID', `tty=${opts.tty} but the bundle's process.terminal is ${terminal}`);
    }
    if (terminal) requireTerminal(stdio === 'inherit' && process.stdin.isTTY === true);

    const logPath = join(bundleDir, RUNTIME_LOG);
    await Promise.all([rm(logPath, { force: true }), rm(pidFile, { force: true })]);
    await writeOwner(bundleDir);

    const early = interrupted('before the container started');
    if (early) throw early;
    if (opts.signal?.aborted) throw new HostpullError('ABORTED', `run of ${containerId} aborted before start`, { cause: opts.signal.reason });
    const args = [`--root=${stateRoot}`, `--log=${logPath}`, '--log-format=json', 'run', '--bundle', bundleDir, `--pid-file=${pidFile}`, containerId];
    log?.debug({ runtime: runtime.path, args }, 'starting container');
    const proc = spawn(runtime.path, args, {
      stdio: stdio === 'inherit' ? 'inherit' : ['pipe', 'pipe', 'pipe'],
      detached: !terminal,
    });
    child = proc;
    spawned = true;
    signals?.attach(proc);
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const captured = stdio === 'pipe' ? captureOutput(proc, opts.input) : undefined;
    const { code, signal } = await runtimeExit(proc, runtime);
    if (aborted) throw new HostpullError('ABORTED', `run of ${containerId} aborted`, { cause: opts.signal?.reason });
    const stopped = interrupted('before the container\'s command ran');
    if (stopped) throw stopped;

    const result: RunResult = exitStatus(code, signal);
    if (captured) {
      result.stdout = captured.stdout();
      result.stderr = captured.stderr();
    }
    if (result.exitCode !== 0 && result.signal === undefined) {
      const errors = await runtimeErrors(logPath);
      // With inherited stdio the runtime has printed its message on our stderr already.
      if (errors.length > 0) throw startFailure(runtime, errors, { shown: stdio === 'inherit', exitCode: result.exitCode, ...(result.stderr !== undefined ? { stderr: result.stderr } : {}) });
    }
    log?.debug({ containerId, ...result, stdout: undefined, stderr: undefined }, 'container exited');
    return result;
  } finally {
    signals?.release();
    opts.signal?.removeEventListener('abort', onAbort);
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (!(opts.keep ?? false)) {
      // A foreground `run` deletes its container on a normal exit; this covers the runtime being
      // killed, aborted or failing halfway (state left under --root, processes still running).
      if (spawned) {
        const r = await execRuntime(runtime, stateRoot, ['delete', '--force', containerId]).catch((e: unknown) => ({
          code: -1,
          stderr: String(e),
        }));
        if (r.code !== 0 && !isNotExist(r.stderr)) log?.warn({ containerId, stderr: tail(r.stderr) }, 'runtime delete failed');
      }
      if (!opts.keepOwnerFile) await removeOwner(bundleDir).catch(() => undefined);
    }
  }
}
