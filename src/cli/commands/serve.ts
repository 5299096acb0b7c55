import { once } from 'node:events';
import type { Command } from 'commander';
import { HostpullError } from '../../errors.js';
import { DEFAULT_HOST, DEFAULT_PORT } from '../../defaults.js';
import { action, globalOptions, loggerFor, serviceLogFormat } from '../context.js';
import { withInterrupt } from '../interrupt.js';
import { durationOption, numberOption } from '../options.js';

interface ServeFlags {
  listen?: string;
  host: string;
  port: string;
  upstream?: string;
  layout?: string;
  base?: string;
  tokenFile?: string;
  cacheTtl: number;
  maxComposites: number;
  catalog?: string;
  blobRedirect?: boolean;
  tlsCert?: string;
  tlsKey?: string;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the virtual image server: composite tags like JDK11.0-MVN3.8 synthesised from package images')
    .option('--listen <host:port>', `listen address and port in one (default ${DEFAULT_HOST}:${DEFAULT_PORT}; [::1]:PORT for IPv6)`)
    .option('--host <addr>', 'listen address', DEFAULT_HOST)
    .option('--port <n>', 'listen port (0: any free port)', String(DEFAULT_PORT))
    .option('--upstream <url>', 'upstream OCI registry, e.g. http://127.0.0.1:5000 (default: an OCI layout under --root)')
    .option('--layout <dir>', 'upstream OCI image layout directory (default <root>/server/layout)')
    .option('--base <repo:tag>', 'base image in the upstream placed under every composite')
    .option('--token-file <file>', 'bearer token for catalog writes (without it, writes are refused)')
    .addOption(durationOption('--cache-ttl <duration>', 'how long composites, the catalog and prefetch lists are cached', { defaultText: '30s' }))
    .addOption(numberOption('--max-composites <n>', 'composites kept in memory, and new composites pushed to the upstream per --cache-ttl', { integer: true, min: 1, defaultValue: 1000 }))
    .option('--catalog <file>', 'static catalog JSON file instead of the catalog stored in the upstream')
    .option('--blob-redirect', 'redirect blob downloads to the upstream registry (307)')
    .option('--tls-cert <pem>', 'serve https with this certificate')
    .option('--tls-key <pem>', 'private key for --tls-cert')
    .action(
      action(async (flags: ServeFlags, cmd: Command) => {
        // Flags are checked before the server's modules load: a bad one fails at once.
        const g = globalOptions(cmd);
        const { host, port } = listenAddress(flags);
        const { startServer } = await import('../../server/index.js');
        // A server logs what it serves (info) unless told otherwise; an explicit --log-level warn
        // (the CLI's default level) is obeyed like any other.
        const logLevel = cmd.getOptionValueSourceWithGlobals('logLevel') === 'default' ? 'info' : g.logLevel;
        const logger = loggerFor({ ...g, logLevel }, serviceLogFormat());
        const server = await startServer({
          host,
          port,
          upstream: flags.upstream,
          layout: flags.layout,
          root: g.root,
          namespace: g.namespace,
          base: flags.base,
          tokenFile: flags.tokenFile,
          cacheTtlMs: flags.cacheTtl,
          maxComposites: flags.maxComposites,
          ...(g.maxExpansionRatio !== undefined ? { maxExpansionRatio: g.maxExpansionRatio } : {}),
          catalogFile: flags.catalog,
          blobRedirect: flags.blobRedirect ?? false,
          tlsCert: flags.tlsCert,
          tlsKey: flags.tlsKey,
          insecureRegistries: g.insecureRegistry,
          logger,
        });
        process.stdout.write(`hostpull serving ${server.url} (upstream ${server.upstream.location})\n`);
        await withInterrupt(({ signal }) => once(signal, 'abort'));
        await server.close();
      }),
    );
}

/** `--listen HOST:PORT` (as registries take it), which wins over `--host` and `--port`. */
export function listenAddress(flags: Pick<ServeFlags, 'listen' | 'host' | 'port'>): { host: string; port: number } {
  let host = flags.host;
  let portText = flags.port;
  if (flags.listen !== undefined) {
    const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(flags.listen);
    if (!m) throw new HostpullError('USAGE', `--listen ${flags.listen}: expected HOST:PORT, e.g. 127.0.0.1:5055 or [::1]:5055`);
    host = m[1] ?? (m[2] || DEFAULT_HOST);
    portText = m[3]!;
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new HostpullError('USAGE', `port ${portText} is not a port number (0 to 65535)`);
  return { host, port };
}
