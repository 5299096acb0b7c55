/**
 * The node service: its client (what the CLI talks to), the host API the CLI and the daemon
 * share, and its start. The daemon's own server side (HTTP API, gRPC snapshotter, metrics) and
 * the in-process host API load when they are started or opened, not with this face: a CLI verb
 * that only talks to a running daemon loads the client alone.
 */
import type { HostApi, LocalHostApiDeps } from './host-api.js';
import type { DaemonOptions, RunningDaemon } from './start-daemon.js';

export { connectDaemon } from './client.js';
export type { HostApi } from './host-api.js';
export type { HostStats } from './queries.js';
export { resolveGroup } from './socket-group.js';

/** The host API on a store in this process: what a verb uses when no daemon answers. */
export async function openLocalHostApi(deps: LocalHostApiDeps): Promise<HostApi> {
  const { LocalHostApi } = await import('./host-api.js');
  return new LocalHostApi(deps);
}

/** Starts the node service (see start-daemon.ts). */
export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const started = await import('./start-daemon.js');
  return started.startDaemon(options);
}
