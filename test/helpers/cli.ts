/**
 * Runs the built CLI as a child process, as a user would: through its launcher, dist/cli/hostpull,
 * which starts it from the startup snapshot when it can (scripts/launcher.sh), unless a test names
 * another entry. The path is resolved from this file so the tests work from any checkout, not only
 * /work/main.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HostpullError } from '../../src/errors.js';

/** The repository root (two levels above test/helpers/). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
export const CLI_ENTRY = `${REPO_ROOT}/dist/cli/main.js`;
/** The command users run (package.json's bin): `node --snapshot-blob … main.js` or `node main.js`. */
export const CLI_LAUNCHER = `${REPO_ROOT}/dist/cli/hostpull`;

export interface CliOptions {
  /** Added to (and overriding) the test process's environment; a value of undefined removes a variable. */
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed. Default: stdin closed at once. */
  input?: string | Buffer;
  /** SIGKILL after this long (result.timedOut = true). Default 60 000 ms. */
  timeoutMs?: number;
  /** Default the repository root. */
  cwd?: string;
  /** What to run instead of the launcher: a `.js` file runs with this node, anything else as it is. */
  entry?: string;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

function cliEnv(env: CliOptions['env']): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env };
  // A colour, debug or log format setting inherited from the developer's shell would change CLI output.
  delete out['FORCE_COLOR'];
  delete out['HOSTPULL_LOG_FORMAT'];
  out['NO_COLOR'] = '1';
  for (const [k, v] of Object.entries(env ?? {})) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** Spawns the CLI and returns the child (pipes for all three streams) for kill/signal tests. */
export function spawnCli(args: string[], opts: CliOptions = {}): ChildProcess {
  const entry = opts.entry ?? CLI_LAUNCHER;
  if (!existsSync(entry)) {
    throw new HostpullError('TEST_CLI_NOT_BUILT', `${entry} does not exist`, { hint: 'run `npm run build:ts` first' });
  }
  const [command, argv] = /\.[cm]?js$/.test(entry) ? [process.execPath, [entry, ...args]] : [entry, args];
  return spawn(command, argv, {
    cwd: opts.cwd ?? REPO_ROOT,
    env: cliEnv(opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** Runs the CLI to completion and collects its output. Never rejects on a non-zero exit. */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return collectChild(spawnCli(args, opts), opts);
}

/**
 * Waits for a child spawned with piped stdio, collecting its output; gives it `input` on stdin,
 * then EOF; SIGKILL after timeoutMs (default 60 s). Never rejects on a non-zero exit.
 */
export function collectChild(child: ChildProcess, opts: { timeoutMs?: number; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
    // EPIPE if the child exits without reading stdin: not an error for the test.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(opts.input);
  });
}
