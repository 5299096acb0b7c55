import type { Command } from 'commander';
import { parseDuration } from '../../daemon/parse-duration.js';
import { parseSize } from '../../gc/parse-size.js';
import { action, globalOptions, usageError } from '../context.js';
import { formatBytes, printJson } from '../format.js';
import { addDaemonOptions, withHostApi } from '../host.js';

export function registerGcCommand(program: Command): void {
  const cmd = program
    .command('gc')
    .description('remove layers, blobs and partial downloads nothing uses; with --max-store-size, also evict least recently used unused layers')
    .option('--max-store-size <size>', 'budget for blobs + unpacked layers (bytes, or 500M, 10G…)', process.env.HOSTPULL_MAX_STORE_SIZE)
    .option('--min-age <duration>', 'keep anything used (or a partial download written) more recently than this: 0, 30s, 10m, 1h… (a pull in progress records its image last)', '10m')
    .option('--dry-run', 'only report what would be removed')
    .option('--json', 'print the report as JSON');
  addDaemonOptions(cmd)
    .addHelpText('after', '\nLayers a mounted rootfs uses, and blobs and partial downloads an in-flight pull is fetching, are never removed.\n')
    .action(
      action(async (opts: { maxStoreSize?: string; minAge: string; dryRun?: boolean; json?: boolean; socket?: string; daemon: boolean }, cmd: Command) => {
        let maxStoreSize: number | undefined;
        if (opts.maxStoreSize !== undefined && opts.maxStoreSize !== '') {
          try {
            maxStoreSize = parseSize(opts.maxStoreSize);
          } catch (err) {
            throw usageError(`--max-store-size: ${(err as Error).message}`, 'e.g. --max-store-size 10G');
          }
        }
        const graceMs = parseDuration(opts.minAge);
        await withHostApi(globalOptions(cmd), opts, async (api) => {
          const r = await api.gc({ ...(maxStoreSize !== undefined ? { maxStoreSize } : {}), graceMs, dryRun: opts.dryRun ?? false });
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
