// The options and verbs built on the host context (host.ts) with commander; host.ts itself loads
// no commander, so a pull that skips it (quick-pull.ts) opens the host all the same.

import { Option, type Command } from 'commander';
import type { HostApi } from '../daemon/index.js';
import { action, globalOptions } from './context.js';
import { printJson } from './format.js';
import { withHostApi } from './host.js';

/** `--keep-blobs` (`HOSTPULL_KEEP_BLOBS`), for the verbs that pull. */
export function keepBlobsOption(): Option {
  return new Option('--keep-blobs', 'keep each layer blob after unpacking it (default: only the unpacked layer stays)').env('HOSTPULL_KEEP_BLOBS');
}

/** `--socket` and `--no-daemon`, for the verbs that can run through the daemon. */
export function addDaemonOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--socket <path>', 'daemon socket to use when it answers').env('HOSTPULL_SOCKET'))
    .option('--no-daemon', 'work in-process on the store even if a daemon answers');
}

/**
 * A verb that reads something from the host (through the daemon or in-process) and prints it:
 * JSON with `--json`, else what `render` makes of it.
 */
export function registerHostQuery<T>(program: Command, verb: { name: string; description: string; query: (api: HostApi) => Promise<T>; render: (value: T) => string }): void {
  const cmd = program.command(verb.name).description(verb.description).option('--json', 'print as JSON');
  addDaemonOptions(cmd).action(
    action(async (opts: { json?: boolean; socket?: string; daemon: boolean }, cmd: Command) => {
      await withHostApi(globalOptions(cmd), opts, async (api) => {
        const value = await verb.query(api);
        if (opts.json) printJson(value);
        else process.stdout.write(verb.render(value));
      });
    }),
  );
}
