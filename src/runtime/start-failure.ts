import { HostpullError } from '../errors.js';
import { tail } from './exec-runtime.js';

/**
 * The runtime's words for an exec of the container's command that failed, as podman reads them
 * (libpod's getOCIRuntimeError), but only in the exec step: podman takes any "no such file or
 * directory" for a missing command, a missing bind-mount source too.
 * runc 1.1: `unable to start container process: exec: "x": executable file not found in $PATH`,
 * `exec: "/x": stat /x: no such file or directory`, `exec: "/etc/passwd": permission denied`
 * (a directory says the same); crun: "executable file `x` not found in $PATH".
 */
const NOT_FOUND = /exec: "[^"]*": (?:executable file not found|stat [^\n]*: no such file or directory)|executable file `[^`]*` not found/i;
const NOT_EXECUTABLE = /exec: "[^"]*": (?:permission denied|exec format error|is a directory)|open executable: permission denied/i;
const COMMAND = /exec: "([^"]*)"|executable file `([^`]*)`/;

export interface StartFailureOptions {
  /** The runtime's stderr was our stderr, so its message is on the user's screen already: not repeated. */
  shown: boolean;
  /** The runtime's exit status. */
  exitCode: number;
  /** The runtime's captured stderr, when it was captured. */
  stderr?: string;
  /** `exec`: a process started in a running container (`hostpull exec`). Default `run`. */
  verb?: 'run' | 'exec';
}

/**
 * The error for a runtime that exited with error entries in its `--log`: it could not create or
 * start the container, or run the command of an exec. Exit codes as a shell's and podman's:
 * COMMAND_NOT_FOUND (127) and COMMAND_NOT_EXECUTABLE (126) for the command, RUNTIME_FAILED (125)
 * for the rest, so none is taken for a command that exited 1 (or 255, runc exec's own failure).
 */
export function startFailure(runtime: { name: string; version?: string; path: string }, errors: string[], opts: StartFailureOptions): HostpullError {
  const said = tail(errors.join('\n'), 3);
  const details = { runtime: runtime.path, exitCode: opts.exitCode, runtimeError: said, ...(opts.stderr !== undefined ? { stderrTail: tail(opts.stderr, 10) } : {}) };
  const also = opts.shown ? '' : `: ${said}`;
  const found = COMMAND.exec(said);
  const command = found?.[1] ?? found?.[2] ?? '';
  if (NOT_FOUND.test(said)) {
    return new HostpullError('COMMAND_NOT_FOUND', `the command "${command}" is not in the container${also}`, {
      hint: 'give a program on the image\'s PATH or its absolute path after --, or check the image\'s Entrypoint and Cmd',
      details,
    });
  }
  if (NOT_EXECUTABLE.test(said)) {
    return new HostpullError('COMMAND_NOT_EXECUTABLE', `the command "${command}" cannot be executed in the container (not executable, a directory, or no program)${also}`, {
      hint: 'give a program after --, or run a script through its interpreter (sh FILE)',
      details,
    });
  }
  const who = runtime.version ? `${runtime.name} ${runtime.version}` : runtime.name;
  const what = opts.verb === 'exec' ? 'the process in the container' : 'the container';
  return new HostpullError('RUNTIME_FAILED', opts.shown ? `${who} could not start ${what} (its message is above)` : `${who}: ${said}`, {
    hint: opts.verb === 'exec' ? 'the container may be stopping: `hostpull ps`' : 'the OCI runtime could not start the container; try another with --runtime',
    details,
  });
}
