import { join } from 'node:path';

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

/** Where containerd's `[proxy_plugins.hostpull] address` points by default (`--snapshotter-socket`). */
export const DEFAULT_SNAPSHOTTER_SOCKET = '/run/hostpull/snapshotter.sock';
