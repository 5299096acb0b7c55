/**
 * Starts `hostpull daemon` as a child process for integration tests and stops it by its pid.
 * Talks to it with plain node:http requests rather than the CLI's DaemonClient, so a test sees
 * each answer's status and body as the daemon sent them.
 */

/** GET on the daemon's socket; rejects when nothing answers. */
export function daemonGet(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return daemonRequest(socketPath, 'GET', path);
}

/**
 * A request on the daemon's socket with an optional JSON body; rejects when nothing answers. Each
 * on a connection of its own (`agent: false`): Node 20's global agent keeps connections alive, so a
 * request could go out on a connection the daemon was closing and meet ECONNRESET, where a test
 * means to ask whether the daemon answers. A clean-clone CI run saw one such reset once.
 */
export function daemonRequest(socketPath: string, method: string, path: string, json?: unknown): Promise<{ status: number; body: string }> {
  const payload = json === undefined ? undefined : JSON.stringify(json);
  const headers = payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(payload);
  });
}
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach } from 'vitest';
import { spawnCli } from '../../helpers/cli.js';

export interface TestDaemon {
  child: ChildProcess;
  socket: string;
  root: string;
  /** stderr so far (JSON log lines at --log-level info). */
  log(): string;
  get(path: string): Promise<{ status: number; body: string }>;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait; SIGKILL after 20 s. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startTestDaemon(opts: { root: string; socket: string; server?: string; args?: string[]; env?: Record<string, string | undefined> }): Promise<TestDaemon> {
  const args = ['--root', opts.root, '--log-level', 'info'];
  if (opts.server) args.push('--server', opts.server);
  args.push('daemon', '--socket', opts.socket, ...(opts.args ?? []));
  const child = spawnCli(args, opts.env ? { env: opts.env } : {});
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (gone) throw new Error(`daemon exited during start:\n${stderr}`);
    if (existsSync(opts.socket)) {
      const health = await daemonGet(opts.socket, '/v1/health').catch(() => undefined);
      if (health?.status === 200) break;
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`daemon did not answer on ${opts.socket}:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = async () => {
    if (!gone) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return exited;
  };
  return {
    child,
    socket: opts.socket,
    root: opts.root,
    log: () => stderr,
    get: (path) => daemonGet(opts.socket, path),
    exited,
    stop,
  };
}

/**
 * vitest helper: `daemonOn(dir, server, args?, env?)` starts a daemon with its root and socket in
 * `dir`. Daemons started in a test are killed (SIGKILL, by pid) after it, those started in
 * beforeAll after the file. Register it after useTempDir: after-hooks run in reverse order, so
 * the daemons are gone before their directories are removed.
 */
export function useTestDaemons(): (dir: string, server: string, args?: string[], env?: Record<string, string | undefined>) => Promise<TestDaemon> {
  const suite: TestDaemon[] = [];
  const test: TestDaemon[] = [];
  let inTest = false;
  const killAll = async (list: TestDaemon[]) => {
    for (const d of list.splice(0)) {
      d.child.kill('SIGKILL');
      await d.exited;
    }
  };
  beforeEach(() => {
    inTest = true;
  });
  afterEach(async () => {
    inTest = false;
    await killAll(test);
  });
  afterAll(() => killAll(suite));
  return async (dir, server, args = [], env) => {
    const d = await startTestDaemon({ root: join(dir, 'root'), socket: join(dir, 'hostpull.sock'), server, args, ...(env ? { env } : {}) });
    (inTest ? test : suite).push(d);
    return d;
  };
}

/** A unix datagram socket that records what is sent to it (a stand-in for systemd's NOTIFY_SOCKET). */
export async function startNotifyReceiver(path: string): Promise<{ messages: string[]; waitFor(text: string, timeoutMs?: number): Promise<void>; close(): void }> {
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  // One datagram per line, newlines inside a datagram escaped, so each message is one line.
  const script = [
    'import socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    'print("BOUND", flush=True)',
    'while True:',
    '    print(s.recv(65536).decode().replace("\\n", "|"), flush=True)',
  ].join('\n');
  const child = spawn(python, ['-c', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  let buffered = '';
  const waiters: Array<() => void> = [];
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    buffered += s;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      messages.push(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = async (text: string, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!messages.some((m) => m.split('|').includes(text))) {
      if (Date.now() > deadline) throw new Error(`no ${text} among notifications ${JSON.stringify(messages)}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
  };
  await waitFor('BOUND', 10_000);
  return { messages, waitFor, close: () => void child.kill('SIGKILL') };
}
