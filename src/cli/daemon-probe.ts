import { existsSync } from 'node:fs';
import { connectDaemon, type HostApi } from '../daemon/index.js';

const probes = new Map<string, Promise<HostApi | undefined>>();

/**
 * The daemon on `socketPath` if one answers there for `root` (daemon/client.ts), asked once per
 * CLI process: when a plain pull (daemon-pull.ts) found none, the full CLI that then takes the
 * command line gets the same answer without asking again. A daemon that accepts connections but
 * does not answer costs the health probe's timeout (2 s), and it cost it twice.
 */
export function probeDaemon(socketPath: string, root: string): Promise<HostApi | undefined> {
  const key = `${socketPath}\0${root}`;
  let probe = probes.get(key);
  if (!probe) {
    // No socket file, no daemon, and no request to wait for.
    probe = existsSync(socketPath) ? connectDaemon({ socketPath, root }) : Promise.resolve(undefined);
    probes.set(key, probe);
  }
  return probe;
}
