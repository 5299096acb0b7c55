import type { Logger } from '../log.js';
import { resolveReference, type ImageReference } from '../oci/reference.js';
import { RegistryClient } from '../registry/index.js';
import { ContentStore } from '../store/content-store.js';
import { loggerFor, type GlobalOptions } from './context.js';

/** What a host-side command needs: the store, a registry client and a logger, closed together. */
export interface HostContext {
  options: GlobalOptions;
  logger: Logger;
  store: ContentStore;
  client: RegistryClient;
  resolve(input: string): ImageReference;
  close(): Promise<void>;
}

export async function openHost(options: GlobalOptions): Promise<HostContext> {
  const logger = loggerFor(options);
  const store = await ContentStore.open(options.root, { logger });
  const client = new RegistryClient({ insecureRegistries: options.insecureRegistry, logger });
  return {
    options,
    logger,
    store,
    client,
    resolve: (input) => resolveReference(input, { server: options.server, namespace: options.namespace }),
    async close() {
      await client.close();
      store.close();
    },
  };
}

/** Runs fn with an open host context and always closes it. */
export async function withHost<T>(options: GlobalOptions, fn: (host: HostContext) => Promise<T>): Promise<T> {
  const host = await openHost(options);
  try {
    return await fn(host);
  } finally {
    await host.close();
  }
}
