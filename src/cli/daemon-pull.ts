import { parseArgs } from 'node:util';
import { DEFAULT_NAMESPACE, defaultRoot, defaultSocketPath } from '../defaults.js';
import { isLogFormat } from '../log.js';
import { resolveReference } from '../oci/index.js';
import { action } from './context.js';
import { probeDaemon } from './daemon-probe.js';
import { PULL_CONCURRENCY, pullAndPrint, type PullFlags } from './pull-and-print.js';

/** The environment variables read here; any other HOSTPULL_* leaves the command line to the full CLI. */
const NAMING_ENV = new Set(['HOSTPULL_ROOT', 'HOSTPULL_SERVER', 'HOSTPULL_NAMESPACE', 'HOSTPULL_SOCKET']);

/** A `hostpull pull` command line taken whole by {@link pullThroughDaemon}. */
export interface PlainPull {
  input: string;
  root: string;
  server: string | undefined;
  namespace: string;
  socket: string;
  flags: PullFlags;
}

/**
 * `hostpull pull REF` on a node whose daemon serves the store, without loading the CLI: the
 * daemon does the pull, so what the client loads before its request is all its own cost, and
 * commander, the program's options and the verb's modules were ~16 ms of it. Measured through a
 * warm daemon on a tmpfs store: an up-to-date pull 115 → 99 ms (medians of 30; `node -e 0` took
 * 57 ms), a pull of one new 9 MB layer 210 → 192 ms (medians of 21).
 *
 * Only a command line {@link plainPull} reads whole takes this way, and only when a daemon for
 * its root answers. Anything else — another verb, an option not listed there, a value it would
 * have to judge, no daemon — returns false before anything was printed or sent, and the full
 * CLI takes the command line as always, its checks and messages included. Once the daemon has
 * the request, its answer or error is the command's, printed as the full CLI prints it.
 */
export async function pullThroughDaemon(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const line = plainPull(args, env);
  if (!line) return false;
  let ref;
  try {
    ref = resolveReference(line.input, { server: line.server, namespace: line.namespace });
  } catch {
    return false; // the full CLI says what is wrong with it
  }
  const api = await probeDaemon(line.socket, line.root);
  if (!api) return false;
  await action(async () => {
    try {
      await pullAndPrint(api, ref, line.flags);
    } finally {
      await api.close();
    }
  })();
  return true;
}

/**
 * The pull command lines read here: the verb and one reference, the global options that only
 * name things (`--root`, `--server`, `--namespace`) and the pull's own `--json`, `--socket`,
 * `--concurrency`, `--no-unpack` and `--keep-blobs`, anywhere (commander takes them anywhere
 * too), with the environment variables the full CLI reads for them. Undefined for anything else,
 * e.g. `--no-daemon`, `--insecure-registry` or a registry timeout (those work in-process),
 * `--log-level` and `--log-format` (the logger is the full CLI's), `--help`, `--`, an empty value
 * or a concurrency the full CLI would refuse, and any HOSTPULL_* variable but those four and a
 * valid HOSTPULL_LOG_FORMAT (this path logs nothing): the full CLI checks their values (a
 * malformed timeout is a usage error even for a daemon's pull) and commander decides what
 * HOSTPULL_KEEP_BLOBS=0 means.
 */
export function plainPull(args: readonly string[], env: NodeJS.ProcessEnv = process.env): PlainPull | undefined {
  if (args.includes('--') || Object.keys(env).some((k) => k.startsWith('HOSTPULL_') && !NAMING_ENV.has(k) && !(k === 'HOSTPULL_LOG_FORMAT' && isLogFormat(env[k])))) return undefined;
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
    flags: { concurrency, unpack: !values['no-unpack'], ...(values['keep-blobs'] ? { keepBlobs: true } : {}), ...(values.json ? { json: true } : {}) },
  };
}
