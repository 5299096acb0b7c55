import type { HostApi } from '../daemon/index.js';
import { defaultSocketPath } from '../defaults.js';
import type { Logger } from '../log.js';
import { resolveReference, type ImageReference } from '../oci/index.js';
import type { RegistryClient } from '../registry/index.js';
import type { ContentStore, UnpackLimitOptions } from '../store/index.js';
import { loggerFor, type GlobalOptions } from './context.js';
import { probeDaemon } from './daemon-probe.js';

/** What a host-side command needs: the store, a registry client and a logger, closed together. */
export interface HostContext {
  options: GlobalOptions;
  logger: Logger;
  store: ContentStore;
  client: RegistryClient;
  resolve(input: string): ImageReference;
  close(): Promise<void>;
}

async function openHost(options: GlobalOptions, logger = loggerFor(options)): Promise<HostContext> {
  // Loaded here, not at the top: `--help` and light verbs should not pay for SQLite and the registry client.
  const [{ ContentStore }, { RegistryClient }] = await Promise.all([import('../store/index.js'), import('../registry/index.js')]);
  const store = await ContentStore.open(options.root, { logger, unpackLimits: unpackLimitsFor(options), syncFs: options.syncFs });
  // node:http, not undici: this process sends a few requests and exits (node-http-dispatcher.ts).
  const client = new RegistryClient({ insecureRegistries: options.insecureRegistry, logger, httpClient: 'node', ...options.registry });
  return {
    options,
    logger,
    store,
    client,
    resolve: (input) => resolveInput(options, input),
    async close() {
      await client.close();
      store.close();
    },
  };
}

/** A reference as given on the command line: a short composite tag resolves against `--server` (and `--namespace`). */
export function resolveInput(options: GlobalOptions, input: string): ImageReference {
  return resolveReference(input, { server: options.server, namespace: options.namespace });
}

/** The store's unpack bounds from `--max-expansion-ratio` and `--disk-reserve`. */
export function unpackLimitsFor(options: GlobalOptions): UnpackLimitOptions {
  return { maxExpansionRatio: options.maxExpansionRatio, diskReserve: options.diskReserve };
}

/** Runs fn with an open host context and always closes it; `logger` when the command made its own already. */
export async function withHost<T>(options: GlobalOptions, fn: (host: HostContext) => Promise<T>, logger?: Logger): Promise<T> {
  const host = await openHost(options, logger);
  try {
    return await fn(host);
  } finally {
    await host.close();
  }
}

/**
 * The daemon when its socket answers and it serves this --root, else the store in-process
 * (safe beside a running daemon: the store is multi-process safe). Output is the same either way.
 */
async function openHostApi(options: GlobalOptions, daemon: { socket?: string | undefined; daemon?: boolean }): Promise<HostApi> {
  // The daemon's own --insecure-registry decides where it speaks plain http (and could send
  // registry credentials): a client's flag is not forwarded, the command works in-process.
  // The same goes for a registry timeout or retry budget given as a flag: the daemon pulls with
  // its own (the environment file the daemon reads sets them for both alike).
  const insecure = (options.insecureRegistry ?? []).length > 0;
  const ownTimeouts = options.registryFlagsGiven;
  if ((insecure || ownTimeouts) && daemon.daemon !== false) {
    loggerFor(options).debug(`${insecure ? '--insecure-registry' : 'a registry timeout flag'} given: working in-process, not through the daemon`);
  }
  if (daemon.daemon !== false && !insecure && !ownTimeouts) {
    const socketPath = daemon.socket ?? defaultSocketPath();
    const client = await probeDaemon(socketPath, options.root);
    if (client) {
      loggerFor(options).debug({ socket: socketPath }, 'using the daemon');
      return client;
    }
  }
  const [host, { openLocalHostApi }] = await Promise.all([openHost(options), import('../daemon/index.js')]);
  return openLocalHostApi({ store: host.store, client: host.client, logger: host.logger, onClose: () => host.close() });
}

/** Runs fn with a host API and always closes it. */
export async function withHostApi<T>(options: GlobalOptions, daemon: { socket?: string | undefined; daemon?: boolean }, fn: (api: HostApi) => Promise<T>): Promise<T> {
  const api = await openHostApi(options, daemon);
  try {
    return await fn(api);
  } finally {
    await api.close();
  }
}
