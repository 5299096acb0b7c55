import type { Command } from 'commander';
import { action, globalOptions } from '../context.js';
import { formatBytes, printJson } from '../format.js';
import { withHostApi } from '../host.js';
import { addDaemonOptions } from '../host-options.js';
import { durationOption, sizeOption } from '../options.js';

export function registerGcCommand(program: Command): void {
  const cmd = program
    .command('gc')
    .description('remove layers, blobs and partial downloads nothing uses; with --max-store-size, also evict least recently used unused layers')
    .addOption(sizeOption('--max-store-size <size>', 'budget for blobs + unpacked layers').env('HOSTPULL_MAX_STORE_SIZE'))
    .addOption(
      durationOption('--min-age <duration>', 'keep anything used (or a partial download written) more recently than this', { defaultText: '10m' }),
    )
    .option('--dry-run', 'only report what would be removed')
    .option('--json', 'print the report as JSON');
  addDaemonOptions(cmd)
    .addHelpText('after', '\nLayers a mounted rootfs uses, and everything of an image an in-flight pull is fetching (its layers, blobs and partial downloads, until the image is recorded), are never removed.\n')
    .action(
      action(async (opts: { maxStoreSize?: number; minAge: number; dryRun?: boolean; json?: boolean; socket?: string; daemon: boolean }, cmd: Command) => {
        await withHostApi(globalOptions(cmd), opts, async (api) => {
          const r = await api.gc({ ...(opts.maxStoreSize !== undefined ? { maxStoreSize: opts.maxStoreSize } : {}), graceMs: opts.minAge, dryRun: opts.dryRun ?? false });
          if (opts.json) return printJson(r);
          const verb = r.dryRun ? 'would remove' : 'removed';
          process.stdout.write(
            `${verb} ${r.layersRemoved} layers, ${r.blobsRemoved} blobs, ${r.imagesRemoved.length} images, ` +
              `${r.partialsRemoved} partial downloads (${formatBytes(r.partialBytesFreed)}); ` +
              `store ${formatBytes(r.bytesBefore)} → ${formatBytes(r.bytesAfter)} (${formatBytes(r.freedBytes)} freed)\n`,
          );
          if (r.overBudget) process.stdout.write('still over the budget: the rest is mounted, being pulled, or used within --min-age\n');
        });
      }),
    );
}
