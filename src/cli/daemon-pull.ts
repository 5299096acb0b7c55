import { resolveReference } from '../oci/index.js';
import { action } from './context.js';
import { probeDaemon } from './daemon-probe.js';
import { plainPull } from './plain-pull.js';
import { pullAndPrint } from './pull-and-print.js';

/**
 * `hostpull pull REF` on a node whose daemon serves the store, without loading the CLI: the
 * daemon does the pull, so what the client loads before its request is all its own cost, and
 * commander, the program's options and the verb's modules were ~16 ms of it. Measured through a
 * warm daemon on a tmpfs store: an up-to-date pull 115 → 99 ms (medians of 30; `node -e 0` took
 * 57 ms), a pull of one new 9 MB layer 210 → 192 ms (medians of 21).
 *
 * Only a command line {@link plainPull} reads whole takes this way, without `--no-daemon`, and
 * only when a daemon for its root answers. Anything else returns false before anything was
 * printed or sent: a plain command line is then pulled in-process by quick-pull.ts, any other
 * (another verb, an option not listed there, a value it would have to judge) goes to the full
 * CLI, its checks and messages included. Once the daemon has the request, its answer or error is
 * the command's, printed as the full CLI prints it.
 */
export async function pullThroughDaemon(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const line = plainPull(args, env);
  if (!line || !line.daemon) return false;
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
