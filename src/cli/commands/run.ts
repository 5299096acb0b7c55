import { Command, Option } from 'commander';
import { HostpullError, isHostpullError } from '../../errors.js';
import type { FuseHelper } from '../../lazy/index.js';
import type { Logger, LogLevel } from '../../log.js';
import { formatReference, type ImageReference } from '../../oci/index.js';
import type { ContentStore } from '../../store/index.js';
import { action, checkTtyFlag, collect, globalOptions, loggerFor, printError, usageError } from '../context.js';
import { withHost } from '../host.js';
import { keepBlobsOption } from '../host-options.js';
import { interruptSignal, onInterrupt, signalExitCode, withInterrupt, type Interrupt } from '../interrupt.js';
import { progressRenderer } from '../progress.js';
import { takeEarlyLazyHelper } from '../early-lazy-helper.js';
import { addLazyOptions, lazyOptionsFrom, type LazyFlags } from '../lazy-options.js';

export function registerRunCommand(program: Command): void {
  const run = program
    .command('run')
    .description('pull a composite (or any image), mount its layers in one overlay and run it with an OCI runtime')
    .argument('<ref>', 'composite tag on the configured server, or a full reference')
    .argument('[command...]', 'command and arguments (after --), replacing the image Cmd')
    .option('-t, --tty', 'allocate a terminal (stdin must be one)')
    .option('-i, --interactive', 'keep stdin attached (it always is: accepted as podman spells it)')
    .option('--rm', 'remove the container when it exits (the default: --keep keeps it)')
    .addOption(new Option('-e, --env <KEY=VAL>', 'set an environment variable (repeatable)').argParser(collect))
    .option('-u, --user <user>', 'user[:group] or uid[:gid], resolved in the image')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('--entrypoint <cmd>', 'replace the image entrypoint (a single program)')
    .addOption(new Option('-v, --volume <host:container[:ro]>', 'bind a host path (absolute, or starting with ./) into the container, read-write or :ro; nosuid,nodev (repeatable)').argParser(collect))
    .option('--name <name>', 'name the container, for `hostpull exec` and `hostpull ps` (unique among running and kept containers)')
    .option('--hostname <name>', 'host name inside the container (default: the container id\'s first 12 characters)')
    .option('--read-only', 'mount the container\'s root read-only, with tmpfs on /tmp, /var/tmp and /run (and -v binds as given)')
    .addOption(new Option('--network <mode>', 'none: a network of its own with only loopback; host: the host\'s network, resolv.conf and hosts').choices(['none', 'host']).default('none'))
    .addOption(new Option('--runtime <name>', 'OCI runtime (default: the first of runc, crun that works here)').choices(['runc', 'crun']))
    .option('--keep', 'keep the container after exit (its upper layer and bundle, unmounted; ps lists it as exited, its --name stays taken) until `hostpull rm`')
    .option('--allow-overlap', 'allow package layers that write the same path (manifest order wins)')
    .addOption(keepBlobsOption())
    .addOption(
      new Option('--pull <policy>', 'always: ask the registry whether the tag moved; missing: only when not stored; never: fail when not stored')
        .choices(['always', 'missing', 'never'])
        .default('always'),
    )
    .option('--lazy', 'start before the package layers have arrived: mount each seekable layer from its table of contents (FUSE) and complete it in the background')
    // Rootless runs only; hidden because only packagers and tests need another unshare(1).
    .addOption(new Option('--unshare <path>', 'unshare program for runs without root (util-linux)').env('HOSTPULL_UNSHARE').hideHelp())
    .addHelpText(
      'after',
      "\nExamples:\n  hostpull run JDK11.0-GRD7.0 -- /bin/sh -c 'ls /opt; echo $PATH'\n  hostpull run -t JDK17.0-MVN3.8 -- /bin/sh\n  hostpull run -v \"$PWD\":/src -w /src --network host JDK17.0-MVN3.8 -- mvn -q package\n",
    )
  addLazyOptions(run).action(
      action(async (input: string, command: string[], opts: LazyFlags & { tty?: boolean; interactive?: boolean; rm?: boolean; env?: string[]; volume?: string[]; network: 'none' | 'host'; name?: string; hostname?: string; readOnly?: boolean; user?: string; workdir?: string; entrypoint?: string; runtime?: string; keep?: boolean; allowOverlap?: boolean; keepBlobs?: boolean; pull: 'always' | 'missing' | 'never'; unshare?: string; lazy?: boolean }, cmd: Command) => {
        for (const kv of opts.env ?? []) if (!/^[^=]+=/.test(kv)) throw usageError(`-e ${kv}: expected KEY=VALUE`);
        if (opts.rm && opts.keep) throw usageError('--rm and --keep contradict each other');
        checkTtyFlag(opts.tty);
        const g = globalOptions(cmd);
        const logger = loggerFor(g);
        // A lazy run's FUSE helper is a node process of its own: started before this one loads the
        // container and runtime modules, the two load their modules at once, and the helper is
        // ready when the layers are chosen (an A/B of 9 second nodes: mvn -v's first output 994
        // against 1,057 ms). main.ts forked it earlier still, unless the line sets a log option.
        const helper = opts.lazy && process.getuid?.() === 0 ? ((await takeEarlyLazyHelper(g.logLevel, logger.format)) ?? (await startHelperEarly(logger, g.logLevel))) : undefined;
        const [{ runImage }, { checkHostname, parseVolumes }] = await Promise.all([import('../../container/index.js'), import('../../runtime/index.js')]);
        if (opts.hostname !== undefined) checkHostname(opts.hostname);
        // Before anything is pulled: a mistyped host path fails in a moment, not after a download.
        const mounts = parseVolumes(opts.volume ?? [], process.cwd());
        return withHost(g, (host) => withInterrupt(async (interrupt) => {
          const progress = progressRenderer();
          // With --lazy, run waits for the background pulls after the container exits; a signal
          // from the container's start on (the container gets it too) stops that wait.
          const stopWaiting = new AbortController();
          let waiting: Interrupt | undefined;
          try {
            const result = await runImage({ ...host, keepBlobs: opts.keepBlobs ?? false }, host.resolve(input), {
              args: command,
              ...(opts.entrypoint ? { entrypoint: [opts.entrypoint] } : {}),
              ...(opts.env ? { env: opts.env } : {}),
              ...(opts.user ? { user: opts.user } : {}),
              ...(opts.workdir ? { cwd: opts.workdir } : {}),
              ...(mounts.length > 0 ? { mounts } : {}),
              network: opts.network,
              ...(opts.name !== undefined ? { name: opts.name } : {}),
              ...(opts.hostname ? { hostname: opts.hostname } : {}),
              ...(opts.readOnly ? { readonlyRootfs: true } : {}),
              ...(opts.runtime ? { runtime: opts.runtime } : {}),
              tty: opts.tty ?? false,
              keep: opts.keep ?? false,
              allowOverlap: opts.allowOverlap ?? false,
              pullPolicy: opts.pull,
              ...(opts.unshare ? { unshare: opts.unshare } : {}),
              ...(opts.lazy ? { lazy: { insecureRegistries: g.insecureRegistry, stopWaiting: stopWaiting.signal, ...lazyOptionsFrom(opts), ...(helper ? { helper } : {}) } } : {}),
              signal: interrupt.signal,
              onPullEvent: progress.onEvent,
              onRuntime: (runtime) => {
                progress.stop();
                // runContainer has taken the signals (forwarding them, or ending the start): ours can go.
                interrupt.release();
                if (opts.lazy) waiting = onInterrupt(stopWaiting);
                host.logger.info({ runtime: runtime.name, version: runtime.version, path: runtime.path }, 'starting container');
              },
            });
            return result.exitCode;
          } catch (err) {
            // Interrupted before the container's command ran (pulling, mounting, starting): the
            // shell's status for the signal, as podman and a container killed by it report.
            const sig = interruptSignal(err) ?? (isHostpullError(err, 'ABORTED') ? interruptSignal(interrupt.signal.reason) : undefined);
            if (sig === undefined) throw opts.pull === 'always' ? storedImageHint(err, host.store, host.resolve(input)) : err;
            printError(err);
            return signalExitCode(sig);
          } finally {
            progress.stop();
            waiting?.release();
          }
        }), logger);
      }),
    );
}

/**
 * A registry that cannot be reached (past the retry budget) while the image is in the store: the
 * default `--pull always` only asked whether its tag moved, so say how to run what is here.
 */
function storedImageHint(err: unknown, store: ContentStore, ref: ImageReference): unknown {
  if (!isHostpullError(err) || (err.code !== 'REGISTRY_UNAVAILABLE' && err.code !== 'TOO_MANY_REQUESTS')) return err;
  const reference = formatReference(ref);
  if (!store.images.get(reference)) return err;
  const hint = `${reference} is in the store: \`hostpull run --pull missing ${reference}\` runs it without asking the registry`;
  return new HostpullError(err.code, err.message, { cause: err, ...(err.details ? { details: err.details } : {}), hint: err.hint ? `${err.hint}; or ${hint}` : hint });
}

/**
 * Starts the lazy-layer FUSE helper now; when it cannot start here, the run starts it at its
 * first mount, which then says why it cannot.
 */
async function startHelperEarly(logger: Logger, level: LogLevel): Promise<FuseHelper | undefined> {
  const { FuseHelper } = await import('../../lazy/index.js');
  try {
    return FuseHelper.start(logger, level);
  } catch (err) {
    logger.debug({ err: (err as Error).message }, 'lazy helper did not start early; the first mount says why');
    return undefined;
  }
}
