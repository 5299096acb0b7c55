import type { Command } from 'commander';
import { action, globalOptions } from '../context.js';
import { shortDigest } from '../../oci/digest.js';
import { formatBytes, formatPercent, printJson, table } from '../format.js';
import { addDaemonOptions, withHostApi } from '../host.js';

export function registerStatsCommand(program: Command): void {
  const cmd = program.command('stats').description('cache hit rates and bytes fetched vs reused over all pulls on this host').option('--json', 'print as JSON');
  addDaemonOptions(cmd).action(
    action(async (opts: { json?: boolean; socket?: string; daemon: boolean }, cmd: Command) => {
      await withHostApi(globalOptions(cmd), opts, async (api) => {
        const s = await api.stats();
        const out = s;
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
        const sn = s.snapshotter;
        if (sn.snapshots === 0 && sn.layers.length === 0) return;
        const t = sn.totals;
        process.stdout.write(
          `\ncontainerd snapshotter: ${sn.snapshots} snapshots; layers fetched by hostpull ${t.fetched} (${formatBytes(t.bytesFetched)}), reused ${t.reused}, applied by containerd ${t.applied}\n`,
        );
        process.stdout.write(
          table([
            ['layer', 'fetched', 'reused', 'applied', 'why containerd applied it (last time)'],
            ...sn.layers.map((l) => [l.diffId ? shortDigest(l.diffId) : `chain ${shortDigest(l.chainId)}`, String(l.fetched), String(l.reused), String(l.applied), l.lastReason ?? '']),
          ]),
        );
      });
    }),
  );
}
