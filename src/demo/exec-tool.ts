import { spawn, type StdioOptions } from 'node:child_process';
import { HostpullError } from '../errors.js';

export interface ExecToolOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Bytes kept of stdout (the rest is dropped). Default 16 MiB. */
  maxStdout?: number;
  signal?: AbortSignal;
}

export interface ExecToolResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs a host tool (apt-get, dpkg-deb, tar…) to completion and returns its output; a non-zero
 * exit becomes DEMO_TOOL_FAILED carrying the tail of stderr, which is where these tools say why.
 */
export function execTool(file: string, args: readonly string[], options: ExecToolOptions = {}): Promise<ExecToolResult> {
  const max = options.maxStdout ?? 16 * 1024 * 1024;
  const stdio: StdioOptions = ['ignore', 'pipe', 'pipe'];
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: options.cwd, env: options.env ?? process.env, stdio, ...(options.signal ? { signal: options.signal } : {}) });
    const out: Buffer[] = [];
    let outBytes = 0;
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => {
      if (outBytes < max) out.push(b);
      outBytes += b.length;
    });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      stderr = (stderr + s).slice(-8192);
    });
    child.once('error', (err) => {
      reject(new HostpullError('DEMO_TOOL_FAILED', `cannot run ${file}: ${err.message}`, { cause: err }));
    });
    child.once('close', (code, signal) => {
      if (code === 0) return resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr });
      const why = signal ? `was killed by ${signal}` : `exited with ${code}`;
      const tail = stderr.trim().split('\n').slice(-5).join('\n');
      reject(new HostpullError('DEMO_TOOL_FAILED', `${file} ${args.slice(0, 4).join(' ')}${args.length > 4 ? ' …' : ''} ${why}${tail ? `:\n${tail}` : ''}`, { details: { tool: file, stderr } }));
    });
  });
}
