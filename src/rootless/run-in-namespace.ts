import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { HostpullError } from '../errors.js';
import { buildFile } from '../util/index.js';
import type { Logger } from '../log.js';
import { captureOutput, forwardSignals, tail, type RunResult } from '../runtime/index.js';
import { DEFAULT_UNSHARE, rootlessUnavailable, UNSHARE_ARGS, unshareSpawnError } from './check-rootless.js';
import { errorFromMessage, LineChannel, type ChildMessage, type ParentMessage, type RootlessRunRequest } from './protocol.js';

export interface RunInNamespaceOptions {
  request: RootlessRunRequest;
  /** The `unshare` program. Default `unshare` from $PATH. */
  unshare?: string;
  /**
   * `inherit` (default): the container uses our stdin/stdout/stderr. `pipe`: its output is
   * captured and returned, stdin is closed at once.
   */
  stdio?: 'inherit' | 'pipe';
  /** Kills the container; the call then rejects with ABORTED. */
  signal?: AbortSignal;
  /** Called once the helper has mounted the rootfs. */
  onMounted?: () => void;
  /** Helper entry script. Default: child-main.js beside this module (dist/rootless/). */
  childEntry?: string;
  logger?: Logger;
}

function defaultChildEntry(): string {
  return buildFile('rootless/child-main.js');
}

/**
 * Runs the privileged half of a rootless `hostpull run` — mount, bundle, OCI runtime — as root of
 * a new user namespace that owns a new private mount namespace, by re-executing this program
 * under `unshare` (Node cannot unshare a running multi-threaded process; podman's `unshare` and
 * rootlesskit re-exec the same way). The helper inherits our stdio, so the container's output and
 * TTY behave as in a root run; the request, its outcome and an abort travel over fd 3.
 *
 * Signals: without a TTY the helper gets its own session, and the signals of a Ctrl-C, `kill` or
 * hangup reaching us are forwarded to it once (it forwards them to the runtime, which forwards
 * them to the container). With a TTY it stays in our session, as the runtime must reach our
 * terminal (see runContainer).
 */
export async function runInUserNamespace(opts: RunInNamespaceOptions): Promise<RunResult> {
  const entry = opts.childEntry ?? defaultChildEntry();
  if (!existsSync(entry)) {
    throw new HostpullError('ROOTLESS_HELPER_MISSING', `rootless helper ${entry} does not exist`, {
      hint: 'build hostpull (npm run build:ts) and run it from dist/',
    });
  }
  const unshare = opts.unshare ?? DEFAULT_UNSHARE;
  const stdio = opts.stdio ?? 'inherit';
  const tty = opts.request.tty;
  const log = opts.logger;
  if (opts.signal?.aborted) throw new HostpullError('ABORTED', `run of ${opts.request.containerId} aborted before start`, { cause: opts.signal.reason });

  const args = [...UNSHARE_ARGS, '--', process.execPath, entry];
  log?.debug({ unshare, args }, 'starting rootless helper');
  const child = spawn(unshare, args, {
    stdio: stdio === 'inherit' ? ['inherit', 'inherit', 'inherit', 'pipe'] : ['pipe', 'pipe', 'pipe', 'pipe'],
    detached: !tty,
  });

  const captured = stdio === 'pipe' ? captureOutput(child) : undefined;

  let outcome: Extract<ChildMessage, { type: 'exit' | 'error' }> | undefined;
  let channelError: HostpullError | undefined;
  let mounted = false;
  const channel = new LineChannel<ChildMessage, ParentMessage>(
    child.stdio[3] as Socket,
    (m) => {
      if (m.type === 'mounted') {
        mounted = true;
        opts.onMounted?.();
      } else if (m.type === 'exit' || m.type === 'error') {
        outcome = m;
      }
    },
    (e) => (channelError = e),
  );
  void channel.send({ type: 'run', request: opts.request });

  const stopForwarding = forwardSignals(child, (sig) => log?.debug({ signal: sig }, 'forwarding signal to the rootless helper'));
  const onAbort = () => void channel.send({ type: 'abort' });
  opts.signal?.addEventListener('abort', onAbort, { once: true });

  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once('error', (e) => {
        reject(unshareSpawnError(unshare, e));
      });
      child.once('close', (c, s) => resolve({ code: c, signal: s }));
    });
    const stderr = captured?.stderr() ?? '';
    const output = captured ? { stdout: captured.stdout(), stderr } : {};
    if (outcome?.type === 'exit') {
      return { exitCode: outcome.exitCode, ...(outcome.signal ? { signal: outcome.signal } : {}), ...output };
    }
    if (outcome?.type === 'error') throw errorFromMessage(outcome);
    if (channelError) throw channelError;
    const status = code !== null ? `exit status ${code}` : `signal ${signal}`;
    // No word from the helper: unshare itself failed (a namespace denied after checkRootless
    // passed), or the helper died (killed, out of memory) before it could report.
    if (!mounted && /^unshare:/m.test(stderr)) throw rootlessUnavailable(tail(stderr, 3));
    throw new HostpullError('ROOTLESS_HELPER_FAILED', `the rootless helper ended without a result (${status})`, {
      details: { exitCode: code, signal: signal ?? undefined, stderrTail: tail(stderr, 10) },
    });
  } finally {
    stopForwarding();
    opts.signal?.removeEventListener('abort', onAbort);
    channel.close();
  }
}
