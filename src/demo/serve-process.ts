import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { HostpullError } from '../errors.js';

export interface ServeProcessOptions {
  entry: string;
  /** `hostpull serve` arguments (global options first). */
  args: string[];
  /** Where the server's stdout and stderr go. */
  logFile: string;
  /** Let the server outlive this process (own process group, not waited for). Default false. */
  detached?: boolean;
  /** How long to wait for the "serving" line. Default 30 s. */
  startTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface ServeProcess {
  pid: number;
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT`, what `--server` takes. */
  host: string;
  logFile: string;
  /** SIGTERM (the server finishes running requests), SIGKILL after 10 s. */
  stop(): Promise<void>;
}

async function logTail(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-8).join('\n');
}

/**
 * Starts `hostpull serve --port 0` as a child whose output goes to a log file, and learns the
 * port from its "hostpull serving URL" line: the kernel picks a free port, so there is no race
 * between choosing a port and binding it.
 */
export async function startServeProcess(options: ServeProcessOptions): Promise<ServeProcess> {
  const fd = openSync(options.logFile, 'w');
  const child = spawn(process.execPath, [options.entry, ...options.args], {
    stdio: ['ignore', fd, fd],
    detached: options.detached ?? false,
  });
  closeSync(fd);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  child.once('error', () => undefined);
  if (child.pid === undefined) throw new HostpullError('DEMO_SERVER_FAILED', 'cannot start `hostpull serve`');
  const pid = child.pid;

  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exit;
    clearTimeout(killer);
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  try {
    for (;;) {
      options.signal?.throwIfAborted();
      const m = /hostpull serving (https?:\/\/(\S+?)) /.exec(await readFile(options.logFile, 'utf8').catch(() => ''));
      if (m) {
        if (options.detached) child.unref();
        return { pid, url: m[1]!, host: m[2]!, logFile: options.logFile, stop };
      }
      if (exited) {
        throw new HostpullError('DEMO_SERVER_FAILED', `hostpull serve exited with ${exited.code ?? exited.signal} before listening:\n${await logTail(options.logFile)}`);
      }
      if (Date.now() > deadline) throw new HostpullError('DEMO_SERVER_FAILED', `hostpull serve did not start listening within ${(options.startTimeoutMs ?? 30_000) / 1000} s; see ${options.logFile}`);
      await delay(100);
    }
  } catch (err) {
    await stop();
    throw err;
  }
}
