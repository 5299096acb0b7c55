import { DEFAULT_LOG_LEVEL, isLogFormat } from '../log.js';
import { applyV8Flags } from '../util/index.js';
import { action, type GlobalOptions } from './context.js';
import { resolveInput, withHostApi } from './host.js';
import { plainPull } from './plain-pull.js';
import { pullAndPrint } from './pull-and-print.js';
import { v8FlagsFor } from './verb-v8-flags.js';

/**
 * `hostpull pull REF` without commander, for a command line that {@link plainPull} reads whole
 * and that no daemon took (daemon-pull.ts): `--no-daemon`, or no daemon answering, as on a laptop.
 * It does what `commands/pull.ts` does with the options commander would have given: the same
 * V8 flags, log level and format, the same host API (which still asks a daemon that answers,
 * unless `--no-daemon`), the same output, errors and exit codes.
 *
 * Why: commander, the program's global options and the verb's registration cost an in-process
 * pull 15-20 ms, against ~0.13 s for `curl | pigz -d | tar -x` of one new 9 MB layer. Measured
 * alternated on the full-size peer images: an up-to-date pull 176 → 161 ms (medians of 15), a
 * pull of that one layer 0.313 → 0.294 s (medians of 10).
 *
 * Returns false, having done nothing, for any other command line: the full CLI takes it.
 */
export async function quickPull(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const line = plainPull(args, env);
  if (!line) return false;
  applyV8Flags(v8FlagsFor('pull'));
  const logFormat = env.HOSTPULL_LOG_FORMAT;
  const options: GlobalOptions = {
    root: line.root,
    server: line.server,
    namespace: line.namespace,
    logLevel: DEFAULT_LOG_LEVEL,
    logFormat: isLogFormat(logFormat) ? logFormat : undefined,
    insecureRegistry: [],
    registry: {},
    registryFlagsGiven: false,
    maxExpansionRatio: undefined,
    diskReserve: undefined,
    syncFs: false,
  };
  await action(async () => {
    const ref = resolveInput(options, line.input);
    await withHostApi(options, line, (api) => pullAndPrint(api, ref, line.flags));
  })();
  return true;
}
