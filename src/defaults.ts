import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where hostpull's parts keep their state and meet each other by default. A module of its own,
 * at the top of src/, so that `--help` and the CLI's option defaults load no part (the daemon's
 * face alone would load undici, gRPC and prom-client).
 */

/**
 * Default state root (DESIGN §3 "On disk"): /var/lib/hostpull for root, else
 * $XDG_DATA_HOME/hostpull (~/.local/share/hostpull).
 */
export function defaultRoot(): string {
  if (process.env.HOSTPULL_ROOT) return process.env.HOSTPULL_ROOT;
  if (process.getuid?.() === 0) return '/var/lib/hostpull';
  const xdg = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(xdg, 'hostpull');
}

/**
 * Where the daemon listens by default (DESIGN §3 "Daemon"): /run/hostpull/hostpull.sock for root
 * (systemd's RuntimeDirectory=hostpull), $XDG_RUNTIME_DIR/hostpull/hostpull.sock otherwise, and
 * HOSTPULL_SOCKET over both.
 */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HOSTPULL_SOCKET) return env.HOSTPULL_SOCKET;
  if (process.getuid?.() === 0 || !env.XDG_RUNTIME_DIR) return '/run/hostpull/hostpull.sock';
  return join(env.XDG_RUNTIME_DIR, 'hostpull', 'hostpull.sock');
}

/** The repository under which a server offers its composites (`--namespace`), and where clients look for them. */
export const DEFAULT_NAMESPACE = 'hostpull';

/** Where containerd's `[proxy_plugins.hostpull] address` points by default (`--snapshotter-socket`). */
export const DEFAULT_SNAPSHOTTER_SOCKET = '/run/hostpull/snapshotter.sock';

/**
 * Where `hostpull serve` listens by default: loopback, since exposing the server is a decision;
 * port 5055, since 5000 is the CNCF registry's default (and macOS AirPlay's) and a hostpull server
 * often runs next to a registry.
 */
export const DEFAULT_PORT = 5055;
export const DEFAULT_HOST = '127.0.0.1';

/** The demo's work directory: what one run builds (packages, base, layout) is reused by the next. */
export const DEFAULT_DEMO_WORK = '/var/tmp/hostpull-demo';
