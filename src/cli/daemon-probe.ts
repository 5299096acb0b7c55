import { existsSync } from 'node:fs';
import { connectDaemon, type HostApi } from '../daemon/index.js';

/**
 * The probes of this process, kept on the global object: daemon-pull.js is a bundle of its own
 * (scripts/bundle.mjs), so this module has two copies in a CLI process where a plain pull found
 * no daemon and the full CLI took over, and both must see one map.
 */
const PROBES = Symbol.for('hostpull.daemonProbes');
const probes: Map<string, Promise<HostApi | undefined>> = ((globalThis as { [PROBES]?: Map<string, Promise<HostApi | undefined>> })[PROBES] ??= new Map());

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
