import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { HostpullError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { isValidRepository } from '../oci/index.js';
import { StaticCatalog, UpstreamCatalog, type Catalog } from './catalog.js';
import { DEFAULT_HOST, DEFAULT_NAMESPACE, DEFAULT_PORT } from '../defaults.js';
import { createServerHandler } from './handler.js';
import { writeClientError } from './http-util.js';
import { ServerMetrics } from './metrics.js';
import { createUpstream } from './upstream-factory.js';
import { upstreamImageName } from './upstream-image-name.js';
import type { Upstream } from './upstream.js';


export interface ServerOptions {
  /** Listen address. Default 127.0.0.1 (loopback: exposing the server is a decision). */
  host?: string;
  /** Listen port; 0 picks a free one. Default 5055. */
  port?: number;
  /** Upstream registry URL (`http://127.0.0.1:5000`); when absent, an OCI layout is used. */
  upstream?: string | undefined;
  /** OCI layout directory. Default `<root>/server/layout`. */
  layout?: string | undefined;
  /** State root, used only for the default layout. */
  root?: string;
  /** Repository that offers composites. Default `hostpull`. */
  namespace?: string;
  /** Base image (`repo:tag` in the upstream) under every composite; none by default. */
  base?: string | undefined;
  /** File holding the bearer token for catalog writes; without it catalog writes are refused. */
  tokenFile?: string | undefined;
  /** Composite and catalog cache lifetime. Default 30 000 ms. */
  cacheTtlMs?: number;
  /** Composites kept in memory, and new composites pushed upstream per cache lifetime. Default 1000. */
  maxComposites?: number;
  /** Expansion bound a package layer is checked against at registration. Default 100. */
  maxExpansionRatio?: number;
  /** Static catalog JSON file instead of the catalog stored in the upstream. */
  catalogFile?: string | undefined;
  /** Redirect blob GETs to the upstream registry (307). Default false. */
  blobRedirect?: boolean;
  /** PEM certificate and key: serve https. */
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  /** Hosts allowed over plain http for the upstream, besides loopback. */
  insecureRegistries?: string[];
  logger?: Logger;
}

export interface RunningServer {
  /** `http://127.0.0.1:PORT` (or https). */
  url: string;
  /** `127.0.0.1:PORT`, for image references. */
  host: string;
  upstream: Upstream;
  /** Stops accepting, lets running requests finish (up to 10 s), closes the upstream. */
  close(): Promise<void>;
}

async function readToken(file: string): Promise<string> {
  const token = (await readFile(file, 'utf8')).trim();
  if (token.length < 16) {
    throw new HostpullError('USAGE', `token file ${file} holds ${token.length} characters; use at least 16`, {
      hint: 'e.g. `head -c 32 /dev/urandom | base64 > token`',
    });
  }
  return token;
}

/** Composition root of `hostpull serve`: upstream, catalog, handler, listener, shutdown. */
export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? silentLogger();
  const namespace = options.namespace ?? DEFAULT_NAMESPACE;
  if (!isValidRepository(namespace)) throw new HostpullError('USAGE', `--namespace ${JSON.stringify(namespace)} is not a valid repository name`);
  const cacheTtlMs = options.cacheTtlMs ?? 30_000;
  if (Boolean(options.tlsCert) !== Boolean(options.tlsKey)) throw new HostpullError('USAGE', '--tls-cert and --tls-key go together');
  const token = options.tokenFile ? await readToken(options.tokenFile) : undefined;

  const upstream: Upstream = createUpstream({ ...options, logger });
  const catalog: Catalog = options.catalogFile
    ? new StaticCatalog({ file: options.catalogFile, ttlMs: cacheTtlMs, upstream })
    : new UpstreamCatalog({ upstream, repository: `${namespace}/catalog`, ttlMs: cacheTtlMs });
  // What the configuration names is checked now, not at the first composite: a base image of
  // another registry, or a catalog file that does not parse, would otherwise make every
  // composite fail.
  let base: string | undefined;
  try {
    base = options.base === undefined ? undefined : upstreamImageName(options.base, upstream, '--base', 'USAGE');
    if (options.catalogFile) await catalog.entries();
  } catch (err) {
    await upstream.close();
    throw err;
  }
  const metrics = new ServerMetrics();
  const handler = createServerHandler({
    upstream,
    catalog,
    namespace,
    base,
    cacheTtlMs,
    maxComposites: options.maxComposites,
    maxExpansionRatio: options.maxExpansionRatio,
    logger,
    blobRedirect: options.blobRedirect ?? false,
    token,
    metrics,
  });

  const tls = options.tlsCert && options.tlsKey ? { cert: await readFile(options.tlsCert), key: await readFile(options.tlsKey) } : undefined;
  // 16 KiB of headers is Node's default and far more than any registry client sends.
  const server: Server = tls ? createHttpsServer({ ...tls, maxHeaderSize: 16 * 1024 }, handler) : createHttpServer({ maxHeaderSize: 16 * 1024 }, handler);
  server.on('clientError', (err, socket) => writeClientError(err, socket as import('node:net').Socket));
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = 300_000;

  const host = options.host ?? DEFAULT_HOST;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? DEFAULT_PORT, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch(async (err: unknown) => {
    await upstream.close();
    throw new HostpullError('LISTEN_FAILED', `cannot listen on ${host}:${options.port ?? DEFAULT_PORT}: ${(err as Error).message}`, { cause: err });
  });
  const port = (server.address() as AddressInfo).port;
  const hostPort = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const url = `${tls ? 'https' : 'http'}://${hostPort}`;
  logger.info({ url, upstream: upstream.location, namespace, catalog: catalog.location }, 'hostpull server listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    host: hostPort,
    upstream,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const timer = setTimeout(() => server.closeAllConnections(), 10_000);
        await closed;
        clearTimeout(timer);
        await upstream.close();
      })();
      return closing;
    },
  };
}
