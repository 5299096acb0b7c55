import type { Command } from 'commander';
import type { HostStats } from '../../daemon/index.js';
import { shortDigest } from '../../oci/index.js';
import { formatBytes, formatPercent, table } from '../format.js';
import { registerHostQuery } from '../host-options.js';

export function registerStatsCommand(program: Command): void {
  registerHostQuery(program, {
    name: 'stats',
    description: 'cache hit rates and bytes fetched vs reused over all pulls on this host',
    query: (api) => api.stats(),
    render: renderStats,
  });
}

function renderStats(s: HostStats): string {
  let out = table([
    ['pulls', `${s.pulls} (${s.upToDatePulls} up to date, ${s.failedPulls} failed)`],
    ['layer hit rate', `${formatPercent(s.layerHitRate)} (${s.layerHits} hits, ${s.layerMisses} misses)`],
    ['byte hit rate', formatPercent(s.byteHitRate)],
    ['bytes fetched', s.bytesFetchedLazily ? `${formatBytes(s.bytesFetched)} (${formatBytes(s.bytesFetchedLazily)} of them lazily)` : formatBytes(s.bytesFetched)],
    ['bytes reused', formatBytes(s.bytesReused)],
    ['store', `${s.store.blobs} blobs (${formatBytes(s.store.blobBytes)}), ${s.store.layers} unpacked layers (${formatBytes(s.store.unpackedBytes)})`],
  ]);
  // How each layer arrived: whole, lazily, or lazily then completed, and why not lazy.
  const arrivals = s.layerArrivals ?? [];
  if (arrivals.length > 0) {
    out += '\nlayers:\n';
    out += table(arrivals.map((l) => [l.blobDigest.slice(0, 19), l.arrival, l.arrival === 'whole' ? '' : `${formatBytes(l.bytesLazy)} lazily`, l.reason ?? '']));
  }
  const sn = s.snapshotter;
  if (sn.snapshots === 0 && sn.layers.length === 0) return out;
  const t = sn.totals;
  const lazily = t.lazy > 0 ? `, served lazily ${t.lazy}` : '';
  out += `\ncontainerd snapshotter: ${sn.snapshots} snapshots; layers fetched by hostpull ${t.fetched} (${formatBytes(t.bytesFetched)})${lazily}, reused ${t.reused}, applied by containerd ${t.applied}\n`;
  out += table([
    ['layer', 'fetched', 'lazy', 'reused', 'applied', 'why containerd applied it (last time)'],
    ...sn.layers.map((l) => [l.diffId ? shortDigest(l.diffId) : `chain ${shortDigest(l.chainId)}`, String(l.fetched), String(l.lazy), String(l.reused), String(l.applied), l.lastReason ?? '']),
  ]);
  return out;
}
