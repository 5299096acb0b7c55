import type { Command } from 'commander';
import { action, globalOptions } from '../context.js';
import { formatBytes, formatPercent, printJson, table } from '../format.js';
import { withHost } from '../host.js';

export function registerStatsCommand(program: Command): void {
  program
    .command('stats')
    .description('cache hit rates and bytes fetched vs reused over all pulls on this host')
    .option('--json', 'print as JSON')
    .action(
      action(async (opts: { json?: boolean }, cmd: Command) => {
        await withHost(globalOptions(cmd), async ({ store }) => {
          const s = store.pulls.stats();
          const blobs = store.blobs.list();
          const layers = store.layers.list();
          const out = {
            ...s,
            store: {
              blobs: blobs.length,
              blobBytes: blobs.reduce((n, b) => n + b.size, 0),
              layers: layers.length,
              unpackedBytes: layers.reduce((n, l) => n + l.unpackedSize, 0),
            },
          };
          if (opts.json) return printJson(out);
          process.stdout.write(
            table([
              ['pulls', `${s.pulls} (${s.upToDatePulls} up to date, ${s.failedPulls} failed)`],
              ['layer hit rate', `${formatPercent(s.layerHitRate)} (${s.layerHits} hits, ${s.layerMisses} misses)`],
              ['byte hit rate', formatPercent(s.byteHitRate)],
              ['bytes fetched', formatBytes(s.bytesFetched)],
              ['bytes reused', formatBytes(s.bytesReused)],
              ['store', `${out.store.blobs} blobs (${formatBytes(out.store.blobBytes)}), ${out.store.layers} unpacked layers (${formatBytes(out.store.unpackedBytes)})`],
            ]),
          );
        });
      }),
    );
}
