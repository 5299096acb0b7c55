import { Option, type Command } from 'commander';
import { DEFAULT_SNAPSHOTTER_SOCKET, defaultSocketPath } from '../../defaults.js';
import { action, globalOptions, loggerFor, serviceLogFormat, usageError } from '../context.js';
import { unpackLimitsFor } from '../host.js';
import { keepBlobsOption } from '../host-options.js';
import { addLazyOptions, lazyOptionsFrom, type LazyFlags } from '../lazy-options.js';
import { durationOption, sizeOption } from '../options.js';
import { packageVersion } from '../../util/index.js';

export function registerDaemonCommand(program: Command): void {
  const daemon = program
    .command('daemon')
    .description('run the node service: HTTP API on a unix socket (pull, images, stats, gc, /metrics), systemd notify, GC under a size budget')
    .addOption(new Option('--socket <path>', 'unix socket to listen on').env('HOSTPULL_SOCKET').default(defaultSocketPath()))
    .addOption(
      new Option('--snapshotter-socket [path]', `also serve containerd's snapshots.v1 service (a proxy snapshotter) on this unix socket (default ${DEFAULT_SNAPSHOTTER_SOCKET})`).env(
        'HOSTPULL_SNAPSHOTTER_SOCKET',
      ),
    )
    .addOption(
      new Option(
        '--snapshotter-lazy',
        'the snapshotter serves package layers that have a table of contents lazily on CRI pulls: mounted over FUSE from the TOC, fetched by Range as containers read them, completed in the background (the daemon\'s counterpart of run --lazy; tuned by the --lazy-* flags)',
      ).env('HOSTPULL_SNAPSHOTTER_LAZY'),
    )
    .addOption(new Option('--socket-group <group>', 'group (name or gid) that owns the socket; its members may use the daemon').env('HOSTPULL_SOCKET_GROUP'))
    .addOption(sizeOption('--max-store-size <size>', 'evict least recently used unused layers above this size').env('HOSTPULL_MAX_STORE_SIZE'))
    .addOption(keepBlobsOption())
    .addOption(durationOption('--gc-interval <duration>', 'how often the budget GC runs', { above: 0, defaultText: '10m' }))
    .addOption(durationOption('--gc-min-age <duration>', 'the budget GC keeps anything used more recently than this', { defaultText: '10m' }))
    .addOption(
      durationOption('--stop-timeout <duration>', 'at SIGTERM, how long requests in flight (snapshotter calls too) may finish; then pulls are parked (resumable), rootfs not yet answered are removed and snapshotter calls are answered UNAVAILABLE', {
        defaultText: '30s',
      }),
    );
  addLazyOptions(daemon).action(
      action(async (opts: LazyFlags & { socket: string; snapshotterSocket?: string | true; snapshotterLazy?: boolean; socketGroup?: string; maxStoreSize?: number; keepBlobs?: boolean; gcInterval: number; gcMinAge: number; stopTimeout: number }, cmd: Command) => {
        const { resolveGroup, startDaemon } = await import('../../daemon/index.js');
        const global = globalOptions(cmd);
        if (opts.snapshotterLazy && opts.snapshotterSocket === undefined) throw usageError('--snapshotter-lazy needs --snapshotter-socket', 'add --snapshotter-socket [PATH], or drop --snapshotter-lazy');
        const socketGroup = opts.socketGroup === undefined ? undefined : resolveGroup(opts.socketGroup);
        const version = packageVersion();
        const daemon = await startDaemon({
          root: global.root,
          unpackLimits: unpackLimitsFor(global),
          syncFs: global.syncFs,
          socketPath: opts.socket,
          snapshotterSocket: opts.snapshotterSocket === true ? DEFAULT_SNAPSHOTTER_SOCKET : opts.snapshotterSocket,
          snapshotterLazy: opts.snapshotterLazy ?? false,
          socketGroup,
          server: global.server,
          namespace: global.namespace,
          insecureRegistries: global.insecureRegistry,
          registry: global.registry,
          logger: loggerFor(global, serviceLogFormat()),
          maxStoreSize: opts.maxStoreSize,
          keepBlobs: opts.keepBlobs ?? false,
          gcIntervalMs: opts.gcInterval,
          gcGraceMs: opts.gcMinAge,
          stopTimeoutMs: opts.stopTimeout,
          lazy: lazyOptionsFrom(opts),
          version,
        });
        await daemon.stopped;
      }),
    );
}
