import type { Command } from 'commander';
import { shortDigest } from '../../oci/index.js';
import { action, globalOptions } from '../context.js';
import { formatBytes, formatMs, printJson } from '../format.js';
import { addDaemonOptions, keepBlobsOption, resolveInput, withHostApi } from '../host.js';
import { withInterrupt } from '../interrupt.js';
import { numberOption } from '../options.js';
import { progressRenderer } from '../progress.js';

export function registerPullCommand(program: Command): void {
  const cmd = program
    .command('pull')
    .description('fetch an image (or a composite tag such as JDK11.0-MVN3.8-GRD7.0) and unpack the layers this host has not seen')
    .argument('<ref>', 'composite tag on the configured server, or host[:port]/repository[:tag][@digest]')
    .addOption(numberOption('--concurrency <n>', 'layers fetched at once', { integer: true, min: 1, max: 64, defaultValue: 4 }))
    .option('--no-unpack', 'only store the blobs; do not unpack layers')
    .addOption(keepBlobsOption())
    .option('--json', 'print the pull record as JSON');
  addDaemonOptions(cmd)
    .addHelpText('after', '\nExamples:\n  hostpull --server 127.0.0.1:5000 pull JDK11.0-MVN3.8-GRD7.0\n  hostpull pull 127.0.0.1:5000/pkg/jdk:11.0 --json\n')
    .action(
      action(async (input: string, opts: { concurrency: number; unpack: boolean; keepBlobs?: boolean; json?: boolean; socket?: string; daemon: boolean }, cmd: Command) => {
        const global = globalOptions(cmd);
        const ref = resolveInput(global, input);
        // Through the daemon when it answers (progress arrives in its NDJSON stream), else in-process.
        await withHostApi(global, opts, async (api) => {
          const progress = opts.json ? { onEvent: () => undefined, stop: () => undefined } : progressRenderer();
          try {
            const result = await withInterrupt(({ signal }) =>
              api.pull(ref, { concurrency: opts.concurrency, unpack: opts.unpack, ...(opts.keepBlobs ? { keepBlobs: true } : {}), onEvent: progress.onEvent, signal }),
            );
            progress.stop();
            if (opts.json) return printJson(result);
            const fetchedLayers = result.layerMisses;
            process.stdout.write(
              `${result.upToDate ? 'up to date' : 'pulled'} ${result.reference} ${shortDigest(result.manifestDigest)} in ${formatMs(result.phases.total)}: ` +
                `${result.layers.length} layers, ${result.layerHits} cached, ${fetchedLayers} fetched ` +
                `(${formatBytes(result.bytesFetched)} fetched, ${formatBytes(result.bytesReused)} reused)\n`,
            );
          } finally {
            progress.stop();
          }
        });
      }),
    );
}
