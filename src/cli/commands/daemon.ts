import { createRequire } from 'node:module';
import { Option, type Command } from 'commander';
import { parseDuration } from '../../daemon/parse-duration.js';
import { DEFAULT_SNAPSHOTTER_SOCKET, defaultSocketPath } from '../../daemon/paths.js';
import { resolveGroup } from '../../daemon/socket-group.js';
import { parseSize } from '../../gc/parse-size.js';
import { action, globalOptions, loggerFor, usageError } from '../context.js';
import { unpackLimitsFor } from '../host.js';

export function registerDaemonCommand(program: Command): void {
  program
    .command('daemon')
    .description('run the node service: HTTP API on a unix socket (pull, images, stats, gc, /metrics), systemd notify, GC under a size budget')
    .addOption(new Option('--socket <path>', 'unix socket to listen on').env('HOSTPULL_SOCKET').default(defaultSocketPath()))
    .addOption(
      new Option('--snapshotter-socket [path]', `also serve containerd's snapshots.v1 service (a proxy snapshotter) on this unix socket (default ${DEFAULT_SNAPSHOTTER_SOCKET})`).env(
        'HOSTPULL_SNAPSHOTTER_SOCKET',
      ),
    )
    .addOption(new Option('--socket-group <group>', 'group (name or gid) that owns the socket; its members may use the daemon').env('HOSTPULL_SOCKET_GROUP'))
    .addOption(new Option('--max-store-size <size>', 'evict least recently used unused layers above this size (bytes, 500M, 10G…)').env('HOSTPULL_MAX_STORE_SIZE'))
    .addOption(new Option('--keep-blobs', 'keep each layer blob after unpacking it (default: only the unpacked layer stays)').env('HOSTPULL_KEEP_BLOBS'))
    .addOption(new Option('--gc-interval <duration>', 'how often the budget GC runs (30s, 10m, 1h…)').default('10m'))
    .addOption(new Option('--gc-min-age <duration>', 'the budget GC keeps anything used more recently than this (30s, 10m, 1h…)').default('10m'))
    .addOption(
      new Option(
        '--stop-timeout <duration>',
        'at SIGTERM, how long requests in flight may finish (500ms, 30s, 1m…); then pulls are parked (resumable) and rootfs not yet answered are removed',
      ).default('30s'),
    )
    .action(
      action(async (opts: { socket: string; snapshotterSocket?: string | true; socketGroup?: string; maxStoreSize?: string; keepBlobs?: boolean; gcInterval: string; gcMinAge: string; stopTimeout: string }, cmd: Command) => {
        const { startDaemon } = await import('../../daemon/start-daemon.js');
        const global = globalOptions(cmd);
        let maxStoreSize: number | undefined;
        if (opts.maxStoreSize) {
          try {
            maxStoreSize = parseSize(opts.maxStoreSize);
          } catch (err) {
            throw usageError(`--max-store-size: ${(err as Error).message}`);
          }
        }
        const socketGroup = opts.socketGroup === undefined ? undefined : resolveGroup(opts.socketGroup);
        const version = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;
        const daemon = await startDaemon({
          root: global.root,
          unpackLimits: unpackLimitsFor(global),
          socketPath: opts.socket,
          snapshotterSocket: opts.snapshotterSocket === true ? DEFAULT_SNAPSHOTTER_SOCKET : opts.snapshotterSocket,
          socketGroup,
          server: global.server,
          namespace: global.namespace,
          insecureRegistries: global.insecureRegistry,
          registry: global.registry,
          logger: loggerFor(global),
          maxStoreSize,
          keepBlobs: opts.keepBlobs ?? false,
          gcIntervalMs: parseDuration(opts.gcInterval),
          gcGraceMs: parseDuration(opts.gcMinAge),
          stopTimeoutMs: parseDuration(opts.stopTimeout),
          version,
        });
        await daemon.stopped;
      }),
    );
}
