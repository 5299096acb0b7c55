import { spawn } from 'node:child_process';
import type { RuntimeInfo } from './runtime-info.js';

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Output kept per stream: enough for `list`/`state` JSON and an error tail, bounded in memory. */
const MAX_CAPTURE = 1024 * 1024;

/**
 * Runs a short runtime subcommand (`state`, `kill`, `delete`, `list`, `--version`) with
 * `--root <stateRoot>` and captures its output. Never throws for a non-zero exit: callers decide
 * (e.g. `delete` of a container that is already gone is fine).
 */
export function execRuntime(
  runtime: Pick<RuntimeInfo, 'path'>,
  stateRoot: string | undefined,
  args: string[],
  opts: { signal?: AbortSignal } = {},
): Promise<ExecResult> {
  const full = stateRoot === undefined ? args : [`--root=${stateRoot}`, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(runtime.path, full, { stdio: ['ignore', 'pipe', 'pipe'], signal: opts.signal });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    child.stdout.on('data', (b: Buffer) => {
      if (outLen < MAX_CAPTURE) out.push(b);
      outLen += b.length;
    });
    child.stderr.on('data', (b: Buffer) => {
      if (errLen < MAX_CAPTURE) err.push(b);
      errLen += b.length;
    });
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
  });
}

/** The last `maxLines` non-empty lines of a runtime's stderr, for error messages. */
export function tail(text: string, maxLines = 5): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .slice(-maxLines)
    .join('\n');
}

/** True when a runtime's error output says the container does not exist (runc and crun wordings). */
export function isNotExist(stderr: string): boolean {
  return /does not exist|not found|no such file or directory/i.test(stderr);
}
