import { parseArgs } from 'node:util';
import { DEFAULT_NAMESPACE, defaultRoot, defaultSocketPath } from '../defaults.js';
import { isLogFormat } from '../log.js';
import { PULL_CONCURRENCY, type PullFlags } from './pull-and-print.js';

/** The environment variables read here (with HOSTPULL_LOG_FORMAT, by quick-pull.ts). */
export const PLAIN_PULL_ENV: ReadonlySet<string> = new Set(['HOSTPULL_ROOT', 'HOSTPULL_SERVER', 'HOSTPULL_NAMESPACE', 'HOSTPULL_SOCKET']);

/**
 * The variables the full CLI binds to an option of a pull (the global options and the verb's)
 * besides those read here: a command line under any of them is left to it, which checks their
 * values (a malformed timeout is a usage error even for a daemon's pull) and decides what
 * HOSTPULL_KEEP_BLOBS=0 means. A unit test holds this list to what program.ts declares.
 * HOSTPULL_LOG_FORMAT is read here when its value is valid (the format of an in-process pull's
 * log, as commander would take it). Any other HOSTPULL_* name means nothing to a pull: a
 * benchmark's HOSTPULL_CLI in the environment once sent every pull it timed through commander.
 */
export const FULL_CLI_PULL_ENV: ReadonlySet<string> = new Set([
  'HOSTPULL_REGISTRY_HEADERS_TIMEOUT',
  'HOSTPULL_REGISTRY_IDLE_TIMEOUT',
  'HOSTPULL_REGISTRY_RETRY_BUDGET',
  'HOSTPULL_MAX_EXPANSION_RATIO',
  'HOSTPULL_DISK_RESERVE',
  'HOSTPULL_KEEP_BLOBS',
  'HOSTPULL_SYNC_FS',
]);

/**
 * A `hostpull pull` command line read without commander: by daemon-pull.ts, which hands it to a
 * daemon that answers, and by quick-pull.ts, which pulls in-process when none does.
 */
export interface PlainPull {
  input: string;
  root: string;
  server: string | undefined;
  namespace: string;
  socket: string;
  /** False with `--no-daemon`. */
  daemon: boolean;
  flags: PullFlags;
}

/**
 * The pull command lines read here: the verb and one reference, the global options that only
 * name things (`--root`, `--server`, `--namespace`) and the pull's own `--json`, `--socket`,
 * `--no-daemon`, `--concurrency`, `--no-unpack` and `--keep-blobs`, anywhere (commander takes
 * them anywhere too), with the environment variables the full CLI reads for them. Undefined for
 * anything else, e.g. `--insecure-registry` or a registry timeout (which decide whether a daemon
 * may serve the pull), `--log-level` and `--log-format`, `--help`, `--`, an empty value or a
 * concurrency the full CLI would refuse, and an environment that sets one of
 * {@link FULL_CLI_PULL_ENV} or an invalid HOSTPULL_LOG_FORMAT.
 */
export function plainPull(args: readonly string[], env: NodeJS.ProcessEnv = process.env): PlainPull | undefined {
  if (args.includes('--') || Object.keys(env).some((k) => FULL_CLI_PULL_ENV.has(k) || (k === 'HOSTPULL_LOG_FORMAT' && !isLogFormat(env[k])))) return undefined;
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: true,
      options: {
        root: { type: 'string' },
        server: { type: 'string' },
        namespace: { type: 'string' },
        socket: { type: 'string' },
        concurrency: { type: 'string' },
        json: { type: 'boolean' },
        'no-daemon': { type: 'boolean' },
        'no-unpack': { type: 'boolean' },
        'keep-blobs': { type: 'boolean' },
      },
    });
  } catch {
    return undefined;
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 2 || positionals[0] !== 'pull' || positionals[1] === '') return undefined;
  if ([values.root, values.server, values.namespace, values.socket, values.concurrency].some((v) => v === '')) return undefined;
  const concurrency = values.concurrency === undefined ? PULL_CONCURRENCY.defaultValue : Number(values.concurrency);
  if (!/^\d*$/.test(values.concurrency ?? '') || concurrency < PULL_CONCURRENCY.min || concurrency > PULL_CONCURRENCY.max) return undefined;
  return {
    input: positionals[1]!,
    root: values.root ?? defaultRoot(),
    server: values.server ?? env.HOSTPULL_SERVER,
    namespace: values.namespace ?? env.HOSTPULL_NAMESPACE ?? DEFAULT_NAMESPACE,
    socket: values.socket ?? env.HOSTPULL_SOCKET ?? defaultSocketPath(env),
    daemon: !values['no-daemon'],
    flags: { concurrency, unpack: !values['no-unpack'], ...(values['keep-blobs'] ? { keepBlobs: true } : {}), ...(values.json ? { json: true } : {}) },
  };
}
