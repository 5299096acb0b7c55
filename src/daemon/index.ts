/**
 * The node service: its client (what the CLI talks to), the host API the CLI and the daemon
 * share, and its start. Each loads when it is called, not with this face: a CLI verb that talks
 * to a running daemon loads the client alone, one that works in-process never loads the client,
 * and neither loads the daemon's server side (HTTP API, gRPC snapshotter, metrics).
 */
import type { ConnectDaemonOptions } from './client.js';
import type { HostApi, LocalHostApiDeps } from './host-api.js';
import type { DaemonOptions, RunningDaemon } from './start-daemon.js';

export type { HostApi } from './host-api.js';
export type { HostStats } from './queries.js';
export { resolveGroup } from './socket-group.js';

/**
 * The daemon on a socket, if one answers there for this root (client.ts); undefined otherwise.
 * The client loads on call: a verb that finds no daemon works without it.
 */
export async function connectDaemon(options: ConnectDaemonOptions): Promise<HostApi | undefined> {
  const { connectDaemon: connect } = await import('./client.js');
  return connect(options);
}

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
