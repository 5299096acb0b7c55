import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HostpullError } from '../errors.js';

/**
 * The built CLI entry (dist/cli/main.js). From dist/demo/ it is ../cli/main.js; when this module
 * runs from src/ (tests), the sibling is TypeScript, so fall back to the repository's dist/.
 */
export function defaultCliEntry(): string {
  for (const rel of ['../cli/main.js', '../../dist/cli/main.js']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new HostpullError('DEMO_NOT_BUILT', 'dist/cli/main.js does not exist', { hint: 'run `npm run build:ts` first' });
}

export type OutputStream = 'stdout' | 'stderr';

export interface CliCallOptions {
  entry: string;
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Receives the child's output as it arrives, so a walkthrough shows it live. */
  onOutput?: (stream: OutputStream, chunk: string) => void;
  signal?: AbortSignal;
}

export interface CliCall {
  args: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `hostpull ARGS` as a child process (the same node binary), never rejecting on an exit code. */
export function callCli(args: readonly string[], options: CliCallOptions): Promise<CliCall> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [options.entry, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      ...(options.signal ? { signal: options.signal, killSignal: 'SIGTERM' as const } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      options.onOutput?.('stdout', s);
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
      options.onOutput?.('stderr', s);
    });
    child.once('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ABORT_ERR') return; // 'close' follows with the signal
      reject(new HostpullError('DEMO_STEP_FAILED', `cannot start hostpull: ${err.message}`, { cause: err }));
    });
    child.once('close', (code, signal) => resolve({ args: [...args], code, signal, stdout, stderr }));
  });
}
