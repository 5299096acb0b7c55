import type { Command } from 'commander';
import { action, globalOptions } from '../context.js';
import { resolveInput, withHostApi } from '../host.js';
import { addDaemonOptions, keepBlobsOption } from '../host-options.js';
import { numberOption } from '../options.js';
import { PULL_CONCURRENCY, pullAndPrint, type PullFlags } from '../pull-and-print.js';

export function registerPullCommand(program: Command): void {
  const cmd = program
    .command('pull')
    .description('fetch an image (or a composite tag such as JDK11.0-MVN3.8-GRD7.0) and unpack the layers this host has not seen')
    .argument('<ref>', 'composite tag on the configured server, or host[:port]/repository[:tag][@digest]')
    .addOption(numberOption('--concurrency <n>', 'layers fetched at once', { integer: true, ...PULL_CONCURRENCY }))
    .option('--no-unpack', 'only store the blobs; do not unpack layers')
    .addOption(keepBlobsOption())
    .option('--json', 'print the pull record as JSON');
  addDaemonOptions(cmd)
    .addHelpText('after', '\nExamples:\n  hostpull --server 127.0.0.1:5000 pull JDK11.0-MVN3.8-GRD7.0\n  hostpull pull 127.0.0.1:5000/pkg/jdk:11.0 --json\n')
    .action(
      action(async (input: string, opts: PullFlags & { socket?: string; daemon: boolean }, cmd: Command) => {
        const global = globalOptions(cmd);
        const ref = resolveInput(global, input);
        // Through the daemon when it answers (progress arrives in its NDJSON stream), else in-process.
        // A plain command line reaches a daemon without this file (../daemon-pull.ts).
        await withHostApi(global, opts, (api) => pullAndPrint(api, ref, opts));
      }),
    );
}
