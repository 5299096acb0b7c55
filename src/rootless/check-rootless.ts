import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { HostpullError, errnoCode } from '../errors.js';
import { tail } from '../runtime/index.js';

/**
 * `unshare` arguments for the rootless helper: a new user namespace in which we are root (our
 * own uid mapped to 0, the only mapping an unprivileged process may write itself), owning a new
 * mount namespace whose mounts stay private, so nothing we mount is seen by (or propagates to)
 * the host's namespace, and everything we mount vanishes when the last process in it exits.
 */
export const UNSHARE_ARGS: readonly string[] = ['--user', '--map-root-user', '--mount', '--propagation', 'private'];

/** Default `unshare` program (util-linux): looked up in $PATH. */
export const DEFAULT_UNSHARE = 'unshare';

const ROOTLESS_MESSAGE = 'rootless run needs unprivileged user namespaces and overlayfs in a user namespace (Linux ≥ 5.11)';
export const ROOTLESS_HINT = 'enable kernel.unprivileged_userns_clone / user.max_user_namespaces, or run as root';

export interface CheckRootlessOptions {
  /** The `unshare` program (util-linux ≥ 2.33 for --map-root-user with --propagation). Default `unshare` from $PATH. */
  unshare?: string;
  signal?: AbortSignal;
}

function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Host settings known to deny unprivileged user namespaces, as readable facts for the error
 * message. They only explain a failure; whether it works is decided by trying (a sysctl can
 * also be set per user namespace, and LSMs can deny without any sysctl saying so).
 */
export function rootlessDiagnostics(): string[] {
  const out: string[] = [];
  if (readSysctl('/proc/sys/kernel/unprivileged_userns_clone') === '0') out.push('kernel.unprivileged_userns_clone = 0');
  if (readSysctl('/proc/sys/user/max_user_namespaces') === '0') out.push('user.max_user_namespaces = 0');
  if (readSysctl('/proc/sys/kernel/apparmor_restrict_unprivileged_userns') === '1') out.push('kernel.apparmor_restrict_unprivileged_userns = 1');
  const m = /^(\d+)\.(\d+)/.exec(release());
  if (m && (Number(m[1]) < 5 || (Number(m[1]) === 5 && Number(m[2]) < 11))) out.push(`kernel ${release()} is older than 5.11`);
  return out;
}

/** The ROOTLESS_UNAVAILABLE error, carrying the real failure text and the host facts that explain it. */
export function rootlessUnavailable(failure: string, cause?: unknown): HostpullError {
  const facts = rootlessDiagnostics();
  const why = [failure, ...facts].filter((s) => s !== '').join('; ');
  return new HostpullError('ROOTLESS_UNAVAILABLE', `${ROOTLESS_MESSAGE}: ${why}`, {
    hint: ROOTLESS_HINT,
    ...(cause !== undefined ? { cause } : {}),
    details: { failure, facts },
  });
}

/** A spawn error of `unshare`: missing or not executable means rootless runs are unavailable here. */
export function unshareSpawnError(unshare: string, err: Error): Error {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'EACCES' ? rootlessUnavailable(`cannot execute ${unshare} (util-linux): ${code}`, err) : err;
}

/**
 * Detects by trying whether this user can create the namespaces `hostpull run` needs: runs
 * `unshare <UNSHARE_ARGS> true` (a few ms) and throws ROOTLESS_UNAVAILABLE with unshare's own
 * message ("unshare failed: Operation not permitted", "No space left on device" when the
 * user-namespace limit is 0…) if it fails. Run before pulling, so an impossible run costs no download.
 * Overlayfs inside the namespace is checked where it is mounted (see runRootlessChild).
 */
export async function checkRootless(opts: CheckRootlessOptions = {}): Promise<void> {
  const unshare = opts.unshare ?? DEFAULT_UNSHARE;
  const r = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve, reject) => {
    const child = spawn(unshare, [...UNSHARE_ARGS, 'true'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      if (stderr.length < 64 * 1024) stderr += s;
    });
    child.once('error', (err) => {
      if (opts.signal?.aborted) reject(new HostpullError('ABORTED', 'rootless check aborted', { cause: opts.signal.reason }));
      else reject(unshareSpawnError(unshare, err));
    });
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  if (r.code === 0) return;
  const status = r.code !== null ? `exit status ${r.code}` : `signal ${r.signal}`;
  const text = tail(r.stderr, 3);
  throw rootlessUnavailable(text !== '' ? `${unshare}: ${text.replace(/^unshare:\s*/, '')}` : `${unshare} ${UNSHARE_ARGS.join(' ')} failed (${status})`);
}
